import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, rename } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import {
  CLI,
  poolEntryIds,
  REPO,
  runCli,
  runCliJson,
  runscList,
  runscProcesses,
  type TestState,
  withGvisorState,
} from "./../helpers.js";

/**
 * The warm pool (src/pool/) against real gVisor sandboxes: claims are exclusive, a claimer
 * killed mid-run leaves a sandbox that stops itself at the command's deadline, and drain
 * leaves nothing behind. PYRO_POOL_TOPUP=0: the tests fill the pool themselves, so no
 * detached filler races their assertions.
 */
const POOL = { PYRO_POOL_SIZE: "3", PYRO_POOL_TOPUP: "0", PYRO_QUIET: "1" };
/** Drains the pool even when the test fails, before the state dir (and its runsc root) goes. */
function guarded(fn: (c: TestState) => Promise<void>): (c: TestState) => Promise<void> {
  return async (c) => {
    try {
      await fn(c);
    } finally {
      await runCli(["pool", "drain"], { env: c.env });
    }
  };
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const poolIds = (stateDir: string, where: "ready" | "claimed" | "used") => poolEntryIds(stateDir, where);
/** Host processes of one pool sandbox (runsc's sandbox and gofer carry its bundle path). */
const sandboxProcesses = (id: string) => runscProcesses(`/sandboxes/${id}/`);

test("concurrent runs never share a pooled sandbox; drain leaves no sandbox and no record", async (t) => {
  await withGvisorState(
    t,
    guarded(async ({ env, stateDir }) => {
      const fill = await runCliJson<{ created: number; busy: boolean }>(["pool", "fill", "--json"], { env });
      assert.equal(fill.code, 0, fill.stderr);
      assert.equal(fill.json.created, 3);
      const ready = await poolIds(stateDir, "ready");
      assert.equal(ready.length, 3);
      // Six processes at once for three ready sandboxes: three claim one each, three start
      // fresh sandboxes; no id twice.
      const runs = await Promise.all(
        Array.from({ length: 6 }, () =>
          runCliJson<{ vm_id: string; exit_code: number; stdout: string; boot_ms: number }>(
            ["run", "debian:12", "--json", "--", "sh", "-c", "echo $$; ls /tmp | wc -l"],
            { env },
          ),
        ),
      );
      for (const r of runs) assert.equal(r.code, 0, r.stderr);
      const ids = runs.map((r) => r.json.vm_id);
      assert.equal(new Set(ids).size, 6, `distinct sandboxes: ${ids.join(" ")}`);
      const pooled = ids.filter((id) => ready.includes(id));
      assert.equal(pooled.length, 3, "each ready sandbox was claimed exactly once");
      for (const r of runs) assert.match(r.json.stdout, /\n0\n$/, "a fresh /tmp: nothing used it before");
      assert.deepEqual(await poolIds(stateDir, "ready"), []);
      assert.equal((await poolIds(stateDir, "used")).length, 3, "used once, then given up");

      const st = await runCliJson<{ keys: { ready: number; pending_destroy: number }[] }>(
        ["pool", "status", "--json"],
        { env },
      );
      assert.equal(st.json.keys[0]!.pending_destroy, 3);
      const drain = await runCliJson<{ destroyed: number; in_use: number }>(["pool", "drain", "--json"], {
        env,
      });
      assert.equal(drain.code, 0, drain.stderr);
      assert.deepEqual(drain.json, { destroyed: 3, in_use: 0 });
      assert.equal(existsSync(join(stateDir, "pool")), false, "no pool records left");
      assert.deepEqual(await runscList(stateDir), [], "no sandbox left");
      for (const id of pooled) assert.deepEqual(await sandboxProcesses(id), []);
    }),
    POOL,
  );
});

test("kill -9 of the process holding a claim: the sandbox stops itself by the command's deadline", async (t) => {
  await withGvisorState(
    t,
    guarded(async ({ env, stateDir }) => {
      const fill = await runCli(["pool", "fill"], { env: { ...env, PYRO_POOL_SIZE: "1" } });
      assert.equal(fill.code, 0, fill.stderr);
      const [id] = await poolIds(stateDir, "ready");
      assert.ok(id);
      assert.ok((await sandboxProcesses(id)).length > 0, "the ready sandbox runs");
      const timeout = 3;
      const child = spawn(
        process.execPath,
        [CLI, "run", "debian:12", "--timeout-seconds", String(timeout), "--", "sleep", "600"],
        { env: { ...env, PYRO_POOL_SIZE: "1" }, cwd: REPO, stdio: "ignore" },
      );
      // Claimed (renamed into claimed/), then killed while its command runs.
      for (let i = 0; i < 100 && (await poolIds(stateDir, "claimed")).length === 0; i++) await sleep(50);
      assert.deepEqual(await poolIds(stateDir, "claimed"), [id]);
      await sleep(500);
      const t0 = Date.now();
      child.kill("SIGKILL");
      await new Promise((r) => child.once("close", r));
      // Deadline: the command's timeout + the init's grace (1.5 s) + 5 s margin, polled by the
      // sandbox init every 5 s. No pyro process is alive meanwhile.
      const limitMs = (timeout + 1.5 + 5 + 5 + 2) * 1000;
      while ((await sandboxProcesses(id)).length > 0 && Date.now() - t0 < limitMs) await sleep(250);
      assert.deepEqual(await sandboxProcesses(id), [], `sandbox gone within ${limitMs} ms`);
      // Its leftovers (runsc's record of the stopped sandbox, the claim) go with the next fill.
      const next = await runCliJson<{ destroyed: number }>(["pool", "fill", "--json"], {
        env: { ...env, PYRO_POOL_SIZE: "0" },
      });
      assert.equal(next.json.destroyed, 1);
      assert.deepEqual(await runscList(stateDir), []);
      assert.equal((await runCli(["pool", "drain"], { env })).code, 0);
      assert.equal(existsSync(join(stateDir, "pool")), false);
    }),
    POOL,
  );
});

test("a pooled `pyro run` prints, records and exits as the full CLI does", async (t) => {
  await withGvisorState(
    t,
    guarded(async ({ env, stateDir }) => {
      const loud = { ...env, PYRO_QUIET: "0" };
      const cmd = ["sh", "-c", "echo out; echo err >&2; exit 3"];
      // The launcher's fast path answers the plain command line; an explicit default flag
      // (--vcpu-count 1) sends the same run through the full CLI, from the same pool.
      const fastArgs = ["run", "debian:12", "--", ...cmd];
      const fullArgs = ["run", "debian:12", "--vcpu-count", "1", "--", ...cmd];
      const human: { code: number | null; stdout: string; stderr: string }[] = [];
      for (const args of [fastArgs, fullArgs]) {
        assert.equal((await runCli(["pool", "fill"], { env })).code, 0);
        const ready = await poolIds(stateDir, "ready");
        const r = await runCli(args, { env: loud });
        human.push(r);
        assert.equal(r.code, 3, r.stderr);
        assert.equal(r.stdout, "out\n");
        const m = /^err\n\[pyro\] exit 3 · gvisor · \d+ ms · output (vm_[0-9a-f]{16})\n$/.exec(r.stderr);
        assert.ok(m, `footer: ${JSON.stringify(r.stderr)}`);
        assert.ok(ready.includes(m[1]!), "it ran in a pooled sandbox");
        // Its output is kept on the host like any run's.
        const page = await runCli(["output", "read", m[1]!], { env });
        assert.equal(page.stdout, "out\n");
      }
      const json: Record<string, unknown>[] = [];
      for (const args of [fastArgs, fullArgs]) {
        await runCli(["pool", "fill"], { env });
        const r = await runCliJson(args.slice(0, -cmd.length - 1).concat(["--json", "--", ...cmd]), { env });
        assert.equal(r.code, 3, r.stderr);
        json.push(r.json);
      }
      const [fast, full] = json as [Record<string, unknown>, Record<string, unknown>];
      assert.deepEqual(Object.keys(fast), Object.keys(full), "same fields, same order");
      for (const k of Object.keys(full))
        if (!["vm_id", "output_id", "duration_ms", "exec_ms"].includes(k))
          assert.deepEqual(fast[k], full[k], `field ${k}`);
      assert.equal(fast.boot_ms, 0);

      // Deadline: exit 124 and TIMED OUT, the command killed with the sandbox given up.
      await runCli(["pool", "fill"], { env });
      const slow = await runCli(["run", "--timeout-seconds", "1", "--", "sleep", "30"], { env: loud });
      assert.equal(slow.code, 124, slow.stderr);
      assert.match(slow.stderr, /exit 124 · gvisor · \d+ ms · TIMED OUT · output vm_/);
    }),
    { ...POOL, PYRO_POOL_SIZE: "1" },
  );
});

test("a pool left by an older pyro (another key directory name) is destroyed, not claimed", async (t) => {
  await withGvisorState(
    t,
    guarded(async ({ env, stateDir }) => {
      assert.equal((await runCli(["pool", "fill"], { env: { ...env, PYRO_POOL_SIZE: "1" } })).code, 0);
      const [old] = await poolIds(stateDir, "ready");
      assert.ok(old);
      // The same key under the SHA-256 name pyro used before its key ids were FNV-1a.
      const root = join(stateDir, "pool");
      const [kd] = (await readdir(root)).filter((n) => /^[0-9a-f]{16}$/.test(n));
      await rename(join(root, kd!), join(root, "5d1e3b6a0c2f4e8d"));
      const run = await runCliJson<{ vm_id: string; boot_ms: number }>(["run", "--json", "--", "true"], {
        env: { ...env, PYRO_POOL_SIZE: "1" },
      });
      assert.equal(run.code, 0, run.stderr);
      assert.notEqual(run.json.vm_id, old, "the old directory's sandbox is not handed out");
      const fill = await runCliJson<{ destroyed: number }>(["pool", "fill", "--json"], {
        env: { ...env, PYRO_POOL_SIZE: "1" },
      });
      assert.equal(fill.code, 0, fill.stderr);
      assert.deepEqual(await sandboxProcesses(old), [], "its sandbox was destroyed");
      assert.equal(existsSync(join(root, "5d1e3b6a0c2f4e8d")), false, "and its directory removed");
      assert.equal((await poolIds(stateDir, "ready")).length, 1, "a fresh one is ready");
    }),
    POOL,
  );
});

test("out of the box (no PYRO_POOL_* set) a plain `pyro run` tops up 2 in the background, the next is pooled, drain leaves nothing", async (t) => {
  await withGvisorState(
    t,
    guarded(async ({ env, stateDir }) => {
      // What a user's shell has: none of the pool's settings (helpers.ts sets size 0 for tests).
      const { PYRO_POOL_SIZE: _s, PYRO_POOL_KEYS: _k, PYRO_POOL_TOPUP: _t, ...plain } = env;
      type Run = { vm_id: string; exit_code: number; boot_ms: number };
      const first = await runCliJson<Run>(["run", "debian:12", "--json", "--", "true"], { env: plain });
      assert.equal(first.code, 0, first.stderr);
      assert.ok(first.json.boot_ms > 0, "an empty pool: the first run starts its own sandbox");
      // The detached fill it started puts two ready sandboxes in place (poll, no timing assumed).
      const deadline = Date.now() + 120_000;
      while ((await poolIds(stateDir, "ready")).length < 2) {
        assert.ok(Date.now() < deadline, "the background fill did not make 2 ready sandboxes in 120 s");
        await sleep(250);
      }
      const ready = await poolIds(stateDir, "ready");
      const second = await runCliJson<Run>(["run", "debian:12", "--json", "--", "true"], { env: plain });
      assert.equal(second.code, 0, second.stderr);
      assert.equal(second.json.boot_ms, 0, "the second run came from the pool");
      assert.ok(ready.includes(second.json.vm_id));
      // Let the top-up that run started finish, then drain: no sandbox, no process is left.
      while ((await poolIds(stateDir, "used")).length || (await poolIds(stateDir, "ready")).length < 2) {
        assert.ok(Date.now() < deadline + 60_000, "the top-up after the pooled run did not finish");
        await sleep(250);
      }
      const drained = await runCli(["pool", "drain"], { env: plain });
      assert.equal(drained.code, 0, drained.stderr);
      assert.deepEqual(await runscList(stateDir), []);
      assert.equal(existsSync(join(stateDir, "pool")), false);
    }),
  );
});
