import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ignore } from "../util/best-effort.js";
import { netTools, setupNetwork, teardownNetwork } from "./netns.js";
import { networkOff } from "./policy.js";
import { hostResolvers } from "./resolvers.js";
import { rootlessNetTools, setupRootlessNetwork, teardownRootlessNetwork } from "./rootless-net.js";

/**
 * Which network policies work on this host, found by doing it: a throwaway namespace, veth
 * pair and nftables table are made and removed again (the engine's own code path).
 */
export async function probeNetworkModes(
  engine: { name: string; egressPolicy: boolean } | null,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ modes: string[]; detail: string }> {
  const off = "network_policy=off (loopback only) is the default";
  if (!engine?.egressPolicy)
    return {
      modes: ["off"],
      detail: `${off}; network needs the gVisor engine (${engine?.name ?? "no engine"} cannot enforce the egress policy)`,
    };
  if ((process.getuid?.() ?? 0) !== 0) return probeRootless(off, env);
  const tools = await netTools(env);
  if (typeof tools === "string") return { modes: ["off"], detail: `${off}; egress is unavailable: ${tools}` };
  const id = `vm_${randomBytes(8).toString("hex")}`;
  const dir = await mkdtemp(join(tmpdir(), "pyro-netprobe-"));
  try {
    const t0 = performance.now();
    await setupNetwork(
      id,
      { ...networkOff(), policy: "egress+published-ports" },
      {
        env,
        resolvConfPath: join(dir, "resolv.conf"),
      },
    );
    const ms = Math.round(performance.now() - t0);
    const dns = hostResolvers(env);
    return {
      modes: ["off", "egress", "egress+published-ports"],
      detail: `${off}; egress works: a network namespace per sandbox with NAT and an nftables policy (set up in ${ms} ms here), no route to this host, its loopback, private, link-local, CGNAT or metadata addresses; published ports on 127.0.0.1; guest DNS: ${dns.length ? dns.join(", ") : "none usable (loopback-only resolvers): set PYRO_DNS_UPSTREAM"}; allow_host through pyro's DNS forwarder${dns.length ? "" : " needs an upstream too"}`,
    };
  } catch (e) {
    return { modes: ["off"], detail: `${off}; egress failed a test setup: ${(e as Error).message}` };
  } finally {
    await teardownNetwork(id, env).catch(
      ignore("doctor's test network: tearing down what may be half set up"),
    );
    await rm(dir, { recursive: true, force: true });
  }
}

/** Without root: a throwaway pasta namespace with the policy loaded (rootless-net.ts's own path). */
async function probeRootless(
  off: string,
  env: NodeJS.ProcessEnv,
): Promise<{ modes: string[]; detail: string }> {
  const tools = await rootlessNetTools(env);
  if (typeof tools === "string")
    return { modes: ["off"], detail: `${off}; egress without root is unavailable: ${tools}` };
  const id = `vm_${randomBytes(8).toString("hex")}`;
  const dir = await mkdtemp(join(tmpdir(), "pyro-netprobe-"));
  try {
    const t0 = performance.now();
    await setupRootlessNetwork(
      id,
      { ...networkOff(), policy: "egress" },
      { sandboxDir: dir, resolvConfPath: join(dir, "resolv.conf"), env },
    );
    const ms = Math.round(performance.now() - t0);
    const dns = hostResolvers(env);
    return {
      modes: ["off", "egress", "egress+published-ports"],
      detail: `${off}; egress works without root: pasta's user+network namespace per sandbox with the nftables policy (set up in ${ms} ms here), no route to this host, its loopback, private, link-local, CGNAT or metadata addresses; published ports on 127.0.0.1, fixed at create; allow_host needs root; guest DNS: ${dns.length ? dns.join(", ") : "none usable (loopback-only resolvers): set PYRO_DNS_UPSTREAM"}`,
    };
  } catch (e) {
    return {
      modes: ["off"],
      detail: `${off}; egress without root failed a test setup: ${(e as Error).message}`,
    };
  } finally {
    await teardownRootlessNetwork(id).catch(ignore("doctor's test pasta: stopping what may be half started"));
    await rm(dir, { recursive: true, force: true });
  }
}
