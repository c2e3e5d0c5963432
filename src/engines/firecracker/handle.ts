import { PyroError } from "../../core/errors.js";
import type { SandboxHandle } from "../types.js";
import { vmProcessLoose, vmProcessProblem } from "../vm-process.js";

/** The files of one Firecracker VM (engine.ts fcFiles). */
export interface FcFiles {
  apiSocket: string;
  vsockSocket: string;
  disk: string;
  consoleLog: string;
  socketDir: string;
}

/** What a firecracker handle's `data` holds; only this engine reads it. */
export interface FcData {
  pid: number;
  files: FcFiles;
  /** A string only this VM's command line contains (guards against pid reuse). */
  marker: string;
  boot: { mode: "cold" | "restore"; ms: number };
}

const FILES = ["apiSocket", "vsockSocket", "disk", "consoleLog", "socketDir"] as const;

/** Why `raw` is no firecracker handle's data, or undefined. */
export function fcDataProblem(raw: unknown): string | undefined {
  return vmProcessProblem(raw, FILES);
}

/** The handle's firecracker data, or invalid_state naming what is missing. */
export function fcData(handle: SandboxHandle): FcData {
  const why = fcDataProblem(handle.data);
  if (why)
    throw new PyroError("invalid_state", `sandbox ${handle.id} has no firecracker process recorded (${why})`);
  return handle.data as FcData;
}

/** What destroy can use of a handle that may be damaged: each field only when it has its type. */
export function fcDataLoose(handle: SandboxHandle): Partial<FcData> {
  return vmProcessLoose<FcFiles>(handle.data);
}
