import { randomBytes } from "node:crypto";
import { lstat, mkdir, readlink, rm, symlink, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { ignore } from "./best-effort.js";
import { currentOwner, type Owner, ownerAlive } from "./owner.js";

/**
 * Cross-process lock on `path`: a sibling symlink `path.lock` whose target names its owner
 * (`pyro-lock:<pid>:<start time>:<nonce>`). Creating a symlink is atomic and fails if the
 * name exists, so the owner is written in the same step that takes the lock: there is never
 * a lock without an owner to read.
 *
 * - A lock whose owner is alive is waited for, whichever process it is (several async
 *   operations of one server contend like separate processes do).
 * - A lock whose owner died (SIGKILL, power cut) is taken over at once: the pid and its start
 *   time say so, unlike an mtime, which only ages.
 * - A lock without readable owner (the directory proper-lockfile made before, or anything
 *   else at that name) is taken over once it is LEGACY_STALE_MS old, as it was then.
 *
 * Taking over is removing the dead lock and trying again, and the removal runs under a
 * short takeover mutex (`path.takeover.lock`, the same kind of symlink) with a re-check that
 * the lock is still the very one found dead (same target, nonce included): two contenders
 * that both found it dead cannot both remove it, so the second can never remove the lock
 * the first took meanwhile. A mutex whose owner died mid-takeover (a window of a millisecond
 * or so) is removed once it is TAKEOVER_STALE_MS old. (Removing that mutex is a check then
 * an unlink: only a process killed inside a takeover and two others racing within
 * microseconds of each other could both pass it.)
 *
 * As with the owners records keep (sandbox/owner.ts), every pyro process sharing a state dir
 * must see the others' pids: one in another pid namespace would look dead.
 */

/** Age at which a lock without readable owner counts as abandoned (proper-lockfile's `stale`). */
export const LEGACY_STALE_MS = 15_000;
/** Age at which a takeover mutex whose owner died is removed (it is held for about 1 ms). */
const TAKEOVER_STALE_MS = 5_000;
/** How long withLock waits for a live owner by default (what proper-lockfile's retries came to). */
export const DEFAULT_LOCK_WAIT_MS = 20_000;

const PREFIX = "pyro-lock:";

export interface LockOptions {
  /** How long to wait for a live owner before failing with code ELOCKED; 0: do not wait. */
  waitMs?: number;
  /**
   * Create the parent directory when it is missing (the default). Off for a record's lock:
   * a record deleted meanwhile must stay deleted, not come back as an empty directory.
   */
  createDir?: boolean;
  /** With createDir off: the error to throw when the parent directory is missing. */
  missingDir?: () => unknown;
}

/** What `path.lock` was found to be. */
type Holder =
  | { kind: "gone" }
  | { kind: "owned"; target: string; owner: Owner }
  | { kind: "ownerless"; ino: number; mtimeMs: number };

/** The error of a lock still held by a live owner after waiting (code ELOCKED, as proper-lockfile's). */
export class LockedError extends Error {
  readonly code = "ELOCKED";
  constructor(
    readonly lockPath: string,
    readonly owner: Owner | undefined,
  ) {
    super(
      owner
        ? `${lockPath} is held by pyro process ${owner.pid}`
        : `${lockPath} is held (no owner recorded; taken over once ${LEGACY_STALE_MS / 1000} s old)`,
    );
    this.name = "LockedError";
  }
}

function newTarget(): string {
  const o = currentOwner();
  return `${PREFIX}${o.pid}:${o.start}:${randomBytes(6).toString("hex")}`;
}

function parseTarget(t: string): Owner | undefined {
  const m = /^pyro-lock:(\d+):(\d+):[0-9a-f]+$/.exec(t);
  return m ? { pid: Number(m[1]), start: Number(m[2]) } : undefined;
}

async function inspect(lockPath: string): Promise<Holder> {
  try {
    const target = await readlink(lockPath);
    const owner = parseTarget(target);
    if (owner) return { kind: "owned", target, owner };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { kind: "gone" };
    if (code !== "EINVAL") throw e; // EINVAL: not a symlink (an old lock directory)
  }
  const st = await lstat(lockPath).catch(ignore("lock gone meanwhile"));
  return st ? { kind: "ownerless", ino: st.ino, mtimeMs: st.mtimeMs } : { kind: "gone" };
}

function sameHolder(a: Holder, b: Holder): boolean {
  if (a.kind === "owned" && b.kind === "owned") return a.target === b.target;
  if (a.kind === "ownerless" && b.kind === "ownerless") return a.ino === b.ino && a.mtimeMs === b.mtimeMs;
  return false;
}

/** Whether the holder is gone for good: its owner died, or an ownerless lock grew old. */
function abandoned(h: Holder, staleMs: number): boolean {
  if (h.kind === "owned") return !ownerAlive(h.owner);
  if (h.kind === "ownerless") return Date.now() - h.mtimeMs > staleMs;
  return false;
}

/** Removes `lockPath` if it still has `target` (our own lock, or a mutex found abandoned). */
async function removeIfTarget(lockPath: string, target: string): Promise<void> {
  const now = await readlink(lockPath).catch(ignore("lock gone meanwhile: nothing to remove"));
  if (now === target) await unlink(lockPath).catch(ignore("lock taken over meanwhile: nothing to remove"));
}

/** Under the takeover mutex, removes `lockPath` if it is still the abandoned `seen`. */
async function takeOver(lockPath: string, seen: Holder): Promise<void> {
  const mutex = lockPath.replace(/\.lock$/, "") + ".takeover.lock";
  const mine = newTarget();
  try {
    await symlink(mine, mutex);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    const m = await inspect(mutex);
    // Another contender is taking it over (we try again shortly), or died doing so.
    if (m.kind === "owned" && abandoned(m, 0)) {
      const st = await lstat(mutex).catch(ignore("lock mutex gone meanwhile: nothing to take over"));
      if (st && Date.now() - st.mtimeMs > TAKEOVER_STALE_MS) await removeIfTarget(mutex, m.target);
    } else if (m.kind === "ownerless" && abandoned(m, TAKEOVER_STALE_MS)) {
      await rm(mutex, { recursive: true, force: true });
    }
    return;
  }
  try {
    const now = await inspect(lockPath);
    if (sameHolder(now, seen)) await rm(lockPath, { recursive: true, force: true });
  } finally {
    await removeIfTarget(mutex, mine);
  }
}

/**
 * One attempt: our release function, or the live holder that keeps us waiting. Takes over
 * an abandoned lock on the way.
 */
async function attempt(
  lockPath: string,
  createDir: boolean,
): Promise<{ release: () => Promise<void> } | { holder: Holder }> {
  for (let round = 0; ; round++) {
    const mine = newTarget();
    try {
      await symlink(mine, lockPath);
      return { release: () => removeIfTarget(lockPath, mine) };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT" && createDir && round === 0) {
        await mkdir(dirname(lockPath), { recursive: true });
        continue;
      }
      if (code !== "EEXIST") throw e;
    }
    const h = await inspect(lockPath);
    if (h.kind !== "gone" && !abandoned(h, LEGACY_STALE_MS)) return { holder: h };
    if (round >= 3) return { holder: h }; // churning: back off like a waiter
    if (h.kind !== "gone") await takeOver(lockPath, h);
  }
}

