import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmod, copyFile, mkdir, rename, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { processStartTime } from "../../src/util/owner.js";
import { REPO, runCli, tempDir, withHostDir } from "../helpers.js";

/**
 * `pyro workspace list [--json]` is answered by the launcher's fast path (src/cli/fast-list.ts)
 * without loading the CLI. Shown, as for exec (fast-exec.test.ts), with a copy of the launcher
 * whose full CLI is a stub printing FULL (exit 99): output without FULL is the fast path's.
 * It must be the full CLI's (PYRO_FAST_PATHS=0) byte for byte on the same state dir, for
 * records of every kind written by hand (no sandbox is needed: a "running" gVisor record's
 * sandbox pid is this test's own process), and decline whatever the full path has more to
 * do for.
 */

const LIVE = { pid: process.pid, start: processStartTime(process.pid) };
/** A pid that is certainly gone: a child that has exited (and been reaped). */
const DEAD_PID = spawnSync("true").pid!;
const HOUR = 3600_000;
const iso = (ms: number) => new Date(ms).toISOString();
const idOf = (n: number) => `ws_${n.toString(16).padStart(16, "0")}`;

/** A workspace record as pyro writes it, with `over` applied. */
function record(_ws: string, id: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    workspace_id: id,
    environment: "debian:12",
    state: "stopped",
    reason: null,
    created_at: iso(Date.now() - HOUR),
    expires_at: iso(Date.now() + HOUR),
    ttl_seconds: 7200,
    last_activity_at: iso(Date.now() - HOUR / 2),
    vcpu_count: 1,
    mem_mib: 1024,
    disk_mib: 4096,
    disk_enforced: false,
    network: false,
    engine: "gvisor",
    execution_mode: "gvisor",
    handle: null,
    command_count: 0,
    last_command: null,
    workspace_seed: {
      mode: "empty",
      seed_path: null,
      destination: "/workspace",
      entry_count: 0,
      bytes_written: 0,
    },
    ...over,
  };
}

function handle(ws: string, id: string, pid: number) {
  return {
    engine: "gvisor",
    id,
    sandboxDir: join(ws, id, "sandbox"),
    workspaceDir: join(ws, id, "files"),
    data: { containerId: `pyro-${id}`, pid },
  };
}

async function put(ws: string, id: string, text: string | undefined): Promise<void> {
  await mkdir(join(ws, id, "files"), { recursive: true });
  if (text !== undefined) await writeFile(join(ws, id, "workspace.json"), text);
}

/** The record's lock, held by this (live) process, as util/lock.ts writes it. */
async function lock(ws: string, id: string): Promise<void> {
  await symlink(`pyro-lock:${LIVE.pid}:${LIVE.start}:00ff`, join(ws, id, "workspace.json.lock"));
}

/** A launcher copy whose full CLI only says it was reached. */
async function stubLauncher(host: string): Promise<string> {
  for (const f of ["main.js", "package.json", "pyro-fast-list.cjs"])
    await copyFile(join(REPO, "dist", "cli", f), join(host, f));
  await writeFile(join(host, "pyro.cjs"), 'process.stdout.write("FULL\\n");\nprocess.exit(99);\n');
  return join(host, "main.js");
}

async function withState(fn: (env: NodeJS.ProcessEnv, ws: string, state: string) => Promise<void>) {
  const state = await tempDir("pyro-state-");
  await chmod(state, 0o700);
  const ws = join(state, "workspaces");
  await mkdir(ws);
  // No reap during the test (it would clean up the interrupted records).
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PYRO_STATE_DIR: state,
    PYRO_REAP_INTERVAL_SECONDS: "86400",
  };
  delete env.PYRO_REMOTE;
  try {
    await fn(env, ws, state);
  } finally {
    await rm(state, { recursive: true, force: true });
  }
}

