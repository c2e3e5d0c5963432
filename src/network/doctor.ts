import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ignore } from "../util/best-effort.js";
import { netTools, setupNetwork, teardownNetwork } from "./netns.js";
import { networkOff } from "./policy.js";
import { hostResolvers } from "./resolvers.js";

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
