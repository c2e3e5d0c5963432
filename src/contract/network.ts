import * as z from "zod";
import { NETWORK_POLICIES } from "./defaults.js";

/** The network fields of run, vm create and workspace create (and, but publish, update). */
export const network_policy = z
  .enum(NETWORK_POLICIES)
  .describe(
    "off: loopback only (the default). egress: outbound to public addresses; nothing on this host, no private (RFC 1918), link-local, CGNAT or metadata address. egress+published-ports: egress plus the ports given with publish, on the host's 127.0.0.1. network=true is the old spelling of egress. Left out, allow_cidr/deny_cidr/allow_host imply egress and publish egress+published-ports.",
  );
const cidrs = (what: string) => z.array(z.string().min(1).max(64)).max(256).describe(what);

export const networkRuleFields = {
  network_policy: network_policy.optional(),
  allow_cidr: cidrs(
    "Open these IPv4 addresses or CIDRs even inside the ranges closed by default (e.g. a private service); repeatable. The host itself stays closed.",
  ).optional(),
  deny_cidr: cidrs(
    "Close these IPv4 addresses or CIDRs too; they win over allow_cidr. Repeatable.",
  ).optional(),
  allow_host: z
    .array(z.string().min(1).max(253))
    .max(256)
    .describe(
      "Limit egress to these DNS names (and allow_cidr): the guest's resolver answers only them (`*.example.com` for subdomains) and only their answered addresses open. Repeatable.",
    )
    .optional(),
};

export const publishField = {
  publish: z
    .array(z.string().min(1).max(16))
    .max(64)
    .describe(
      "Publish a guest TCP port on the host's 127.0.0.1: `[HOSTPORT:]GUESTPORT` (a free host port when left out); repeatable. Implies network_policy=egress+published-ports when no policy is given.",
    )
    .optional(),
};

export const NetworkInfoSchema = z.object({
  policy: network_policy,
  mode: z
    .enum(["none", "namespace", "user", "host"])
    .describe(
      "none: loopback only; namespace: a network namespace of pyro's with NAT, the policy enforced by nftables; host: the host's own network (sandboxes made before network policies).",
    ),
  guest_ip: z.string().nullable(),
  gateway: z.string().nullable(),
  allow_cidrs: z.array(z.string()),
  deny_cidrs: z.array(z.string()),
  allow_hosts: z.array(z.string()),
  published_ports: z.array(
    z.object({ host_ip: z.string(), host_port: z.number().int(), guest_port: z.number().int() }),
  ),
});

/** A NetworkSpec as stored in a VM or workspace record (validated on every load). */
export const NetworkSpecRecord = z.object({
  policy: network_policy,
  allow_cidrs: z.array(z.string()),
  deny_cidrs: z.array(z.string()),
  allow_hosts: z.array(z.string()),
  publish: z.array(z.object({ host_port: z.number().int(), guest_port: z.number().int() })),
});
