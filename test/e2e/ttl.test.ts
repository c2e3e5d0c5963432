import assert from "node:assert/strict";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { runCli, runCliJson, runCliJsonGuest, withGvisorState } from "../helpers.js";

/** Workspaces live while they are used: an idle TTL that each exec extends, and a hard maximum. */

interface Status {
  workspace_id: string;
  state: string;
  expires_at: string;
  max_expires_at: string;
  last_activity_at: string;
  ttl_seconds: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("each exec extends the idle expiry, inside the sandbox too; update changes the TTLs; the hard maximum caps them", async (t) => {
  await withGvisorState(t, async ({ env, stateDir }) => {
    const c = await runCliJson<Status>(
      ["workspace", "create", "debian:12", "--ttl-seconds", "6", "--max-ttl-seconds", "900"],
      { env },
    );
    assert.equal(c.code, 0, c.stderr);
    const ws = c.json.workspace_id;
    assert.equal(c.json.ttl_seconds, 6);
    const created = Date.parse(c.json.last_activity_at);
    assert.ok(Math.abs(Date.parse(c.json.expires_at) - (created + 6_000)) < 2_000, JSON.stringify(c.json));
    assert.ok(Math.abs(Date.parse(c.json.max_expires_at) - (created + 900_000)) < 5_000);

    // Busy past the first expiry: exec every 2 s for 9 s; the workspace stays alive.
    for (let i = 0; i < 4; i++) {
      await sleep(2_000);
      const r = await runCliJsonGuest<{ exit_code: number }>(["workspace", "exec", ws, "--", "true"], {
        env,
      });
      assert.equal(r.json.exit_code, 0, `exec ${i} failed: ${r.stderr}`);
    }
    const st = await runCliJson<Status>(["workspace", "status", ws], { env });
    assert.equal(st.json.state, "running");
    assert.ok(Date.parse(st.json.last_activity_at) > created + 7_000);
    // The sandbox enforces the same expiry on itself.
    const ctl = (
      await readFile(join(stateDir, "workspaces", ws, "sandbox", "ctl", "expires_at"), "utf8")
    ).trim();
    assert.equal(Number(ctl), Math.ceil(Date.parse(st.json.expires_at) / 1000));

    // A command longer than the idle TTL is not cut short by it.
    const long = await runCliJsonGuest<{ exit_code: number; timed_out: boolean }>(
      ["workspace", "exec", ws, "--timeout-seconds", "20", "--", "sh", "-c", "sleep 8; echo done"],
      { env },
    );
    assert.equal(long.json.exit_code, 0, long.stderr);

    // update: a longer idle TTL is capped by the hard maximum, then the maximum moves too.
    const u = await runCliJson<Status>(["workspace", "update", ws, "--ttl-seconds", "3600"], { env });
    assert.equal(u.code, 0, u.stderr);
    assert.equal(u.json.ttl_seconds, 3600);
    assert.equal(u.json.expires_at, u.json.max_expires_at);
    const u2 = await runCliJson<Status>(["workspace", "update", ws, "--max-ttl-seconds", "7200"], { env });
    assert.ok(
      Date.parse(u2.json.expires_at) > Date.parse(u.json.expires_at) + 600_000,
      JSON.stringify(u2.json),
    );
    const bad = await runCli(["workspace", "update", ws, "--ttl", "5"], { env });
    assert.equal(bad.code, 2);
    assert.equal((await runCli(["workspace", "delete", ws], { env })).code, 0);
  });
});

test("an idle workspace expires after its idle TTL although its hard maximum is far", async (t) => {
  await withGvisorState(t, async ({ env }) => {
    const c = await runCliJson<Status>(
      ["workspace", "create", "debian:12", "--ttl-seconds", "3", "--max-ttl-seconds", "3600"],
      { env },
    );
    assert.equal(c.code, 0, c.stderr);
    await sleep(Date.parse(c.json.expires_at) - Date.now() + 500);
    const st = await runCliJson<Status>(["workspace", "status", c.json.workspace_id], { env });
    assert.equal(st.json.state, "expired");
    const ex = await runCli(["workspace", "exec", c.json.workspace_id, "--", "true"], { env });
    assert.equal(ex.code, 1);
    assert.match(ex.stderr, /expired/);
    assert.equal((await runCli(["workspace", "delete", c.json.workspace_id], { env })).code, 0);
  });
});

test("a sandbox whose state was removed under it stops itself (nothing could find or delete it any more)", async (t) => {
  await withGvisorState(t, async ({ env, stateDir }) => {
    const c = await runCliJson<Status>(["workspace", "create", "debian:12", "--ttl-seconds", "3600"], {
      env,
    });
    assert.equal(c.code, 0, c.stderr);
    const id = c.json.workspace_id;
    const dir = join(stateDir, "workspaces", id);
    const rec = JSON.parse(await readFile(join(dir, "workspace.json"), "utf8")) as {
      handle: { data: { pid: number } };
    };
    const pid = rec.handle.data.pid;
    const alive = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    assert.ok(alive(), "the sandbox runs");
    // What an `rm -rf` of the state dir does to it: its expiry file is gone.
    await rm(join(dir, "sandbox", "ctl"), { recursive: true, force: true });
    const t0 = Date.now();
    while (alive() && Date.now() - t0 < 20_000) await sleep(250);
    assert.ok(!alive(), "the sandbox stopped itself within 20 s (the init polls every 5 s)");
    assert.equal((await runCli(["workspace", "delete", id], { env })).code, 0);
  });
});
