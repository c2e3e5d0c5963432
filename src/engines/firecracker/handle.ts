import { PyroError } from "../../core/errors.js";
import type { SandboxHandle } from "../types.js";

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
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) return "data is not an object";
  const d = raw as Record<string, unknown>;
  if (!Number.isInteger(d.pid) || (d.pid as number) < 0) return "data.pid is not a whole number";
  if (typeof d.marker !== "string") return "data.marker is not a string";
  const f = d.files as Record<string, unknown> | undefined;
  if (!f || typeof f !== "object" || !FILES.every((k) => typeof f[k] === "string"))
    return "data.files is not the VM's files";
  return undefined;
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
  const d = handle.data && typeof handle.data === "object" ? (handle.data as Record<string, unknown>) : {};
  const f = d.files as Partial<FcFiles> | undefined;
  return {
    ...(Number.isInteger(d.pid) ? { pid: d.pid as number } : {}),
    ...(typeof d.marker === "string" ? { marker: d.marker } : {}),
    ...(f && typeof f === "object" && typeof f.socketDir === "string" ? { files: f as FcFiles } : {}),
  };
}
