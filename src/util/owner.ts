import { readFileSync } from "node:fs";
import { pidAlive } from "./proc.js";

/**
 * A pyro process, as written into a record (the process doing a multi-step operation on it)
 * or a lock (the process holding it). A later process can tell work in progress from work
 * whose process died: the pid alone is not enough (pids are reused), so the process's start
 * time (field 22 of /proc/PID/stat, in clock ticks since boot) goes with it.
 */
export interface Owner {
  pid: number;
  start: number;
}

/** Start time of `pid` in clock ticks since boot; 0 when unknown (no procfs, or gone). */
export function processStartTime(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after "(comm)": state is field 3, starttime field 22 → index 19 after the ")".
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(rest[19]) || 0;
  } catch {
    return 0;
  }
}

let self: Owner | undefined;

export function currentOwner(): Owner {
  self ??= { pid: process.pid, start: processStartTime(process.pid) };
  return { ...self };
}

/** Whether the process that wrote `owner` is still running. */
export function ownerAlive(owner: Owner | null | undefined): boolean {
  if (!owner || !pidAlive(owner.pid)) return false;
  const now = processStartTime(owner.pid);
  return owner.start === 0 || now === 0 || now === owner.start;
}
