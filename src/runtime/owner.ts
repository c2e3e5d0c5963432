import { readFileSync } from "node:fs";
import { pidAlive } from "../util/proc.js";

/**
 * The pyro process doing a multi-step operation on a record (creating a sandbox), written
 * into the record before the first step. A later process can tell a step in progress from a
 * step whose process died: the pid alone is not enough (pids are reused), so the process's
 * start time (field 22 of /proc/PID/stat, in clock ticks since boot) goes with it.
 */
export interface Owner {
  pid: number;
  start: number;
}

function startTime(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after "(comm)": state is field 3, starttime field 22 → index 19 after the ")".
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(rest[19]) || 0;
  } catch {
    return 0;
  }
}

export function currentOwner(): Owner {
  return { pid: process.pid, start: startTime(process.pid) };
}

/** Whether the process that wrote `owner` is still running. */
export function ownerAlive(owner: Owner | null | undefined): boolean {
  if (!owner || !pidAlive(owner.pid)) return false;
  const now = startTime(owner.pid);
  return owner.start === 0 || now === 0 || now === owner.start;
}
