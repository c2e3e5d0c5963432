import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PyroError } from "../core/errors.js";
import { ignore, noted } from "../util/best-effort.js";
import { withLock } from "../util/json-store.js";
import { runCapture, which } from "../util/proc.js";
import { ensureForwarder, stopForwarder } from "./dns-forwarder-host.js";
import { type NetPlumbing, rulesetText, SANDBOX_SUBNET } from "./nft.js";
import { intToIp, ipToInt, type NetworkSpec } from "./policy.js";
import { hostResolvers } from "./resolvers.js";

/**
 * One network namespace per sandbox (root only): a veth pair, the host end addressed from
 * SUBNET, the guest end `eth0` inside `pyro-<id>`, NAT and the policy in the sandbox's own
 * nftables table. Every object is named from the sandbox id, so whoever holds only the id
 * (delete, the reaper, a later process after a kill -9) can find and remove all of it.
 */

/** Each sandbox gets a /30 of this /16: .1 the host end (gateway), .2 the guest. */
const SUBNET_BASE = SANDBOX_SUBNET.split("/")[0] as string;
const SLOTS = 16384;
/** Where machine-wide network state of pyro lives (the allocation lock; forwarder pids). */
export const NET_RUN_DIR = "/run/pyro-net";

export function netNames(id: string): Omit<NetPlumbing, "gateway" | "guestIp"> {
  const m = /^(vm|ws)_([0-9a-f]{16})$/.exec(id);
  if (!m?.[1] || !m[2]) throw new PyroError("invalid_argument", `not a sandbox id: ${id}`);
  const netns = `pyro-${id}`;
  // Interface names are at most 15 bytes: "pv" + v|w + 12 hex digits of the id.
  return {
    netns,
    nsPath: `/run/netns/${netns}`,
    hostIf: `pv${m[1][0]}${m[2].slice(0, 12)}`,
    table: `pyro_${id}`,
  };
}

export interface NetTools {
  ip: string;
  nft: string;
}

/** The tools, or why per-sandbox networks cannot be made here (with the fix). */
export async function netTools(env: NodeJS.ProcessEnv = process.env): Promise<NetTools | string> {
  if ((process.getuid?.() ?? 0) !== 0)
    return "per-sandbox network namespaces of pyro's own need root (without root only gVisor gets network, through pasta)";
  const ip = await which("ip", env);
  const nft = await which("nft", env);
  if (!ip || !nft)
    return `missing ${[!ip && "ip (iproute2)", !nft && "nft (nftables)"].filter(Boolean).join(" and ")}`;
  return { ip, nft };
}

async function requireTools(env?: NodeJS.ProcessEnv): Promise<NetTools> {
  const t = await netTools(env);
  if (typeof t === "string")
    throw new PyroError(
      "engine_unavailable",
      `network cannot be isolated on this host: ${t}`,
      "run pyro as root with iproute2 and nftables installed (`sudo scripts/setup-host.sh`), or use network_policy=off",
    );
  return t;
}

async function run(file: string, args: string[], stdin?: string): Promise<{ ok: boolean; err: string }> {
  const r = await runCapture(file, args, { timeoutMs: 15_000, ...(stdin !== undefined ? { stdin } : {}) });
  return { ok: r.exitCode === 0, err: (r.stderr || r.stdout).trim() };
}

async function must(file: string, args: string[], stdin?: string): Promise<void> {
  const r = await run(file, args, stdin);
  if (!r.ok)
    throw new PyroError(
      "engine_failure",
      `${file.split("/").pop()} ${args.slice(0, 4).join(" ")} failed: ${r.err.slice(0, 400)}`,
    );
}

async function writeSysctl(path: string, value: string): Promise<void> {
  if ((await readFile(path, "utf8").catch(() => "")).trim() === value) return;
  await writeFile(path, value);
}

/** /30 slots in use: every host address inside SUBNET (our gateways) marks its slot taken. */
async function usedSlots(tools: NetTools): Promise<Set<number>> {
  const r = await runCapture(tools.ip, ["-j", "-4", "addr", "show"], { timeoutMs: 10_000 });
  const used = new Set<number>();
  const base = ipToInt(SUBNET_BASE);
  try {
    for (const link of JSON.parse(r.stdout) as { addr_info?: { local?: string }[] }[])
      for (const a of link.addr_info ?? []) {
        if (!a.local) continue;
        const off = ipToInt(a.local) - base;
        if (off >= 0 && off < SLOTS * 4) used.add(Math.floor(off / 4));
      }
  } catch (e) {
    // no JSON: treat as nothing in use; `ip addr add` of a taken address would still succeed,
    // so the lock below is what keeps two creates apart.
    noted("`ip -j addr` gave no JSON: no slot counted as used", e);
  }
  return used;
}

export interface SetupOptions {
  env?: NodeJS.ProcessEnv;
  /** Where the guest's resolv.conf is written (bind-mounted at /etc/resolv.conf). */
  resolvConfPath: string;
}

export interface NetSetup {
  plumbing: NetPlumbing;
  resolvConf: string;
}

/**
 * Makes the namespace, veth pair, addresses, routes and the nftables table. On failure
 * everything made so far is removed (the caller also removes it by id on a later failure).
 */
