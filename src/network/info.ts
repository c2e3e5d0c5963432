import type { Engine, NetworkInfo, SandboxHandle } from "../engines/types.js";
import { type NetworkSpec, networkOff } from "./policy.js";
import { specInfo } from "./sandbox-net.js";

/**
 * What status and vm_network_info report: the engine's own account when it has one (gVisor:
 * the namespace's addresses), else the recorded policy in the engine's mode; null when the
 * sandbox is not running.
 */
export function sandboxNetInfo(
  engine: Engine,
  handle: SandboxHandle | null | undefined,
  running: boolean,
  spec: NetworkSpec | undefined,
  network: boolean,
): NetworkInfo | null {
  if (!running || !handle) return null;
  const own = engine.networkInfo?.(handle);
  if (own) return own;
  const s = spec ?? (network ? { ...networkOff(), policy: "egress" as const } : networkOff());
  return specInfo(s, s.policy === "off" ? "none" : engine.name === "qemu" ? "user" : "host", null, null);
}
