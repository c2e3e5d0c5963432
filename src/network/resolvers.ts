import { readFileSync } from "node:fs";
import { isIPv4 } from "node:net";

/**
 * The upstream resolvers a sandbox's DNS goes to: PYRO_DNS_UPSTREAM (comma-separated; tests
 * point it at a server in a namespace of their own), else the host's /etc/resolv.conf.
 * Loopback resolvers (systemd-resolved's 127.0.0.53) cannot be reached from a sandbox and are
 * left out; IPv6 ones too (sandboxes get no IPv6 route).
 */
export function hostResolvers(env: NodeJS.ProcessEnv = process.env): string[] {
  const fromEnv = env.PYRO_DNS_UPSTREAM?.split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const list = fromEnv?.length
    ? fromEnv
    : [...readResolvConf().matchAll(/^\s*nameserver\s+(\S+)/gm)].map((m) => m[1] ?? "");
  return list.filter((a) => isIPv4(a) && !a.startsWith("127."));
}

function readResolvConf(): string {
  try {
    return readFileSync("/etc/resolv.conf", "utf8");
  } catch {
    return "";
  }
}
