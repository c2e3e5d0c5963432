import { isIPv4 } from "node:net";
import type { NetworkPolicy } from "../contract/defaults.js";
import { PyroError } from "../core/errors.js";

// The policies themselves (off, egress, egress+published-ports) are the contract's
// (contract/defaults.ts NETWORK_POLICIES); this file says what each one opens.

export interface PublishedPort {
  host_port: number;
  guest_port: number;
}

/** The network a sandbox is given: stored in its record and handed to the engine. */
export interface NetworkSpec {
  policy: NetworkPolicy;
  /** CIDRs opened even inside the default-denied ranges (never the host itself). */
  allow_cidrs: string[];
  /** CIDRs closed on top of the defaults; they win over allow_cidrs. */
  deny_cidrs: string[];
  /**
   * When non-empty, egress is limited to these names (and allow_cidrs): the guest's resolver
   * is pyro's forwarder, which answers only these names and opens only the answered addresses.
   */
  allow_hosts: string[];
  publish: PublishedPort[];
}

/**
 * Closed by default with network on: this host's loopback, private (RFC 1918), CGNAT,
 * link-local (with the 169.254.169.254 metadata address), "this network", multicast and
 * reserved ranges. The host's own addresses are closed separately (all traffic from a
 * sandbox to the host is dropped in the input hook, whatever the address).
 */
export const DEFAULT_DENY = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "224.0.0.0/4",
  "240.0.0.0/4",
];

export function networkOff(): NetworkSpec {
  return { policy: "off", allow_cidrs: [], deny_cidrs: [], allow_hosts: [], publish: [] };
}

/** A CIDR or a bare IPv4 address (taken as /32), normalised; refuses anything else. */
export function parseCidr(s: string): string {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})(?:\/(\d{1,2}))?$/.exec(s.trim());
  const bits = m?.[2] === undefined ? 32 : Number(m[2]);
  if (!m?.[1] || !isIPv4(m[1]) || bits > 32)
    throw new PyroError(
      "invalid_argument",
      `not an IPv4 CIDR: ${JSON.stringify(s)}`,
      "give an address or network such as 203.0.113.7 or 203.0.113.0/24 (IPv6 is not routed to sandboxes)",
    );
  // Host bits cleared, so the set element is the network nft expects.
  const n = ipToInt(m[1]) & (bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0);
  return `${intToIp(n >>> 0)}/${bits}`;
}

/** A DNS name as the forwarder compares it: lower case, no trailing dot; `*.` prefix allowed. */
export function parseHostName(s: string): string {
  const name = s.trim().toLowerCase().replace(/\.$/, "");
  const label = "[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?";
  if (name.length > 253 || !new RegExp(`^(?:\\*\\.)?${label}(?:\\.${label})*$`).test(name))
    throw new PyroError(
      "invalid_argument",
      `not a host name: ${JSON.stringify(s)}`,
      "give a DNS name such as example.com or *.example.com",
    );
  return name;
}

/** `[HOSTPORT:]GUESTPORT`; a missing host port is chosen later (a free one). */
export function parsePublish(s: string | number): { host_port?: number; guest_port: number } {
  const m = /^(?:(\d{1,5}):)?(\d{1,5})$/.exec(String(s).trim());
  const port = (x: string | undefined) => (x === undefined ? undefined : Number(x));
  const host = port(m?.[1]);
  const guest = port(m?.[2]);
  const ok = (p: number | undefined) => p === undefined || (p >= 1 && p <= 65535);
  if (!m || guest === undefined || !ok(host) || !ok(guest))
    throw new PyroError(
      "invalid_argument",
      `not a port to publish: ${JSON.stringify(s)}`,
      "give GUESTPORT or HOSTPORT:GUESTPORT, e.g. 8080 or 18080:8080 (1-65535)",
    );
  return { ...(host !== undefined ? { host_port: host } : {}), guest_port: guest };
}

export function ipToInt(ip: string): number {
  return ip.split(".").reduce((a, o) => (a * 256 + Number(o)) >>> 0, 0);
}
export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join(".");
}

/** Whether an IPv4 address lies in a CIDR. */
export function inCidr(ip: string, cidr: string): boolean {
  const [net, b] = cidr.split("/");
  const bits = Number(b);
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return (ipToInt(ip) & mask) >>> 0 === (ipToInt(net ?? "") & mask) >>> 0;
}

/**
 * The policy a create/update asks for, from the new fields and the old boolean. `network`
 * true is `egress`; giving both with different meanings is refused.
 */
export function resolvePolicy(input: { network?: boolean; network_policy?: NetworkPolicy }): NetworkPolicy {
  const fromBool = input.network === undefined ? undefined : input.network ? "egress" : "off";
  if (input.network_policy === undefined) return fromBool ?? "off";
  if (input.network === true && input.network_policy === "off")
    throw new PyroError(
      "invalid_argument",
      "network=true contradicts network_policy=off",
      "give only network_policy (network=true is the old spelling of network_policy=egress)",
    );
  return input.network_policy;
}

/** The spec of a record made before policies: `network` alone (true meant egress). */
export function legacyNetwork(network: boolean): NetworkSpec {
  return { ...networkOff(), policy: network ? "egress" : "off" };
}
