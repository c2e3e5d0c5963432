import { createServer } from "node:net";
import type { NetworkPolicy } from "../contract/defaults.js";
import { PyroError } from "../core/errors.js";
import {
  type NetworkSpec,
  networkOff,
  type PublishedPort,
  parseCidr,
  parseHostName,
  parsePublish,
  resolvePolicy,
} from "./policy.js";

/** The network fields as the wire has them (run, vm create, workspace create/update). */
export interface NetworkFields {
  network?: boolean;
  network_policy?: NetworkPolicy;
  allow_cidr?: string[];
  deny_cidr?: string[];
  allow_host?: string[];
  publish?: string[];
}

const uniq = <T>(xs: T[]) => [...new Set(xs)];

/** The NetworkSpec a create asks for: validated, with free host ports chosen. */
export async function networkFromInput(input: NetworkFields): Promise<NetworkSpec> {
  let policy = resolvePolicy(input);
  const publish = (input.publish ?? []).map(parsePublish);
  // --publish alone (or with the boolean) asks for the one policy that publishes; rules
  // alone (--allow-host, --allow-cidr, --deny-cidr) ask for egress.
  const rules =
    (input.allow_cidr?.length ?? 0) + (input.deny_cidr?.length ?? 0) + (input.allow_host?.length ?? 0);
  if (input.network_policy === undefined) {
    if (publish.length > 0) policy = "egress+published-ports";
    else if (rules > 0) policy = "egress";
  }
  const spec: NetworkSpec = {
    ...networkOff(),
    policy,
    allow_cidrs: uniq((input.allow_cidr ?? []).map(parseCidr)),
    deny_cidrs: uniq((input.deny_cidr ?? []).map(parseCidr)),
    allow_hosts: uniq((input.allow_host ?? []).map(parseHostName)),
    publish: await assignHostPorts(publish, []),
  };
  check(spec);
  return spec;
}

/**
 * A running workspace's new policy: fields given replace the current ones; none given means
 * no change (undefined). Ports already published keep their host ports.
 */
export async function networkUpdate(
  current: NetworkSpec,
  input: NetworkFields,
): Promise<NetworkSpec | undefined> {
  const given = ["network_policy", "allow_cidr", "deny_cidr", "allow_host", "publish"].some(
    (k) => input[k as keyof NetworkFields] !== undefined,
  );
  if (!given) return undefined;
  const publish =
    input.publish === undefined
      ? current.publish
      : await assignHostPorts(input.publish.map(parsePublish), current.publish);
  let policy = input.network_policy ?? current.policy;
  // New ports on an egress sandbox ask for the publishing policy; a policy that does not
  // publish closes the ports the sandbox had.
  if (input.publish?.length && input.network_policy === undefined && policy === "egress")
    policy = "egress+published-ports";
  const closes = input.network_policy !== undefined && policy !== "egress+published-ports";
  const spec: NetworkSpec = {
    policy,
    allow_cidrs: input.allow_cidr ? uniq(input.allow_cidr.map(parseCidr)) : current.allow_cidrs,
    deny_cidrs: input.deny_cidr ? uniq(input.deny_cidr.map(parseCidr)) : current.deny_cidrs,
    allow_hosts: input.allow_host ? uniq(input.allow_host.map(parseHostName)) : current.allow_hosts,
    publish: closes && input.publish === undefined ? [] : publish,
  };
  check(spec);
  return spec;
}

function check(spec: NetworkSpec): void {
  const rules = spec.allow_cidrs.length + spec.deny_cidrs.length + spec.allow_hosts.length;
  if (spec.policy === "off" && (rules > 0 || spec.publish.length > 0))
    throw new PyroError(
      "invalid_argument",
      "allow_cidr, deny_cidr, allow_host and publish need network: the policy is off",
      "add network_policy=egress (or egress+published-ports for publish)",
    );
  if (spec.publish.length > 0 && spec.policy !== "egress+published-ports")
    throw new PyroError(
      "invalid_argument",
      `publish needs network_policy=egress+published-ports, not ${spec.policy}`,
      "pass network_policy=egress+published-ports (or leave network_policy out)",
    );
  const guests = spec.publish.map((p) => p.guest_port);
  const hosts = spec.publish.map((p) => p.host_port);
  if (new Set(hosts).size !== hosts.length || new Set(guests).size !== guests.length)
    throw new PyroError(
      "invalid_argument",
      "a port is published twice",
      "give each guest and host port once",
    );
}

/** Host ports for each entry: the one asked for if free on 127.0.0.1, else a free one. */
async function assignHostPorts(
  asked: { host_port?: number; guest_port: number }[],
  kept: PublishedPort[],
): Promise<PublishedPort[]> {
  const out: PublishedPort[] = [];
  for (const a of asked) {
    const same = kept.find(
      (k) => k.guest_port === a.guest_port && (a.host_port === undefined || a.host_port === k.host_port),
    );
    if (same) {
      out.push(same);
      continue;
    }
    if (a.host_port !== undefined) {
      if (!(await portFree(a.host_port)))
        throw new PyroError(
          "invalid_argument",
          `host port ${a.host_port} is in use on 127.0.0.1`,
          `publish ${a.guest_port} alone for a free port, or pick another HOSTPORT`,
        );
      out.push({ host_port: a.host_port, guest_port: a.guest_port });
    } else out.push({ host_port: await freePort(), guest_port: a.guest_port });
  }
  return out;
}

function listenOn(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(undefined));
    s.listen(port, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a ? a.port : undefined));
    });
  });
}
async function portFree(port: number): Promise<boolean> {
  return (await listenOn(port)) !== undefined;
}
async function freePort(): Promise<number> {
  const p = await listenOn(0);
  if (!p) throw new PyroError("engine_failure", "no free port on 127.0.0.1 to publish on");
  return p;
}
