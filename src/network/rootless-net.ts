import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { open, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PyroError } from "../core/errors.js";
import { ignore, noted } from "../util/best-effort.js";
import { runCapture, which } from "../util/proc.js";
import { DEFAULT_DENY, type NetworkSpec } from "./policy.js";
import { hostResolvers } from "./resolvers.js";

/**
 * Network for sandboxes of an ordinary user (no root): pasta (Debian's `passt`) makes a user
 * and network namespace owned by the user, with a tap interface whose frames it turns into
 * ordinary sockets of the user on the host. runsc is started inside that namespace with
 * `--network=host`, so the guest's sockets are the namespace's, never the host's. The user
 * owns the namespace, so it may load an nftables table there: the same default-deny policy as
 * root's route (network/nft.ts), judged in the output hook, since the guest's traffic is
 * local to the namespace (pasta then carries only what the table let out).
 *
 * Why not gVisor's own netstack: runsc refuses `--network=sandbox` with `--rootless` ("sandbox
 * network isn't supported with --rootless"; `runsc do` switches to host with a warning), in
 * 20240729 and in go-20260905035102 alike.
 *
 * pasta's defaults are unsafe for a sandbox and all are turned off: `--no-map-gw` (else the
 * gateway address is the host's loopback), `-T none -U none` (else the namespace's loopback
 * ports reach the host's bound ports), `-t/-u none` unless ports are published, and those
 * are bound on the host's 127.0.0.1 only.
 *
 * Every process is found from the sandbox id alone (the pid file's name is in pasta's command
 * line), so delete and the reaper need nothing else; the holder (the namespace's first
 * process, which nsenter targets) dies with pasta (`setpriv --pdeathsig`).
 */

export interface RootlessNetTools {
  pasta: string;
  nsenter: string;
  nft: string;
  setpriv: string;
}

/** What the sandbox's handle keeps (plain JSON). */
export interface RootlessNetState {
  pastaPid: number;
  holderPid: number;
  /** The namespace's address (pasta copies the host's) and its gateway, as reported. */
  guestIp: string | null;
  gateway: string | null;
}

const TABLE = "pyro";
const READY_MS = 10_000;

/** The tools, or why rootless network cannot be made here (with what is missing). */
export async function rootlessNetTools(
  env: NodeJS.ProcessEnv = process.env,
): Promise<RootlessNetTools | string> {
  const [pasta, nsenter, nft, setpriv] = await Promise.all(
    ["pasta", "nsenter", "nft", "setpriv"].map((t) => which(t, env)),
  );
  if (!pasta)
    return "pasta is not installed (Debian package passt; `sudo scripts/setup-host.sh` installs it)";
  if (!nsenter || !nft || !setpriv)
    return `missing ${[!nsenter && "nsenter", !setpriv && "setpriv", !nft && "nft (nftables)"].filter(Boolean).join(" and ")}`;
  return { pasta, nsenter, nft, setpriv };
}

/**
 * allow_host needs pyro's DNS forwarder to open what it answered; it is not run in pasta's
 * namespace yet, so such a policy is refused rather than given wider egress.
 */
function refuseAllowHosts(spec: NetworkSpec): void {
  if (spec.allow_hosts.length > 0 && spec.policy !== "off")
    throw new PyroError(
      "engine_unavailable",
      `allow_host (${spec.allow_hosts.join(", ")}) is not available without root: pyro's DNS forwarder runs only beside root's network namespaces`,
      "use allow_cidr with the addresses instead, or run pyro as root",
    );
}

async function requireTools(env?: NodeJS.ProcessEnv): Promise<RootlessNetTools> {
  const t = await rootlessNetTools(env);
  if (typeof t === "string")
    throw new PyroError(
      "engine_unavailable",
      `network for sandboxes without root cannot be set up: ${t}`,
      "install passt, nftables and util-linux (`sudo scripts/setup-host.sh`), or use network_policy=off",
    );
  return t;
}

/** The argv prefix that runs a program inside the namespace, as its (mapped) root. */
export function enterArgs(tools: Pick<RootlessNetTools, "nsenter">, holderPid: number): string[] {
  return [tools.nsenter, "--user", "--net", "--preserve-credentials", "-t", String(holderPid), "--"];
}

const pidFileName = (id: string) => `pyro-${id}.pasta.pid`;

/** pasta's arguments for this policy (exported for the unit test). */
export function pastaArgs(spec: NetworkSpec, pidFile: string): string[] {
  const tcp =
    spec.policy === "egress+published-ports" && spec.publish.length > 0
      ? spec.publish.map((p) => `127.0.0.1/${p.host_port}:${p.guest_port}`).join(",")
      : "none";
  return [
    "--foreground",
    "--quiet",
    "--config-net",
    "--ipv4-only",
    "--no-map-gw",
    "--no-dhcp",
    "--tcp-ports",
    tcp,
    "--udp-ports",
    "none",
    "--tcp-ns",
    "none",
    "--udp-ns",
    "none",
    "--pid",
    pidFile,
  ];
}

