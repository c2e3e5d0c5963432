import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, open, readdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { Pyro } from "../../src/index.js";
import {
  CLI,
  poolEntryIds,
  REPO,
  runCli,
  runCliJson,
  runCliJsonGuest,
  runscList,
  runscProcesses,
  type TestState,
  withGvisorState,
  withHostDir,
} from "./../helpers.js";

/**
 * Workspaces from the warm pool (src/pool/workspace-pool.ts, keys `ENV#ws`) against real
 * gVisor: `workspace create` takes a pre-started slot (its id is the slot's), seeds it, and the
 * workspace then works like any other; concurrent creates get distinct slots; a claim is topped
 * up; a creator killed mid-claim leaves what list shows and delete removes (no sandbox process,
 * no loop mount). PYRO_POOL_TOPUP=0 except where the top-up is the point, so no detached filler
 * races the assertions.
 */
const POOL = { PYRO_POOL_SIZE: "2", PYRO_POOL_KEYS: "debian:12#ws", PYRO_POOL_TOPUP: "0", PYRO_QUIET: "1" };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Drains the pool even when the test fails, before the state dir (and its runsc root) goes. */
function guarded(fn: (c: TestState) => Promise<void>): (c: TestState) => Promise<void> {
  return async (c) => {
    try {
      await fn(c);
    } finally {
      await runCli(["pool", "drain"], { env: { ...c.env, PYRO_POOL_TOPUP: "0" } });
    }
  };
}

/** The ids of one kind of slot directory (slots, claiming, dead) over every key. */
const slotIds = (stateDir: string, where: "slots" | "claiming" | "dead" = "slots") =>
  poolEntryIds(stateDir, where);

async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile("/proc/self/mountinfo", "utf8");
  return info
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((m) => m.startsWith(`${dir}/`));
}

/** After delete: nothing of the workspace runs or is mounted, and runsc has no record of it. */
async function assertGone(stateDir: string, id: string): Promise<void> {
  for (let i = 0; i < 40 && (await runscProcesses(`/${id}/`)).length > 0; i++) await sleep(100);
  assert.deepEqual(await runscProcesses(`/${id}/`), [], `no runsc process of ${id}`);
  assert.deepEqual(await mountsUnder(join(stateDir, "workspaces", id)), [], "no loop mount left");
  assert.ok(!(await runscList(stateDir)).some((c) => c.includes(id)), "runsc has no record of it");
  assert.equal(existsSync(join(stateDir, "workspaces", id)), false);
}

async function seedDir(host: string): Promise<string> {
  const dir = join(host, "seed");
  await mkdir(join(dir, "src"), { recursive: true });
  for (let i = 0; i < 10; i++) await writeFile(join(dir, "src", `f${i}.txt`), `file ${i}\n`);
  return dir;
}

interface Ws {
  workspace_id: string;
  state: string;
  disk_enforced: boolean;
  workspace_seed: { entry_count: number };
}

