import type { SandboxHandle } from "../types.js";

/** What a host-compat handle's `data` holds: only whether `stop` was called. */
export interface HostHandleData {
  running: boolean;
}

/**
 * The handle's host data. There is no sandbox behind it to lose, so nothing is refused:
 * anything but an explicit `running: false` (a damaged or foreign value too) reads as
 * running, as it always has.
 */
export function hostData(handle: SandboxHandle): HostHandleData {
  const d = handle.data as { running?: unknown } | null | undefined;
  return { running: !(d && typeof d === "object" && d.running === false) };
}