test("workspace list from the fast path prints what the full CLI prints, byte for byte", async () => {
  await withHostDir("pyro-fastlist-", async (host) => {
    const stub = await stubLauncher(host);
    await withState(async (env, ws) => {
      const full = { ...env, PYRO_FAST_PATHS: "0" };
      const both = async (args: string[]) => {
        const fast = await runCli(args, { env, main: stub });
        const slow = await runCli(args, { env: full });
        assert.equal(fast.code, 0, `fast: ${fast.stdout}${fast.stderr}`);
        assert.equal(slow.code, 0, `full: ${slow.stderr}`);
        assert.equal(fast.stdout, slow.stdout, args.join(" "));
        assert.equal(fast.stderr, slow.stderr);
        return fast.stdout;
      };
      assert.equal(await both(["workspace", "list"]), "no workspaces\n");
      assert.equal(await both(["workspace", "list", "--json"]), '{\n  "workspaces": []\n}\n');

      const now = Date.now();
      const w = (id: number, over: Record<string, unknown>) =>
        put(ws, idOf(id), JSON.stringify(record(ws, idOf(id), over), null, 2));
      // Running, its sandbox alive; named and labelled, with a command.
      await w(1, {
        state: "running",
        handle: handle(ws, idOf(1), process.pid),
        name: "api",
        labels: { task: "123", team: "core" },
        command_count: 2,
        last_command: {
          sequence: 2,
          command: "make",
          exit_code: 0,
          started_at: iso(now - 60_000),
          duration_ms: 5,
        },
        last_activity_at: iso(now - 60_000),
      });
      // An older pyro's record: no name, labels, last activity or TTL fields.
      {
        const r = record(ws, idOf(2));
        for (const k of ["last_activity_at", "ttl_seconds", "disk_mib", "disk_enforced"]) delete r[k];
        await put(ws, idOf(2), JSON.stringify(r));
      }
      // Interrupted: a create whose process died, a stop whose process died.
      await w(3, { state: "creating", owner: { pid: DEAD_PID, start: 1 } });
      await w(4, { state: "stopping", owner: { pid: DEAD_PID, start: 1 } });
      // A create in progress (its process lives).
      await w(5, { state: "creating", owner: LIVE });
      // Expired, and paused.
      await w(6, { state: "expired", reason: "ttl elapsed", expires_at: iso(now - HOUR) });
      await w(7, { state: "paused", pause: { with_memory: false, at: iso(now) } });
      // Damaged: a truncated file, no record at all, a handle that is not its own.
      await put(ws, idOf(8), '{"workspace_id": "ws_');
      await put(ws, idOf(9), undefined);
      await w(10, { state: "running", handle: handle(ws, idOf(11), process.pid) });
      // Being deleted: its record already gone under a live lock; renamed out of its id.
      await put(ws, idOf(12), undefined);
      await lock(ws, idOf(12));
      await put(ws, `.removing-${idOf(13)}-1`, "{}");
      // Running under a live operation's lock (a delete at work) whose sandbox is gone: shown
      // as recorded, by both, without asking runsc.
      await w(14, { state: "running", handle: handle(ws, idOf(14), DEAD_PID), tenant: "tok_other" });
      await lock(ws, idOf(14));

      const text = await both(["workspace", "list"]);
      const json = JSON.parse(await both(["workspace", "list", "--json"])) as {
        workspaces: { workspace_id: string; state: string; reason: string | null }[];
      };
      const states = Object.fromEntries(json.workspaces.map((x) => [x.workspace_id, x.state]));
      assert.deepEqual(states, {
        [idOf(1)]: "running",
        [idOf(2)]: "stopped",
        [idOf(3)]: "failed",
        [idOf(4)]: "stopped",
        [idOf(5)]: "creating",
        [idOf(6)]: "expired",
        [idOf(7)]: "paused",
        [idOf(8)]: "damaged",
        [idOf(9)]: "damaged",
        [idOf(10)]: "damaged",
        [idOf(14)]: "running",
      });
      assert.match(text, /^WORKSPACE +NAME +LABELS +STATE/);
      assert.match(text, new RegExp(`${idOf(1)} +api +task=123,team=core +running`));
      const why = (n: number) => json.workspaces.find((x) => x.workspace_id === idOf(n))?.reason ?? "";
      assert.match(why(8), /^unreadable record: /);
      assert.match(why(10), /^invalid record: handle.id/);
    });
  });
});

