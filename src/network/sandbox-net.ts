import { join } from "node:path";
import { PyroError } from "../core/errors.js";
import { applyRules, readdressGuest, setupNetwork, teardownNetwork } from "./netns.js";
import type { NetPlumbing } from "./nft.js";
import type { NetworkSpec } from "./policy.js";
import {
  type RootlessNetState,
  setupRootlessNetwork,
  teardownRootlessNetwork,
  updateRootlessNetwork,
} from "./rootless-net.js";
import type { NetworkInfo } from "./types.js";

/**
 * What an engine handle (gVisor, QEMU) keeps of its network: plain JSON the engine stores in
 * its handle and hands back here (the engines own their handles; this module reads none).
 */
export interface SandboxNetData {
  plumbing: NetPlumbing;
  spec: NetworkSpec;
  /** Without root: the pasta namespace the sandbox runs in (network/rootless-net.ts). */
  rootless?: RootlessNetState;
}

const EGRESS: NetworkSpec = {
  policy: "egress",
  allow_cidrs: [],
  deny_cidrs: [],
  allow_hosts: [],
  publish: [],
};

/** What a sandbox's network is made from (the fields of the engines' SandboxSpec it needs). */
export interface SandboxNetSpec {
  id: string;
  sandboxDir: string;
  net?: NetworkSpec | undefined;
}

/** Sets up the sandbox's namespace; what the bundle mounts and the handle keeps. */
export async function sandboxNetwork(spec: SandboxNetSpec, env?: NodeJS.ProcessEnv) {
  const net = spec.net && spec.net.policy !== "off" ? spec.net : EGRESS;
  const resolvConfPath = join(spec.sandboxDir, "resolv.conf");
  const { plumbing } = await setupNetwork(spec.id, net, { resolvConfPath, ...(env ? { env } : {}) });
  const data: SandboxNetData = { plumbing, spec: net };
  return { mount: { nsPath: plumbing.nsPath, resolvConf: resolvConfPath }, data };
}

/**
 * Without root: the sandbox's namespace is pasta's (network/rootless-net.ts); `enter` is the
 * argv prefix that starts runsc inside it.
 */
export async function rootlessSandboxNetwork(spec: SandboxNetSpec, env?: NodeJS.ProcessEnv) {
  const net = spec.net && spec.net.policy !== "off" ? spec.net : EGRESS;
  const resolvConfPath = join(spec.sandboxDir, "resolv.conf");
  const { state, enter } = await setupRootlessNetwork(spec.id, net, {
    sandboxDir: spec.sandboxDir,
    resolvConfPath,
    ...(env ? { env } : {}),
  });
  const nsPath = `/proc/${state.holderPid}/ns/net`;
  const plumbing: NetPlumbing = {
    netns: `pasta:${state.pastaPid}`,
    nsPath,
    hostIf: "",
    table: "pyro",
    gateway: state.gateway ?? "",
    guestIp: state.guestIp ?? "",
  };
  const data: SandboxNetData = { plumbing, spec: net, rootless: state };
  return { mount: { nsPath, resolvConf: resolvConfPath, enter }, data };
}

export async function teardownSandboxNetwork(id: string, env?: NodeJS.ProcessEnv): Promise<void> {
  // Without root the only network pyro makes is pasta's (root's teardown has nothing to do).
  if (process.getuid?.() !== 0) await teardownRootlessNetwork(id);
  await teardownNetwork(id, env);
}

/** The stored network data, if it has the shape sandboxNetwork gave it (else none). */
export function netData(raw: unknown): SandboxNetData | undefined {
  const d = raw as Partial<SandboxNetData> | undefined;
  return d && typeof d === "object" && d.plumbing && d.spec ? (d as SandboxNetData) : undefined;
}

/**
 * The namespace of a sandbox whose handle keeps `stored`, made ready for a `runsc restore` on
 * gVisor's netstack (see readdressGuest); its path, or undefined without network.
 */
export async function rearmSandboxNetwork(
  stored: unknown,
  netstack: boolean,
  env?: NodeJS.ProcessEnv,
): Promise<string | undefined> {
  const d = netData(stored);
  if (!d) return undefined;
  if (netstack) await readdressGuest(d.plumbing, env);
  return d.plumbing.nsPath;
}

/**
 * A new policy for the running sandbox `id` whose handle keeps `stored` (its network data):
 * the table is replaced in one transaction.
 */
export async function updateSandboxNetwork(
  id: string,
  stored: unknown,
  net: NetworkSpec,
  env?: NodeJS.ProcessEnv,
): Promise<SandboxNetData> {
  const d = netData(stored);
  if (!d)
    throw new PyroError(
      "invalid_argument",
      `sandbox ${id} was created without network, so it has no network namespace to change`,
      "create a new workspace with network_policy=egress (the network of a gVisor sandbox is fixed when it starts)",
    );
  if (d.rootless) {
    await updateRootlessNetwork(id, d.rootless, d.spec, net, env);
    return { ...d, spec: net };
  }
  await applyRules(id, d.plumbing, net, env ? { env } : {});
  return { plumbing: d.plumbing, spec: net };
}

/**
 * The network of a sandbox whose handle keeps `stored`; `hostNetwork`: the sandbox shares
 * the host's stack (made before issue 13 with network: runsc's --network=host).
 */
export function handleNetInfo(stored: unknown, hostNetwork: boolean): NetworkInfo {
  const d = netData(stored);
  if (!d) {
    const host = hostNetwork;
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
