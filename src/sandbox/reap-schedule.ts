import { statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { noted } from "../util/best-effort.js";

/**
 * When the TTL reaper runs. Reaping looks at every VM and workspace record, so it must not
 * run on every call (the CLI is a new process each time: an in-process throttle never
 * fires, and `workspace exec` grew with the number of workspaces). One stamp file per state
 * dir says when the last reap was started, by any process: a call reaps only when the stamp
 * is older than the interval, and then off its own path (a detached child for the CLI, a
 * promise nobody waits for in the SDK and MCP server). A workspace or VM past its TTL is
 * still refused on its own next use: each operation checks its own record's expiry.
 */
export const DEFAULT_REAP_INTERVAL_S = 30;

export function reapIntervalMs(env: NodeJS.ProcessEnv): number {
  const v = Number(env.PYRO_REAP_INTERVAL_SECONDS);
  return (Number.isFinite(v) && v >= 0 ? v : DEFAULT_REAP_INTERVAL_S) * 1000;
}

export const reapStampPath = (stateDir: string) => join(stateDir, "reap.stamp");

/**
 * Pure: is a reap due, given the stamp's mtime? Without a stamp (a new state dir, or one from
 * before stamps) the first call only starts the clock: the first reap comes one interval later.
 */
export function reapDue(stampMtimeMs: number | undefined, now: number, intervalMs: number): boolean {
  if (stampMtimeMs === undefined) return false;
  // A stamp from the future (clock moved back) counts as old, or reaping would stop.
  return now - stampMtimeMs >= intervalMs || stampMtimeMs > now + 60_000;
}

/**
 * Claims the next reap: true when one is due, and then the stamp is moved to now so that
 * other processes skip it. Two processes may both claim one at the same instant; reaping is
 * idempotent (each record is handled under its lock), so that only costs a second scan.
 */
export async function claimReap(stateDir: string, intervalMs: number, now = Date.now()): Promise<boolean> {
  // Synchronous: one stat on every call's path, cheaper than a thread-pool round trip.
  const path = reapStampPath(stateDir);
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) {
    // No state dir yet is fine: nothing to reap, and the next call tries again.
    try {
      writeFileSync(path, "pyro: the last TTL reap started at this file's mtime\n");
    } catch (err) {
      noted("no state dir yet: nothing to reap, the next call tries again", err);
    }
    return false;
  }
  if (!reapDue(st.mtimeMs, now, intervalMs)) return false;
  const t = new Date(now);
  utimesSync(path, t, t);
  return true;
}

/** Starts `argv` (the CLI's own `pyro vm reap`) detached, its output discarded. */
export function spawnDetached(argv: readonly string[], env: NodeJS.ProcessEnv): void {
  try {
    // Loaded on use: the CLI's fast paths rarely spawn, and node:child_process costs ~0.5 ms.
    const { spawn } = process.getBuiltinModule("node:child_process");
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: "ignore", env });
    child.on("error", () => undefined);
    child.unref();
  } catch (err) {
    // A reap that cannot start now happens on a later call.
    noted("a reap that cannot start now happens on a later call", err);
  }
}

/** `pyro vm reap` as the CLI whose launcher is `cli` starts it, detached. */
export function detachedReapArgv(cli: string): string[] {
  return [process.execPath, cli, "vm", "reap", "--json"];
}

/** For the CLI's fast paths (no Runtime): claims the next reap and, when due, starts it detached. */
export async function spawnReapIfDue(stateDir: string, env: NodeJS.ProcessEnv, cli: string): Promise<void> {
  if (await claimReap(stateDir, reapIntervalMs(env)).catch(() => false))
    spawnDetached(detachedReapArgv(cli), env);
}
