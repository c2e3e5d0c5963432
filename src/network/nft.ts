import { DEFAULT_DENY, type NetworkSpec } from "./policy.js";

/** Every sandbox's /30 lies here (netns.ts allocates from it); no sandbox may reach another. */
export const SANDBOX_SUBNET = "10.247.0.0/16";
/** Traffic from a sandbox is judged first, by that sandbox's own table... */
const FROM_SANDBOX_PRIORITY = -2;
/** ...and only then may another table's guard of its own sandbox see it. */
const TO_SANDBOX_PRIORITY = -1;

/** Kernel objects of one sandbox's network, all named from its id (see names.ts). */
export interface NetPlumbing {
  netns: string;
  /** /run/netns/<netns>: what the OCI spec's network namespace points at. */
  nsPath: string;
  /** The host end of the veth pair (the guest end is eth0 inside the namespace). */
  hostIf: string;
  /** The sandbox's own nftables table (family inet). */
  table: string;
  gateway: string;
  guestIp: string;
}

export interface RulesInput {
  plumbing: NetPlumbing;
  spec: NetworkSpec;
  /** Resolvers the guest may ask directly (port 53 only), when no forwarder is used. */
  resolvers: string[];
  /** With allow_hosts: the forwarder listens on the gateway, port 53. */
  forwarder: boolean;
}

/**
 * The sandbox's whole nftables table, written as one `nft -f` transaction that first removes
 * the old table: a create and every policy update are atomic, and teardown is one
 * `delete table`. Base chains have policy accept, so they only ever drop or reject (an accept
 * here cannot override another table's drop, e.g. a host firewall).
 *
 * Every sandbox has its own table on the same hooks, and the kernel runs base chains of equal
 * priority in no order we choose. So what leaves a sandbox is decided in its own table, at a
 * lower priority (FROM_SANDBOX_PRIORITY) than any table's guard of what enters a sandbox
 * (TO_SANDBOX_PRIORITY): sandbox A's refusal of B's address always runs before B's drop, and
 * A gets a reset at once instead of a timeout, whichever was created first.
 *
 * Order in the egress chain: established replies, other sandboxes (never opened), DNS to the
 * allowed resolvers, the user's deny list, the user's allow list, the default deny list, then
 * either everything (egress) or only the addresses the forwarder answered (allow_hosts).
 * Nothing from the sandbox may reach the host itself (input hook), except the forwarder's port
 * when there is one, and nothing may start a connection into the sandbox except the published
 * ports (DNAT in the output hook, so only from this host, only to 127.0.0.1). Every refusal of
 * the sandbox's own traffic is a TCP reset or an ICMP admin-prohibited (chain `refuse`), so
 * clients fail at once.
 */
export function rulesetText(r: RulesInput): string {
  const { plumbing: p, spec } = r;
  const dev = JSON.stringify(p.hostIf);
  const set = (name: string, items: string[], interval = true) =>
    `  set ${name} { type ipv4_addr;${interval ? " flags interval; auto-merge;" : ""}${
      items.length ? ` elements = { ${items.join(", ")} }` : ""
    } }`;
  const hostsMode = spec.allow_hosts.length > 0;
  const egress =
    spec.policy === "off" ? [] : ["    ip daddr @user_deny goto refuse", "    ip daddr @user_allow accept"];
  const lines = [
    `table inet ${p.table} {`,
    set("user_allow", spec.allow_cidrs),
    set("user_deny", spec.deny_cidrs),
    set("default_deny", DEFAULT_DENY),
    set("resolvers", r.forwarder ? [] : r.resolvers, false),
    // Filled by the forwarder with what it answered (a timeout of its own per element).
    "  set answered { type ipv4_addr; flags timeout; }",
    // A reset for TCP, admin-prohibited for the rest: the guest's connect fails at once.
    "  chain refuse {",
    "    meta l4proto tcp reject with tcp reset",
    "    reject with icmpx admin-prohibited",
    "  }",
    "  chain egress {",
    "    meta nfproto ipv6 drop",
    "    ct state established,related accept",
    ...(spec.policy === "off"
      ? ["    goto refuse"]
      : [
          // Before the allow list: --allow-cidr 10.0.0.0/8 must not open other sandboxes.
          `    ip daddr ${SANDBOX_SUBNET} goto refuse`,
          "    ip daddr @resolvers meta l4proto { tcp, udp } th dport 53 accept",
          ...egress,
          "    ip daddr @default_deny goto refuse",
          hostsMode ? "    ip daddr @answered accept" : "    accept",
          "    goto refuse",
        ]),
    "  }",
    "  chain from_sandbox {",
    `    type filter hook forward priority ${FROM_SANDBOX_PRIORITY}; policy accept;`,
    `    iifname ${dev} jump egress`,
    "  }",
    // Only what did not come from a sandbox reaches this with the sandbox as its destination
    // (every sandbox's own table already refused it in from_sandbox): another machine routing
    // to 10.247.x.y. Dropped, as a host firewall would.
    "  chain to_sandbox {",
    `    type filter hook forward priority ${TO_SANDBOX_PRIORITY}; policy accept;`,
    `    oifname ${dev} ct state established,related accept`,
    `    oifname ${dev} drop`,
    "  }",
    // Only this sandbox's interface matches here, so no other table decides it.
    "  chain input {",
    `    type filter hook input priority ${FROM_SANDBOX_PRIORITY}; policy accept;`,
    `    iifname ${dev} ct state established,related accept`,
    ...(r.forwarder && spec.policy !== "off"
      ? [`    iifname ${dev} ip daddr ${p.gateway} meta l4proto { tcp, udp } th dport 53 accept`]
      : []),
    `    iifname ${dev} goto refuse`,
    "  }",
    "  chain postrouting {",
    "    type nat hook postrouting priority 100; policy accept;",
    `    ip saddr ${p.guestIp} oifname != ${dev} masquerade`,
    // Published ports: connections from the host's 127.0.0.1 leave through the veth with the
    // gateway's address (route_localnet lets them out at all).
    `    oifname ${dev} ip saddr 127.0.0.0/8 masquerade`,
    "  }",
    "  chain output {",
    "    type nat hook output priority -100; policy accept;",
    ...(spec.policy === "egress+published-ports"
      ? spec.publish.map(
          (x) => `    ip daddr 127.0.0.1 tcp dport ${x.host_port} dnat ip to ${p.guestIp}:${x.guest_port}`,
        )
      : []),
    "  }",
    "}",
  ];
  // `add` then `delete` makes the delete safe when the table does not exist yet.
  return `add table inet ${p.table}\ndelete table inet ${p.table}\n${lines.join("\n")}\n`;
}
