import { type NetworkSpec, networkOff } from "./policy.js";
import { specInfo } from "./sandbox-net.js";
import type { NetworkInfo } from "./types.js";

/** What this needs of an engine (engines/types.ts Engine), typed here: network sits below engines. */
interface NetEngine<H> {
  networkInfo?(handle: H): NetworkInfo | undefined;
  readonly traits: { readonly userNetwork: boolean };
}

/**
 * What status and vm_network_info report: the engine's own account when it has one (gVisor:
 * the namespace's addresses), else the recorded policy in the engine's mode; null when the
 * sandbox is not running.
 */
export function sandboxNetInfo<H>(
  engine: NetEngine<H>,
  handle: H | null | undefined,
  running: boolean,
  spec: NetworkSpec | undefined,
  network: boolean,
): NetworkInfo | null {
  if (!running || !handle) return null;
  const own = engine.networkInfo?.(handle);
  if (own) return own;
  const s = spec ?? (network ? { ...networkOff(), policy: "egress" as const } : networkOff());
  return specInfo(s, s.policy === "off" ? "none" : engine.traits.userNetwork ? "user" : "host", null, null);
}

/** One line for the CLI: policy, address, rules and published ports. */
export function networkLine(n: NetworkInfo | null | undefined): string | undefined {
  if (!n) return undefined;
  const parts = [`${n.policy} (${n.mode}${n.guest_ip ? `, guest ${n.guest_ip}` : ""})`];
  if (n.allow_hosts.length) parts.push(`allow-host ${n.allow_hosts.join(",")}`);
  if (n.allow_cidrs.length) parts.push(`allow-cidr ${n.allow_cidrs.join(",")}`);
  if (n.deny_cidrs.length) parts.push(`deny-cidr ${n.deny_cidrs.join(",")}`);
  for (const p of n.published_ports) parts.push(`${p.host_ip}:${p.host_port} → guest ${p.guest_port}`);
  return parts.join("; ");
}