test("workspace create claims a pool slot and seeds it; the workspace works like any other", async (t) => {
  await withGvisorState(
    t,
    guarded(async ({ env, stateDir }) =>
      withHostDir("pyro-wspool-", async (host) => {
        const seed = await seedDir(host);
        const fill = await runCliJson<{ created: number }>(["pool", "fill"], { env });
        assert.equal(fill.code, 0, fill.stderr);
        assert.equal(fill.json.created, 2);
        const slots = await slotIds(stateDir);
        assert.equal(slots.length, 2);
        const st = await runCliJson<{ keys: { key: string; workspace: boolean; ready: number }[] }>(
          ["pool", "status"],
          { env },
        );
        assert.deepEqual(
          st.json.keys.map((k) => [k.key, k.workspace, k.ready]),
          [["debian:12#ws", true, 2]],
        );

        // Two creates at once: each takes its own slot.
        const [a, b] = await Promise.all(
          [0, 1].map(() => runCliJson<Ws>(["workspace", "create", "--seed-path", seed], { env })),
        );
        for (const r of [a!, b!]) {
          assert.equal(r.code, 0, r.stderr);
          assert.equal(r.json.state, "running");
          assert.equal(r.json.disk_enforced, true, "the slot's loop-mounted disk");
          assert.equal(r.json.workspace_seed.entry_count, 11);
        }
        const ids = [a!.json.workspace_id, b!.json.workspace_id];
        assert.deepEqual([...ids].sort(), slots, "both ids were pool slots, distinct");
        assert.deepEqual(await slotIds(stateDir), [], "claimed slots left the pool");
        assert.deepEqual(await slotIds(stateDir, "claiming"), []);

        const id = ids[0]!;
        const cat = await runCliJsonGuest<{ exit_code: number; stdout: string }>(
          [
            "workspace",
            "exec",
            id,
            "--",
            "sh",
            "-c",
            "cat /workspace/src/f3.txt && echo new > /workspace/n.txt",
          ],
          { env },
        );
        assert.equal(cat.code, 0, cat.stderr);
        assert.equal(cat.json.stdout, "file 3\n", "the seed is in /workspace");
        const diff = await runCliJson<{ files: { path: string; status: string }[] }>(
          ["workspace", "diff", id],
          { env },
        );
        assert.equal(diff.code, 0, diff.stderr);
        assert.deepEqual(
          diff.json.files.map((f) => [f.path, f.status]),
          [["n.txt", "added"]],
          "the baseline is the seed",
        );
        const out = join(host, "out");
        const exp = await runCliJson(["workspace", "export", id, "--changed-only", "--output", out], { env });
        assert.equal(exp.code, 0, exp.stderr);
        assert.equal(await readFile(join(out, "n.txt"), "utf8"), "new\n");

        // The pool is empty now: the next create is a fresh one, as before pools existed.
        const c = await runCliJson<Ws>(["workspace", "create", "--seed-path", seed], { env });
        assert.equal(c.code, 0, c.stderr);
        assert.ok(!slots.includes(c.json.workspace_id));

        for (const w of [...ids, c.json.workspace_id]) {
          const del = await runCliJson(["workspace", "delete", w], { env });
          assert.equal(del.code, 0, del.stderr);
          await assertGone(stateDir, w);
        }
      }),
    ),
    POOL,
  );
});

test("a claimed slot is replaced by the detached fill, which the SDK then takes; other settings are never served from the pool", async (t) => {
  await withGvisorState(
    t,
    guarded(async ({ env, stateDir }) => {
      const topup = { ...env, PYRO_POOL_SIZE: "1", PYRO_POOL_TOPUP: "1" };
      assert.equal((await runCli(["pool", "fill"], { env: topup })).code, 0);
      const [slot] = await slotIds(stateDir);
      assert.ok(slot);
      // Another disk size: not what the slot was made with, so a fresh workspace.
      const other = await runCliJson<Ws>(["workspace", "create", "--disk-mib", "256"], { env: topup });
      assert.equal(other.code, 0, other.stderr);
      assert.notEqual(other.json.workspace_id, slot);
      assert.deepEqual(await slotIds(stateDir), [slot]);
      const ws = await runCliJson<Ws>(["workspace", "create"], { env: topup });
      assert.equal(ws.code, 0, ws.stderr);
      assert.equal(ws.json.workspace_id, slot);
      let now: string[] = [];
      for (let i = 0; i < 100; i++) {
        now = await slotIds(stateDir);
        if (now.length === 1) break;
        await sleep(100);
      }
      assert.equal(now.length, 1, "topped up to PYRO_POOL_SIZE again");
      assert.notEqual(now[0], slot, "with a new slot: a claimed one is never handed out again");
      // The SDK (as the MCP server) creates through the same manager: it takes the new slot.
      const sdk = await new Pyro({ env: { ...env, PYRO_POOL_SIZE: "1" } }).createWorkspace({});
      assert.equal(sdk.id, now[0]);
      for (const w of [other.json.workspace_id, ws.json.workspace_id, sdk.id])
        assert.equal((await runCli(["workspace", "delete", w], { env })).code, 0);
      await assertGone(stateDir, ws.json.workspace_id);
      await assertGone(stateDir, sdk.id);
    }),
    POOL,
  );
});

