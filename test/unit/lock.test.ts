import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { lstat, mkdir, readFile, readlink, rm, symlink, utimes } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { acquireLock, withLock, withLockIfFree } from "../../src/util/lock.js";
import { bump } from "../fixtures/lock-child.js";
import { REPO, tempDir } from "../helpers.js";

const CHILD = join(REPO, "test", "fixtures", "lock-child.ts");

let dir: string;
const children: ChildProcess[] = [];
before(async () => {
  dir = await tempDir("pyro-unit-lock-");
});
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

function child(...args: string[]): ChildProcess {
  const c = spawn(process.execPath, ["--import", "tsx", CHILD, ...args], {
    cwd: REPO,
    env: { ...process.env, PYRO_LOCK_CHILD: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(c);
  return c;
}

function exited(c: ChildProcess): Promise<number | null> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve(c.exitCode);
  return new Promise((res) => c.once("exit", (code) => res(code)));
}

/** A child that holds the lock on `path`, once it says so. */
async function holder(path: string): Promise<ChildProcess> {
  const c = child("hold", path);
  let err = "";
  c.stderr?.on("data", (d) => {
    err += d;
  });
  await new Promise<void>((res, rej) => {
    c.stdout?.on("data", (d: Buffer) => {
      if (d.toString().includes("held")) res();
    });
    c.once("exit", () => rej(new Error(`lock child exited before holding the lock: ${err}`)));
  });
  return c;
}

/** The pid of a process that has exited (for a lock left by a dead owner). */
function deadPid(): number {
  return Number(spawnSync("sh", ["-c", "echo $$"]).stdout.toString().trim());
}

test("mutual exclusion: child processes and in-process contenders, starting from a dead owner's lock", async () => {
  const p = join(dir, "counter");
  // Every contender finds a dead owner's lock first: only one may take it over.
  await symlink(`pyro-lock:${deadPid()}:1:00ff`, `${p}.lock`);
  const procs = Array.from({ length: 3 }, () => child("count", p, "15"));
  const local = Array.from({ length: 15 }, () => bump(p));
  const codes = await Promise.all(procs.map(exited));
  await Promise.all(local);
  assert.deepEqual(codes, [0, 0, 0], "no child saw another holder inside (its O_EXCL marker would throw)");
  assert.equal(Number(await readFile(p, "utf8")), 3 * 15 + 15, "no lost update");
  await assert.rejects(lstat(`${p}.lock`), { code: "ENOENT" }, "lock released");
  await assert.rejects(lstat(`${p}.takeover.lock`), { code: "ENOENT" }, "takeover mutex released");
});

test("a lock whose owner was SIGKILLed is taken over at once", async () => {
  const p = join(dir, "killed");
  const c = await holder(p);
  assert.match(
    await readlink(`${p}.lock`),
    new RegExp(`^pyro-lock:${c.pid}:\\d+:`),
    "the lock names its owner",
  );
  c.kill("SIGKILL");
  await exited(c);
  const t0 = performance.now();
  assert.equal(await withLock(p, async () => "mine"), "mine");
  const ms = performance.now() - t0;
  assert.ok(ms < 1000, `took over in ${ms.toFixed(0)} ms`);
});

test("a live owner's lock is waited for, never taken over", async () => {
  const p = join(dir, "live");
  const c = await holder(p);
  const before = await readlink(`${p}.lock`);
  await assert.rejects(
    withLock(p, async () => "stolen", { waitMs: 1500 }),
    (e: NodeJS.ErrnoException) => {
      assert.equal(e.code, "ELOCKED");
      assert.match(e.message, new RegExp(`held by pyro process ${c.pid}`));
      return true;
    },
  );
  assert.equal(await readlink(`${p}.lock`), before, "still the owner's lock");
  assert.equal(await withLockIfFree(p, async () => "stolen"), undefined);
  // Once the owner is gone the waiter gets it.
  const waiting = withLock(p, async () => "after", { waitMs: 20_000 });
  c.kill("SIGKILL");
  assert.equal(await waiting, "after");
});

test("one process's concurrent operations wait for each other (the owner being alive means wait)", async () => {
  const p = join(dir, "same");
  const release = await acquireLock(p);
  assert.equal(await withLockIfFree(p, async () => 1), undefined);
  await assert.rejects(
    withLock(p, async () => 1, { waitMs: 300 }),
    { code: "ELOCKED" },
  );
  await release();
  assert.deepEqual(await withLockIfFree(p, async () => 2), { value: 2 });
});

test("a lock without owner (the old lock directory) is taken over only once 15 s old", async () => {
  const p = join(dir, "legacy");
  await mkdir(`${p}.lock`);
  await assert.rejects(
    withLock(p, async () => 1, { waitMs: 300 }),
    { code: "ELOCKED" },
  );
  const old = new Date(Date.now() - 20_000);
  await utimes(`${p}.lock`, old, old);
  const t0 = performance.now();
  assert.equal(await withLock(p, async () => 2), 2);
  assert.ok(performance.now() - t0 < 1000);
  await assert.rejects(lstat(`${p}.lock`), { code: "ENOENT" });
});

test("a takeover mutex left by a dead process blocks only until it is stale", async () => {
  const p = join(dir, "mutex");
  await symlink(`pyro-lock:${deadPid()}:1:00aa`, `${p}.lock`);
  await symlink(`pyro-lock:${deadPid()}:1:00bb`, `${p}.takeover.lock`);
  await assert.rejects(
    withLock(p, async () => 1, { waitMs: 300 }),
    { code: "ELOCKED" },
  );
  const old = new Date(Date.now() - 10_000);
  spawnSync("touch", ["-h", "-d", old.toISOString(), `${p}.takeover.lock`]);
  assert.equal(await withLock(p, async () => 2, { waitMs: 2000 }), 2);
});

test("createDir: false does not bring back a removed directory", async () => {
  const p = join(dir, "gone", "rec.json");
  await assert.rejects(
    withLock(p, async () => 1, { createDir: false, missingDir: () => new Error("record gone") }),
    /record gone/,
  );
  await assert.rejects(lstat(join(dir, "gone")), { code: "ENOENT" });
  assert.equal(await withLock(p, async () => 3), 3, "the default creates it");
});
