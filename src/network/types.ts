import type { NetworkSpec } from "./policy.js";

/** A sandbox's network as reported by status and vm_network_info. */
export interface NetworkInfo {
  policy: NetworkSpec["policy"];
  /** namespace: a network namespace of pyro's with NAT and the policy in nftables; user: QEMU's user-mode network; none. */
  mode: "none" | "namespace" | "user" | "host";
  guest_ip: string | null;
  gateway: string | null;
  allow_cidrs: string[];
  deny_cidrs: string[];
  allow_hosts: string[];
  published_ports: { host_ip: string; host_port: number; guest_port: number }[];
}