/**
 * The namespace's table: everything leaving the namespace (but for its own loopback) is
 * judged here, in the order of root's table: replies, the host's own addresses (never
 * opened), DNS to the allowed resolvers, the user's deny list, the user's allow list, the
 * default deny list, then everything else. A refusal is a TCP reset or ICMP admin-prohibited.
 */
export function rootlessRulesetText(spec: NetworkSpec, resolvers: string[], hostAddrs: string[]): string {
  const set = (name: string, items: string[], interval = true) =>
    `  set ${name} { type ipv4_addr;${interval ? " flags interval; auto-merge;" : ""}${
      items.length ? ` elements = { ${items.join(", ")} }` : ""
    } }`;
  return [
    `table inet ${TABLE}`,
    `delete table inet ${TABLE}`,
    `table inet ${TABLE} {`,
    set("user_allow", spec.allow_cidrs),
    set("user_deny", spec.deny_cidrs),
    set("default_deny", DEFAULT_DENY),
    set("host_addrs", hostAddrs, false),
    set("resolvers", resolvers, false),
    "  chain refuse {",
    "    meta l4proto tcp reject with tcp reset",
    "    reject with icmpx admin-prohibited",
    "  }",
    "  chain output {",
    "    type filter hook output priority 0; policy accept;",
    '    oifname "lo" accept',
    "    meta nfproto ipv6 goto refuse",
    "    ct state established,related accept",
    ...(spec.policy === "off"
      ? ["    goto refuse"]
      : [
          "    ip daddr @host_addrs goto refuse",
          "    ip daddr @resolvers meta l4proto { tcp, udp } th dport 53 accept",
          "    ip daddr @user_deny goto refuse",
          "    ip daddr @user_allow accept",
          "    ip daddr @default_deny goto refuse",
          "    accept",
        ]),
    "  }",
    "}",
    "",
  ].join("\n");
}

/** Every IPv4 address of this host (any user may list them): closed to the guest. */
async function hostAddresses(): Promise<string[]> {
  const r = await runCapture("ip", ["-j", "-4", "addr", "show"], { timeoutMs: 10_000 });
  try {
    return [
      ...new Set(
        (JSON.parse(r.stdout) as { addr_info?: { local?: string }[] }[]).flatMap((l) =>
          (l.addr_info ?? []).map((a) => a.local ?? "").filter(Boolean),
        ),
      ),
    ];
  } catch (e) {
    noted("`ip -j addr` gave no JSON: only the default deny list keeps the host out", e);
    return [];
  }
}

/** The pids of this user's pasta processes serving sandbox `id` (from /proc, by pid file name). */
function pastaPids(id: string): number[] {
  const uid = process.getuid?.();
  const mark = pidFileName(id);
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, "utf8");
      if (!cmd.includes(mark) || !cmd.split("\0")[0]?.endsWith("pasta")) continue;
      const st = readFileSync(`/proc/${e}/status`, "utf8");
      if (uid !== undefined && !new RegExp(`^Uid:\\s+${uid}\\s`, "m").test(st)) continue;
      out.push(Number(e));
    } catch (e) {
      noted("a process that ended meanwhile, or is not ours to read, is not this sandbox's pasta", e);
    }
  }
  return out;
}