test("the list fast path leaves to the full CLI what it cannot answer as it would", async () => {
  await withHostDir("pyro-fastlist-", async (host) => {
    const stub = await stubLauncher(host);
    const declines = async (env: NodeJS.ProcessEnv, args = ["workspace", "list", "--json"]) => {
      const r = await runCli(args, { env, main: stub });
      assert.deepEqual([r.code, r.stdout], [99, "FULL\n"], `${args.join(" ")}: ${r.stdout}${r.stderr}`);
    };
    await withState(async (env, ws, state) => {
      const id = idOf(1);
      const write = (over: Record<string, unknown>) => put(ws, id, JSON.stringify(record(ws, id, over)));
      await write({});
      const fast = await runCli(["workspace", "list", "--json"], { env, main: stub });
      assert.equal(fast.code, 0, "a stopped record is the fast path's");
      // Flags it does not take, and a remote server.
      await declines(env, ["workspace", "list", "--label", "a=b"]);
      await declines(env, ["workspace", "list", "--help"]);
      await declines({ ...env, PYRO_REMOTE: "http://127.0.0.1:9" });
      // A record the schema refuses (the full path names its problem), one past its TTL (the
      // full path expires it), a running one whose sandbox pid is gone (only runsc can say).
      await write({ state: "bogus" });
      await declines(env);
      await write({ vcpu_count: "1" });
      await declines(env);
      await write({ expires_at: iso(Date.now() - 1000) });
      await declines(env);
      await write({ state: "running", handle: handle(ws, id, DEAD_PID) });
      await declines(env);
      // A state dir open to others (the full path tightens it) or missing (it makes it).
      await write({});
      await chmod(state, 0o755);
      await declines(env);
      await chmod(state, 0o700);
      await declines({ ...env, PYRO_STATE_DIR: join(state, "none") });
      assert.equal((await runCli(["workspace", "list"], { env, main: stub })).code, 0);
    });
  });
});

test("the list fast path lists records that come and go while it reads", async () => {
  await withHostDir("pyro-fastlist-", async (host) => {
    const stub = await stubLauncher(host);
    await withState(async (env, ws) => {
      const stable = idOf(1);
      await put(ws, stable, JSON.stringify(record(ws, stable, {})));
      // Workspaces made and deleted as pyro does it, one after another, while lists run.
      let stop = false;
      const churned = new Set<string>();
      const churn = (async () => {
        for (let n = 100; !stop; n++) {
          const id = idOf(n);
          churned.add(id);
          const text = JSON.stringify(
            record(ws, id, { state: "running", handle: handle(ws, id, process.pid) }),
          );
          // The directory appears whole with its record (made aside, then renamed into place).
          const made = join(ws, `.making-${id}`);
          await mkdir(join(made, "files"), { recursive: true });
          await writeFile(join(made, "workspace.json"), text);
          await rename(made, join(ws, id));
          await new Promise((r) => setTimeout(r, 5));
          // Delete: under its lock, the directory renamed out of its id, then removed.
          await lock(ws, id);
          await new Promise((r) => setTimeout(r, 5));
          const gone = join(ws, `.removing-${id}-1`);
          await rename(join(ws, id), gone);
          await rm(gone, { recursive: true, force: true });
        }
      })();
      try {
        for (let k = 0; k < 12; k++) {
          const r = await runCli(["workspace", "list", "--json"], { env, main: stub });
          assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
          const listed = (JSON.parse(r.stdout) as { workspaces: { workspace_id: string; state: string }[] })
            .workspaces;
          for (const x of listed)
            if (x.workspace_id === stable) assert.equal(x.state, "stopped");
            else {
              assert.ok(churned.has(x.workspace_id), `unknown ${x.workspace_id}`);
              assert.equal(x.state, "running", JSON.stringify(x));
            }
          assert.ok(listed.some((x) => x.workspace_id === stable));
        }
        // The full path under the same churn, too.
        const r = await runCli(["workspace", "list", "--json"], { env: { ...env, PYRO_FAST_PATHS: "0" } });
        assert.equal(r.code, 0, r.stderr);
      } finally {
        stop = true;
        await churn;
      }
    });
  });
});
