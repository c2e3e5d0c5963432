import { PyroError } from "../../core/errors.js";
import type { SandboxHandle } from "../types.js";
import type { RunscFlags } from "./runsc.js";

/**
 * What a gVisor handle's `data` holds, as createSandbox writes it; only this engine reads it.
 * Stored in VM/workspace records as plain JSON, so it is parsed (never cast) on the way in:
 * a record is read back by later processes, maybe written by an older pyro (no init, exec
 * channel, run dir, limits or network then: those fields are optional) or hand-edited.
 * Free of zod and of the engine (only the errors module): the CLI fast paths read the exec
 * channel through engines/channel.ts, which uses this.
 */
export interface GvisorHandleData {
  /** runsc's global flags for this sandbox (runsc wants the same ones on every call). */
  flags?: RunscFlags;
  containerId: string;
  /** Host directory the init reads its expiry from (ctl/expires_at). */
  ctlDir?: string;
  /** Host directory shared read-write at /.pyro/run (shells, services). */
  runDir?: string;
  /** The sandbox's PID 1 is pyro's init (`/.pyro/init run|read|supervise`). */
  init?: boolean;
  /** The init's exec channel (a unix socket on the host). */
  execSocket?: string;
  memMib?: number;
  pidsLimit?: number;
  /** network/sandbox-net.ts's data (its own shape, checked there). */
  net?: unknown;
  /** The sandbox process (runsc's) on the host. */
  pid?: number;
}

const STRINGS = ["containerId", "ctlDir", "runDir", "execSocket"] as const;
const NUMBERS = ["memMib", "pidsLimit", "pid"] as const;

/**
 * Why `raw` is no gVisor handle's data, or undefined when it is one. Unknown keys are kept
 * (a newer pyro's), wrong types are not: they would reach runsc's argv or a kill(2).
 */
export function gvisorDataProblem(raw: unknown): string | undefined {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) return "data is not an object";
  const d = raw as Record<string, unknown>;
  if (typeof d.containerId !== "string" || !d.containerId) return "data.containerId is not a name";
  for (const k of STRINGS)
    if (d[k] !== undefined && typeof d[k] !== "string") return `data.${k} is not a string`;
  for (const k of NUMBERS)
    if (d[k] !== undefined && (!Number.isInteger(d[k]) || (d[k] as number) < 0))
      return `data.${k} is not a whole number`;
  if (d.init !== undefined && typeof d.init !== "boolean") return "data.init is not a boolean";
  if (d.flags !== undefined) {
    const f = d.flags as Partial<RunscFlags> | null;
    if (
      !f ||
      typeof f.binary !== "string" ||
      !Array.isArray(f.global) ||
      !f.global.every((g) => typeof g === "string")
    )
      return "data.flags is not {binary, global[]}";
  }
  return undefined;
}

/** The handle's gVisor data, or a clear invalid_state error naming what is wrong with it. */
export function gvisorData(handle: SandboxHandle): GvisorHandleData {
  const why = gvisorDataProblem(handle.data);
  if (why)
    throw new PyroError(
      "invalid_state",
      `sandbox ${handle.id} has a damaged gVisor handle (${why})`,
      "delete it (its sandbox is found and removed by its id) and create a new one",
    );
  return handle.data as GvisorHandleData;
}

/** The data, or undefined when damaged: for the paths that must work regardless (destroy). */
export function gvisorDataOrUndefined(handle: SandboxHandle): GvisorHandleData | undefined {
  return gvisorDataProblem(handle.data) ? undefined : (handle.data as GvisorHandleData);
}

/**
 * Whether the sandbox may have network objects of its own to remove: not one made with
 * `--network=none`, so its delete spends no `nft`/`ip` processes on nothing (each spawn holds
 * a busy server's main thread for 6-9 ms). A handle without flags (or damaged) counts as
 * networked, so a crash leftover is still cleaned up.
 */
export function handleMayHaveNetwork(handle: SandboxHandle): boolean {
  const d = gvisorDataOrUndefined(handle);
  if (!d || d.net !== undefined) return true;
  return !(d.flags?.global.includes("--network=none") ?? false);
}