export async function setupNetwork(id: string, spec: NetworkSpec, opts: SetupOptions): Promise<NetSetup> {
  const tools = await requireTools(opts.env);
  const names = netNames(id);
  await mkdir(NET_RUN_DIR, { recursive: true, mode: 0o700 });
  // A sandbox started again under the same id (a stopped workspace's start, a VM's restart)
  // begins from nothing: whatever an earlier run of this id left is removed first.
  await teardownNetwork(id, opts.env);
  try {
    const plumbing = await withLock(join(NET_RUN_DIR, "alloc.lock"), async () => {
      const used = await usedSlots(tools);
      const start = Number.parseInt(id.slice(3, 7), 16) % SLOTS;
      let slot = -1;
      for (let i = 0; i < SLOTS; i++) {
        const s = (start + i) % SLOTS;
        if (!used.has(s)) {
          slot = s;
          break;
        }
      }
      if (slot < 0) throw new PyroError("engine_failure", `no free sandbox subnet left in ${SANDBOX_SUBNET}`);
      const net = ipToInt(SUBNET_BASE) + slot * 4;
      const p: NetPlumbing = { ...names, gateway: intToIp(net + 1), guestIp: intToIp(net + 2) };
      // One `ip -batch` for the plumbing (each spawn costs ~5 ms here).
      await must(
        tools.ip,
        ["-batch", "-"],
        [
          `netns add ${p.netns}`,
          `link add ${p.hostIf} type veth peer name eth0 netns ${p.netns}`,
          `addr add ${p.gateway}/30 dev ${p.hostIf}`,
          `link set ${p.hostIf} up`,
        ].join("\n"),
      );
      await must(
        tools.ip,
        ["-n", p.netns, "-batch", "-"],
        [
          "link set lo up",
          `addr add ${p.guestIp}/30 dev eth0`,
          "link set eth0 up",
          `route add default via ${p.gateway}`,
        ].join("\n"),
      );
      return p;
    });
    // Forwarding is a host-wide switch (documented in docs/network.md); route_localnet only on
    // our veth, for published ports (connections from 127.0.0.1 DNATed into the sandbox).
    await writeSysctl("/proc/sys/net/ipv4/ip_forward", "1");
    await writeSysctl(`/proc/sys/net/ipv4/conf/${plumbing.hostIf}/route_localnet`, "1");
    const resolvers = hostResolvers(opts.env);
    await applyRules(id, plumbing, spec, { env: opts.env, resolvers });
    const resolvConf = resolvConfText(spec, plumbing, resolvers);
    await writeFile(opts.resolvConfPath, resolvConf, { mode: 0o644 });
    return { plumbing, resolvConf };
  } catch (e) {
    await teardownNetwork(id, opts.env).catch(
      ignore("network setup failed: undoing it; the setup error is what is reported"),
    );
    throw e;
  }
}

function resolvConfText(spec: NetworkSpec, p: NetPlumbing, resolvers: string[]): string {
  const servers = spec.allow_hosts.length > 0 ? [p.gateway] : resolvers;
  return `${servers.map((s) => `nameserver ${s}`).join("\n")}\noptions timeout:2 attempts:2\n`;
}

/** Writes the sandbox's table for this policy (atomically replacing the old one). */
export async function applyRules(
  id: string,
  plumbing: NetPlumbing,
  spec: NetworkSpec,
  opts: { env?: NodeJS.ProcessEnv; resolvers?: string[] } = {},
): Promise<void> {
  const tools = await requireTools(opts.env);
  const forwarder = spec.allow_hosts.length > 0 && spec.policy !== "off";
  const resolvers = opts.resolvers ?? hostResolvers(opts.env);
  await must(tools.nft, ["-f", "-"], rulesetText({ plumbing, spec, resolvers, forwarder }));
  if (forwarder) await ensureForwarder(id, plumbing, spec.allow_hosts, resolvers, opts.env);
  else await stopForwarder(id);
}

/**
 * Gives the namespace's eth0 its address and default route back: gVisor's netstack took them
 * from the host side when the sandbox started (runsc --network=sandbox), and a `runsc
 * restore` into the same namespace scrapes them again.
 */
export async function readdressGuest(p: NetPlumbing, env?: NodeJS.ProcessEnv): Promise<void> {
  const tools = await requireTools(env);
  await must(
    tools.ip,
    ["-n", p.netns, "-batch", "-"],
    [`addr replace ${p.guestIp}/30 dev eth0`, `route replace default via ${p.gateway}`].join("\n"),
  );
}

/** Whether anything of this sandbox's network still exists. */
export async function networkExists(id: string, env?: NodeJS.ProcessEnv): Promise<boolean> {
  const names = netNames(id);
  if (existsSync(names.nsPath) || existsSync(`/sys/class/net/${names.hostIf}`)) return true;
  const t = await netTools(env);
  if (typeof t === "string") return false;
  return (await run(t.nft, ["list", "table", "inet", names.table])).ok;
}

/** Removes every object of the sandbox's network; idempotent, needs only the id. */
export async function teardownNetwork(id: string, env?: NodeJS.ProcessEnv): Promise<void> {
  // Without root pyro makes no network (it is refused), and root's /run/pyro-net is not readable.
  if (process.getuid?.() !== 0) return;
  const names = netNames(id);
  await stopForwarder(id);
  const t = await netTools(env);
  if (typeof t === "string") return;
  await run(t.nft, ["delete", "table", "inet", names.table]);
  if (existsSync(`/sys/class/net/${names.hostIf}`)) await run(t.ip, ["link", "del", names.hostIf]);
  if (existsSync(names.nsPath)) await must(t.ip, ["netns", "del", names.netns]);
  if (await networkExists(id, env))
    throw new PyroError("engine_failure", `could not remove the network of ${id} (${names.netns})`);
}