test("kill -9 of workspace create mid-claim leaves nothing unfindable", async (t) => {
  await withGvisorState(
    t,
    guarded(async ({ env, stateDir }) =>
      withHostDir("pyro-wspool-", async (host) => {
        assert.equal((await runCli(["pool", "fill"], { env })).code, 0);
        const [first, second] = await slotIds(stateDir);
        assert.ok(first && second);
        // A seed that takes a while to copy, so the process is killed after the claim's rename
        // and before the record reaches `running`.
        const seed = join(host, "big");
        await mkdir(seed);
        const fh = await open(join(seed, "blob"), "w");
        const chunk = Buffer.alloc(8 << 20, 1);
        for (let i = 0; i < 48; i++) await fh.write(chunk);
        await fh.close();
        const child = spawn(process.execPath, [CLI, "workspace", "create", "--seed-path", seed, "--json"], {
          env,
          cwd: REPO,
          stdio: "ignore",
        });
        const wsDir = join(stateDir, "workspaces");
        let claimed: string | undefined;
        for (let i = 0; i < 400 && !claimed; i++) {
          claimed = (await readdir(wsDir).catch(() => [] as string[])).find((n) => n.startsWith("ws_"));
          if (!claimed) await sleep(10);
        }
        child.kill("SIGKILL");
        await new Promise((r) => child.once("close", r));
        assert.ok(
          claimed && [first, second].includes(claimed),
          `a slot was renamed into workspaces/ (${claimed})`,
        );
        const rec = JSON.parse(await readFile(join(wsDir, claimed, "workspace.json"), "utf8")) as Ws;
        assert.equal(rec.state, "creating", "killed before the record reached running");

        const list = await runCliJson<Ws[] | { workspaces: Ws[] }>(["workspace", "list"], { env });
        assert.equal(list.code, 0, list.stderr);
        const listed = Array.isArray(list.json) ? list.json : list.json.workspaces;
        assert.ok(
          listed.some((w) => w.workspace_id === claimed),
          "list shows it",
        );
        const del = await runCliJson(["workspace", "delete", claimed], { env });
        assert.equal(del.code, 0, del.stderr);
        await assertGone(stateDir, claimed);

        // Killed between winning a slot and renaming it into workspaces/: a claim of a dead
        // process, destroyed by the next fill (or reap).
        const other = claimed === first ? second : first;
        const dead = spawn("true");
        await new Promise((r) => dead.once("close", r));
        const keyDir = join(
          stateDir,
          "pool",
          (await readdir(join(stateDir, "pool"))).find((k) => /^[0-9a-f]{16}$/.test(k))!,
        );
        await rename(join(keyDir, "slots", other), join(keyDir, "claiming", `${other}.${dead.pid}`));
        const fill = await runCliJson<{ destroyed: number }>(["pool", "fill"], {
          env: { ...env, PYRO_POOL_SIZE: "0" },
        });
        assert.equal(fill.code, 0, fill.stderr);
        assert.equal(fill.json.destroyed, 1);
        for (let i = 0; i < 40 && (await runscProcesses(`/${other}/`)).length > 0; i++) await sleep(100);
        assert.deepEqual(await runscProcesses(`/${other}/`), [], "the claimed slot's sandbox is gone");
        assert.deepEqual(await mountsUnder(keyDir), [], "and its disk unmounted");
        assert.equal(existsSync(join(keyDir, "claiming", `${other}.${dead.pid}`)), false);
        assert.deepEqual(await slotIds(stateDir, "claiming"), []);
        assert.deepEqual(await runscList(stateDir), []);
      }),
    ),
    POOL,
  );
});
