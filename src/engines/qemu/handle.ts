import { PyroError } from "../../core/errors.js";
import type { SandboxHandle } from "../types.js";
import { vmProcessLoose, vmProcessProblem } from "../vm-process.js";
import type { Accel } from "./args.js";
import type { VmFiles } from "./vmproc.js";

/**
 * What a qemu handle's `data` holds: enough for any later process to re-attach. Only this
 * engine reads it (and engines/channel.ts its pid, for the warm pool). Free of zod and of
 * the engine: the pool's claim, in the CLI's fast bundle, reaches it through channel.ts.
 */
export interface QemuHandleData {
  pid: number;
  binary: string;
  accel: Accel;
  files: VmFiles;
  /** A string only this VM's command line contains (guards against pid reuse). */
  marker: string;
  boot: { mode: "cold" | "restore"; ms: number };
  snapshotKey: string;
  warnings: string[];
  /** The expiry watchdog's directory (ctl/expires_at) and process, when the VM has a TTL. */
  ctlDir?: string;
  watchPid?: number;
  /** network/sandbox-net.ts's data (its own shape, checked there). */
  net?: unknown;
}

const FILES = ["disk", "consoleLog", "qemuLog", "agentSocket", "qmpSocket", "socketDir"] as const;

/** Why `raw` is no qemu handle's data (of what the engine needs to reach the VM), or undefined. */
export function qemuDataProblem(raw: unknown): string | undefined {
  const vm = vmProcessProblem(raw, FILES);
  if (vm) return vm;
  const d = raw as Record<string, unknown>;
  if (d.ctlDir !== undefined && typeof d.ctlDir !== "string") return "data.ctlDir is not a string";
  if (d.watchPid !== undefined && !Number.isInteger(d.watchPid)) return "data.watchPid is not a whole number";
  return undefined;
}

/** The handle's qemu data, or invalid_state naming what is missing. */
export function qemuData(handle: SandboxHandle): QemuHandleData {
  const why = qemuDataProblem(handle.data);
  if (why) throw new PyroError("invalid_state", `sandbox ${handle.id} has no qemu process recorded (${why})`);
  return handle.data as QemuHandleData;
}

/**
 * What destroy can use of a handle that may be damaged or half-written: each field only
 * when it has its type (the VM is still found and killed through what is there).
 */
export function qemuDataLoose(handle: SandboxHandle): Partial<QemuHandleData> {
  const d = handle.data && typeof handle.data === "object" ? (handle.data as Record<string, unknown>) : {};
  return {
    ...vmProcessLoose<VmFiles>(d),
    ...(Number.isInteger(d.watchPid) ? { watchPid: d.watchPid as number } : {}),
  };
}

/** The VM process's pid, when the data records one. */
export function qemuPid(raw: unknown): number | undefined {
  const pid = raw && typeof raw === "object" ? (raw as { pid?: unknown }).pid : undefined;
  return Number.isInteger(pid) && (pid as number) > 0 ? (pid as number) : undefined;
}

/** The expiry watchdog's directory, when the data records one. */
export function qemuCtlDir(raw: unknown): string | undefined {
  const dir = raw && typeof raw === "object" ? (raw as { ctlDir?: unknown }).ctlDir : undefined;
  return typeof dir === "string" ? dir : undefined;
}
