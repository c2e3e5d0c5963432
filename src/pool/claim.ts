import { readdirSync, readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { expiryDir, sandboxPid } from "../engines/channel.js";
import { writeExpirySync } from "../engines/expiry.js";
import type { SandboxHandle } from "../engines/types.js";
import { spawnDetached } from "../sandbox/reap-schedule.js";
import { noted } from "../util/best-effort.js";
import { pidAlive } from "../util/proc.js";
import { claimedName, type PoolKey, poolKeyId } from "./config.js";

/**
 * Claiming and giving up a pooled sandbox: the run's path, kept free of the engines, the
 * environment store and zod so that the CLI's fast path (cli/fast-run.ts) can use it with
 * nothing else loaded. The pool's layout is described in pool.ts.
 */
export interface PoolEntry {
  id: string;
  key: PoolKey;
  handle: SandboxHandle;
  created_at: string;
  idle_expires_at: string;
  /**
   * How the environment runs commands (its image's cwd, env and user), recorded at fill time
   * so a claimer need not load the environment store. Absent in entries of older pyro.
   */
  exec?: { cwd: string; env?: Record<string, string>; user?: { uid: number; gid: number } };
}

export interface Claim {
  entry: PoolEntry;
  path: string;
}

/** A ready sandbox this close to its idle expiry is not handed out (the init polls every 5 s). */
export const CLAIM_MARGIN_MS = 10_000;

export const keyDirOf = (root: string, key: PoolKey) => join(root, poolKeyId(key));

/**
 * Takes a ready sandbox for `key` (or nothing) and moves its expiry to the command's deadline:
 * a few file operations, no scan beyond this key's ready/ directory. A claim is one rename
 * from ready/ to claimed/, so two processes can never both win it.
 */
export async function claimEntry(root: string, key: PoolKey, deadlineMs: number): Promise<Claim | undefined> {
  // Synchronous file calls: a handful of tiny metadata operations on pyro's own files, on a
  // one-shot run's hot path, where each thread-pool round trip costs more than the call.
  const dir = keyDirOf(root, key);
  let names: string[];
  try {
    names = readdirSync(join(dir, "ready"));
  } catch {
    return undefined;
  }
  for (const n of names) {
    if (!/^vm_[0-9a-f]{16}\.json$/.test(n)) continue;
    const id = n.slice(0, -5);
    const path = join(dir, "claimed", claimedName(id, deadlineMs, process.pid));
    try {
      renameSync(join(dir, "ready", n), path);
    } catch {
      continue; // another process took it first
    }
    let entry: PoolEntry | undefined;
    try {
      entry = JSON.parse(readFileSync(path, "utf8")) as PoolEntry;
    } catch (err) {
      noted("unreadable entry: moved to used/ below", err);
    }
    const fresh =
      entry?.handle &&
      Date.parse(entry.idle_expires_at) > Date.now() + CLAIM_MARGIN_MS &&
      pidAlive(sandboxPid(entry.handle));
    if (!entry || !fresh) {
      try {
        renameSync(path, join(dir, "used", n));
      } catch (err) {
        noted("another process moved the entry first", err);
      }
      continue;
    }
    // From here the sandbox lives only as long as this command may: if this process dies,
    // the sandbox's init stops it at the deadline (plus the init's own grace).
    setEntryExpiry(entry, new Date(deadlineMs + 5_000).toISOString());
    return { entry, path };
  }
  return undefined;
}

/** Used once: the sandbox stops itself now-ish; the entry goes to used/ for a fill to destroy. */
export async function releaseEntry(root: string, c: Claim): Promise<void> {
  try {
    setEntryExpiry(c.entry, new Date(Date.now() - 1_000).toISOString());
  } catch (err) {
    noted("expiring the used sandbox now: it keeps the claim's expiry, and a clean destroys it", err);
  }
  try {
    renameSync(c.path, join(keyDirOf(root, c.entry.key), "used", `${c.entry.id}.json`));
  } catch (err) {
    noted(
      "moving the used entry: one left in claimed/ is dropped by a clean once its claim deadline passes",
      err,
    );
  }
}

/**
 * `pyro pool fill` detached (unless PYRO_POOL_TOPUP=0): destroys used sandboxes and tops the
 * pool up, while the caller waits for nothing. `cli` is pyro's launcher (dist/cli/main.js).
 */
export function spawnPoolFill(cli: string, env: NodeJS.ProcessEnv): void {
  if (env.PYRO_POOL_TOPUP !== "0") spawnDetached([process.execPath, cli, "pool", "fill", "--json"], env);
}

function setEntryExpiry(entry: PoolEntry, at: string): void {
  const ctl = expiryDir(entry.handle);
  if (ctl) writeExpirySync(ctl, at);
}