/**
 * Takes the lock on `path`, waiting (with backoff) while a live owner holds it; returns the
 * function that releases it. Throws LockedError (code ELOCKED) after `waitMs`.
 */
export async function acquireLock(path: string, opts: LockOptions = {}): Promise<() => Promise<void>> {
  const lockPath = `${path}.lock`;
  const deadline = Date.now() + (opts.waitMs ?? DEFAULT_LOCK_WAIT_MS);
  let delay = 5;
  for (;;) {
    const r = await attempt(lockPath, opts.createDir ?? true).catch((e) => {
      if ((e as NodeJS.ErrnoException).code === "ENOENT" && opts.missingDir) throw opts.missingDir();
      throw e;
    });
    if ("release" in r) return r.release;
    if (Date.now() >= deadline)
      throw new LockedError(lockPath, r.holder.kind === "owned" ? r.holder.owner : undefined);
    const wait = Math.min(delay * (0.5 + Math.random()), Math.max(1, deadline - Date.now()));
    await new Promise((res) => setTimeout(res, wait));
    delay = Math.min(delay * 1.5, 100);
  }
}

/** Runs `fn` under the lock on `path` (see acquireLock). */
export async function withLock<T>(path: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const release = await acquireLock(path, opts);
  try {
    return await fn();
  } finally {
    await release().catch(ignore("releasing a lock: the call's own result or error stands"));
  }
}

/**
 * Runs `fn` under the lock on `path` if it can be had without waiting for a live owner (or
 * within `waitMs`, 0 by default); `undefined` (and `fn` not run) when another operation
 * holds it. For views that must not wait behind a long operation.
 */
export async function withLockIfFree<T>(
  path: string,
  fn: () => Promise<T>,
  opts: LockOptions = {},
): Promise<{ value: T } | undefined> {
  let release: () => Promise<void>;
  try {
    release = await acquireLock(path, { ...opts, waitMs: opts.waitMs ?? 0 });
  } catch (e) {
    if (e instanceof LockedError) return undefined;
    throw e;
  }
  try {
    return { value: await fn() };
  } finally {
    await release().catch(ignore("releasing a lock: the call's own result or error stands"));
  }
}

/** Whether a live owner (or a not yet stale ownerless lock) holds the lock on `path`. */
export async function lockHeld(path: string): Promise<boolean> {
  const h = await inspect(`${path}.lock`).catch(() => ({ kind: "gone" }) as Holder);
  return h.kind !== "gone" && !abandoned(h, LEGACY_STALE_MS);
}