function childOf(pid: number): number | undefined {
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/);
    const k = Number(kids[0]);
    return k > 0 ? k : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the namespace of `pid` has a default route yet (pasta's --config-net done). */
function hasDefaultRoute(pid: number): { gateway: string } | undefined {
  try {
    for (const line of readFileSync(`/proc/${pid}/net/route`, "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[1] === "00000000" && f[2]) {
        const g = f[2];
        const ip = [6, 4, 2, 0].map((i) => Number.parseInt(g.slice(i, i + 2), 16)).join(".");
        return { gateway: ip };
      }
    }
  } catch {
    return undefined;
  }
  return undefined;
}

export interface RootlessSetup {
  state: RootlessNetState;
  /** argv prefix that enters the namespace (for runsc). */
  enter: string[];
}

/**
 * Starts pasta for sandbox `id`, waits for its namespace to be configured and loads the
 * policy; on failure everything started is stopped again.
 */
export async function setupRootlessNetwork(
  id: string,
  spec: NetworkSpec,
  opts: { sandboxDir: string; resolvConfPath: string; env?: NodeJS.ProcessEnv },
): Promise<RootlessSetup> {
  refuseAllowHosts(spec);
  const tools = await requireTools(opts.env);
  await teardownRootlessNetwork(id);
  const pidFile = join(opts.sandboxDir, pidFileName(id));
  const logPath = join(opts.sandboxDir, "pasta.log");
  const log = await open(logPath, "w", 0o600);
  let exited = false;
  let pastaPid = 0;
  try {
    const child = spawn(
      tools.pasta,
      [...pastaArgs(spec, pidFile), "--", tools.setpriv, "--pdeathsig", "KILL", "--", "sleep", "infinity"],
      { detached: true, stdio: ["ignore", log.fd, log.fd], env: { PATH: opts.env?.PATH ?? "/usr/bin:/bin" } },
    );
    await new Promise<void>((resolve, reject) => {
      child.once("error", reject);
      child.once("spawn", () => resolve());
    });
    child.once("exit", () => {
      exited = true;
    });
    child.unref();
    pastaPid = child.pid ?? 0;
  } finally {
    await log.close();
  }
  // Listed while pasta comes up (it does not depend on the namespace).
  const addrs = hostAddresses();
  addrs.catch(ignore("listing the host's addresses: awaited (and reported) below"));
  try {
    // Ready once the holder's namespace has pasta's default route (--config-net done).
    const deadline = Date.now() + READY_MS;
    let holderPid: number | undefined;
    let route: { gateway: string } | undefined;
    while (Date.now() < deadline && !exited) {
      holderPid = childOf(pastaPid);
      route = holderPid ? hasDefaultRoute(holderPid) : undefined;
      if (route) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    if (!holderPid || !route) {
      const why = (await readFile(logPath, "utf8").catch(() => ""))
        .split("\n")
        .filter((l) => l && !l.startsWith("Failed to send"))
        .join("; ")
        .slice(-300);
      throw new PyroError(
        "engine_failure",
        `pasta did not set up the network namespace of ${id}: ${why || "no output"}`,
        "check that /dev/net/tun exists and is mode 0666 and that this user may create user namespaces (`pyro doctor`)",
      );
    }
    const resolvers = hostResolvers(opts.env);
    const enter = enterArgs(tools, holderPid);
    // Side by side (two spawns each ~5-10 ms here, more under load).
    const [guestIp] = await Promise.all([
      nsAddress(enter),
      loadRules(enter, tools, spec, resolvers, await addrs),
    ]);
    await writeFile(
      opts.resolvConfPath,
      `${resolvers.map((s) => `nameserver ${s}`).join("\n")}\noptions timeout:2 attempts:2\n`,
      { mode: 0o644 },
    );
    return { state: { pastaPid, holderPid, guestIp, gateway: route.gateway }, enter };
  } catch (e) {
    await teardownRootlessNetwork(id);
    throw e;
  }
}

async function loadRules(
  enter: string[],
  tools: RootlessNetTools,
  spec: NetworkSpec,
  resolvers: string[],
  hostAddrs?: string[],
): Promise<void> {
  const [file, ...args] = enter as [string, ...string[]];
  const r = await runCapture(file, [...args, tools.nft, "-f", "-"], {
    timeoutMs: 15_000,
    stdin: rootlessRulesetText(spec, resolvers, hostAddrs ?? (await hostAddresses())),
  });
  if (r.exitCode !== 0)
    throw new PyroError(
      "engine_failure",
      `loading the sandbox's nftables table in its namespace failed: ${(r.stderr || r.stdout).trim().slice(0, 400)}`,
    );
}

async function nsAddress(enter: string[]): Promise<string | null> {
  const [file, ...args] = enter as [string, ...string[]];
  const r = await runCapture(file, [...args, "ip", "-j", "-4", "addr", "show", "scope", "global"], {
    timeoutMs: 10_000,
  });
  try {
    const links = JSON.parse(r.stdout) as { addr_info?: { local?: string }[] }[];
    return links.flatMap((l) => l.addr_info ?? [])[0]?.local ?? null;
  } catch {
    return null;
  }
}

/**
 * A new policy for a running sandbox: the table is replaced in one transaction. Published
 * ports are pasta's and fixed when it starts, so a change of them is refused.
 */
export async function updateRootlessNetwork(
  id: string,
  state: RootlessNetState,
  old: NetworkSpec,
  spec: NetworkSpec,
  env?: NodeJS.ProcessEnv,
): Promise<void> {
  refuseAllowHosts(spec);
  const tools = await requireTools(env);
  const ports = (s: NetworkSpec) =>
    s.policy === "egress+published-ports"
      ? JSON.stringify(s.publish.map((p) => [p.host_port, p.guest_port]))
      : "[]";
  if (ports(old) !== ports(spec))
    throw new PyroError(
      "engine_unavailable",
      `sandbox ${id} runs without root: its published ports are fixed when it starts`,
      "stop and start the workspace (or create a new one) with the ports you want, or run pyro as root",
    );
  if (!pastaPids(id).includes(state.pastaPid))
    throw new PyroError(
      "invalid_state",
      `the network of sandbox ${id} is gone (its pasta process has ended)`,
    );
  await loadRules(enterArgs(tools, state.holderPid), tools, spec, hostResolvers(env));
}

/** Stops the sandbox's pasta (its namespace's holder dies with it); idempotent, needs only the id. */
export async function teardownRootlessNetwork(id: string): Promise<void> {
  for (const pid of pastaPids(id)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch (e) {
      noted("stopping pasta: gone already", e);
    }
  }
  const deadline = Date.now() + 5000;
  while (pastaPids(id).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  if (pastaPids(id).length > 0)
    throw new PyroError("engine_failure", `could not stop the pasta process of sandbox ${id}`);
}
