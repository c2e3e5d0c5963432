import { join } from "node:path";
import type { NetworkInfo, SandboxHandle, SandboxSpec } from "../engines/types.js";
import { PyroError } from "../errors.js";
import { applyRules, setupNetwork, teardownNetwork } from "./netns.js";
import type { NetPlumbing } from "./nft.js";
import type { NetworkSpec } from "./policy.js";

/** What an engine handle (gVisor, QEMU) keeps of its network: plain JSON, in handle.data.net. */
export interface SandboxNetData {
  plumbing: NetPlumbing;
  spec: NetworkSpec;
}

const EGRESS: NetworkSpec = {
  policy: "egress",
  allow_cidrs: [],
  deny_cidrs: [],
  allow_hosts: [],
  publish: [],
};

/** Sets up the sandbox's namespace; what the bundle mounts and the handle keeps. */
export async function sandboxNetwork(spec: SandboxSpec, env?: NodeJS.ProcessEnv) {
  const net = spec.net && spec.net.policy !== "off" ? spec.net : EGRESS;
  const resolvConfPath = join(spec.sandboxDir, "resolv.conf");
  const { plumbing } = await setupNetwork(spec.id, net, { resolvConfPath, ...(env ? { env } : {}) });
  const data: SandboxNetData = { plumbing, spec: net };
  return { mount: { nsPath: plumbing.nsPath, resolvConf: resolvConfPath }, data };
}

export async function teardownSandboxNetwork(id: string, env?: NodeJS.ProcessEnv): Promise<void> {
  await teardownNetwork(id, env);
}

/**
 * Whether a gVisor sandbox may have network objects of its own to remove: not one made with
 * `--network=none`, so its delete spends no `nft`/`ip` processes on nothing (each spawn holds
 * a busy server's main thread for 6-9 ms). A handle without flags counts as networked.
 */
export function handleMayHaveNetwork(handle: SandboxHandle): boolean {
  if (netData(handle)) return true;
  const flags = handle.data.flags as { global?: string[] } | undefined;
  return !(flags?.global?.includes("--network=none") ?? false);
}

function netData(handle: SandboxHandle): SandboxNetData | undefined {
  const d = handle.data.net as SandboxNetData | undefined;
  return d && typeof d === "object" && d.plumbing && d.spec ? d : undefined;
}

/** A new policy for a running sandbox: the table is replaced in one transaction. */
export async function updateSandboxNetwork(
  handle: SandboxHandle,
  net: NetworkSpec,
  env?: NodeJS.ProcessEnv,
): Promise<SandboxNetData> {
  const d = netData(handle);
  if (!d)
    throw new PyroError(
      "invalid_argument",
      `sandbox ${handle.id} was created without network, so it has no network namespace to change`,
      "create a new workspace with network_policy=egress (the network of a gVisor sandbox is fixed when it starts)",
    );
  await applyRules(handle.id, d.plumbing, net, env ? { env } : {});
  return { plumbing: d.plumbing, spec: net };
}

export function handleNetInfo(handle: SandboxHandle): NetworkInfo {
  const d = netData(handle);
  const flags = handle.data.flags as { global?: string[] } | undefined;
  if (!d) {
    // Sandboxes made before issue 13 with network: the host's own stack.
    const host = flags?.global?.includes("--network=host") ?? false;
    return {
      policy: host ? "egress" : "off",
      mode: host ? "host" : "none",
      guest_ip: null,
      gateway: null,
      allow_cidrs: [],
      deny_cidrs: [],
      allow_hosts: [],
      published_ports: [],
    };
  }
  return specInfo(d.spec, "namespace", d.plumbing.guestIp, d.plumbing.gateway);
}

export function specInfo(
  spec: NetworkSpec,
  mode: NetworkInfo["mode"],
  guestIp: string | null,
  gateway: string | null,
): NetworkInfo {
  return {
    policy: spec.policy,
    mode: spec.policy === "off" && mode !== "namespace" ? "none" : mode,
    guest_ip: guestIp,
    gateway,
    allow_cidrs: spec.allow_cidrs,
    deny_cidrs: spec.deny_cidrs,
    allow_hosts: spec.allow_hosts,
    published_ports:
      spec.policy === "egress+published-ports"
        ? spec.publish.map((p) => ({
            host_ip: "127.0.0.1",
            host_port: p.host_port,
            guest_port: p.guest_port,
          }))
        : [],
  };
}
