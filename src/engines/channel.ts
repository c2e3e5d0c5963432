import { pidAlive } from "../util/proc.js";
import { gvisorDataOrUndefined } from "./gvisor/handle.js";
import { qemuCtlDir, qemuPid } from "./qemu/handle.js";
import type { SandboxHandle } from "./types.js";

/** Running a command over a channel, and naming a sandbox that died under it (gVisor's today). */
export { runOverChannel, sandboxDeathError } from "./gvisor/channel-run.js";

/**
 * What code outside `engines/` may learn of a stored handle without an engine: its exec
 * channel and its sandbox process. Free of zod and of the engines themselves (only the
 * handles' parsers): the CLI fast paths (esbuild bundles that must stay small) and the warm
 * pool's claim read handles through these functions and nothing else.
 */

/** A running sandbox's exec channel: the init's socket on the host, and whom it belongs to. */
export interface ExecChannel {
  /** The unix socket the sandbox init answers on (engines/gvisor/exec-channel.ts protocol). */
  socket: string;
  /** The sandbox process on the host: the channel is worth trying only while it lives. */
  pid: number;
  /** Where the sandbox reads its expiry (engines/expiry.ts), when it enforces one itself. */
  ctlDir?: string;
}

/** The handle's exec channel, or undefined when its sandbox has none (engine, age, damage). */
export function execChannel(
  handle: Pick<SandboxHandle, "engine" | "id" | "sandboxDir" | "data">,
): ExecChannel | undefined {
  if (handle.engine !== "gvisor") return undefined;
  const d = gvisorDataOrUndefined(handle as SandboxHandle);
  if (!d?.execSocket || d.pid === undefined) return undefined;
  return { socket: d.execSocket, pid: d.pid, ...(d.ctlDir ? { ctlDir: d.ctlDir } : {}) };
}

/** The host pid of the sandbox's process (runsc's sandbox, QEMU), when its handle records one. */
export function sandboxPid(
  handle: Pick<SandboxHandle, "engine" | "id" | "sandboxDir" | "data">,
): number | undefined {
  switch (handle.engine) {
    case "gvisor":
      return gvisorDataOrUndefined(handle as SandboxHandle)?.pid;
    case "qemu":
      return qemuPid(handle.data);
    default:
      return undefined;
  }
}

/**
 * True when the engine's own `inspect` would answer "running" from the handle alone, without
 * starting a process: a gVisor sandbox whose recorded runsc pid lives (GvisorEngine.inspect's
 * first test). Undefined when only the engine can tell (another engine, no pid recorded, a
 * damaged handle, a pid that is gone): the CLI's list fast path then leaves the list to it.
 */
export function runningByPid(
  handle: Pick<SandboxHandle, "engine" | "id" | "sandboxDir" | "data">,
): true | undefined {
  if (handle.engine !== "gvisor") return undefined;
  const pid = gvisorDataOrUndefined(handle as SandboxHandle)?.pid;
  return pid !== undefined && pidAlive(pid) ? true : undefined;
}

/**
 * The directory whose `expires_at` the sandbox (or its watchdog) enforces without pyro
 * running (engines/expiry.ts), when it has one: the pool moves a claimed entry's expiry there.
 */
export function expiryDir(
  handle: Pick<SandboxHandle, "engine" | "id" | "sandboxDir" | "data">,
): string | undefined {
  switch (handle.engine) {
    case "gvisor":
      return gvisorDataOrUndefined(handle as SandboxHandle)?.ctlDir;
    case "qemu":
      return qemuCtlDir(handle.data);
    default:
      return undefined;
  }
}
