import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, open, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PyroError } from "../core/errors.js";
import { noted } from "../util/best-effort.js";
import { packageRoot } from "../util/static-binaries.js";
import type { NetPlumbing } from "./nft.js";

/** Machine-wide (like the namespaces): /run/pyro-net/<id>.dns.pid. */
const RUN_DIR = "/run/pyro-net";
const pidFile = (id: string) => join(RUN_DIR, `${id}.dns.pid`);

function forwarderScript(): string {
  const root = packageRoot();
  const script = root ? join(root, "dist", "network", "dns-forwarder.js") : undefined;
  if (!script || !existsSync(script))
    throw new PyroError("engine_unavailable", "pyro's DNS forwarder is not built", "run `npm run build`");
  return script;
}

/** The forwarder's pid, when the recorded one still runs as this sandbox's forwarder. */
function runningPid(id: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile(id), "utf8").trim());
    const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return pid > 0 && cmd.includes("dns-forwarder") && cmd.includes(`pyro_${id}`) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * (Re)starts the sandbox's forwarder with this allow-list: a detached process that outlives
 * this pyro process and exits by itself when the sandbox's interface is gone.
 */
export async function ensureForwarder(
  id: string,
  p: NetPlumbing,
  hosts: string[],
  resolvers: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  await stopForwarder(id);
  if (resolvers.length === 0)
    throw new PyroError(
      "engine_unavailable",
      "allow_host needs an upstream DNS resolver, and none usable was found (loopback resolvers cannot be reached from the forwarder's address)",
      "set PYRO_DNS_UPSTREAM to a resolver's IPv4 address",
    );
  await mkdir(RUN_DIR, { recursive: true, mode: 0o700 });
  const log = await open(join(RUN_DIR, `${id}.dns.log`), "w", 0o600);
  try {
    const args = [
      forwarderScript(),
      "--listen",
      p.gateway,
      "--upstream",
      resolvers.join(","),
      "--table",
      p.table,
      "--host-if",
      p.hostIf,
      "--hosts",
      hosts.join(","),
    ];
    const child = spawn(process.execPath, args, { detached: true, stdio: ["ignore", log.fd, log.fd], env });
    await new Promise<void>((resolve, reject) => {
      child.once("error", reject);
      child.once("spawn", () => resolve());
    });
    child.unref();
    await writeFile(pidFile(id), String(child.pid));
  } finally {
    await log.close();
  }
  // Ready once it holds the port (a guest query before that would fail).
  for (let i = 0; i < 100; i++) {
    const ss = readFileSync("/proc/net/udp", "utf8");
    const hex = p.gateway
      .split(".")
      .reverse()
      .map((o) => Number(o).toString(16).padStart(2, "0").toUpperCase())
      .join("");
    if (ss.includes(`${hex}:0035`)) return;
    if (!runningPid(id)) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const why = readFileSync(join(RUN_DIR, `${id}.dns.log`), "utf8")
    .trim()
    .slice(-300);
  await stopForwarder(id);
  throw new PyroError(
    "engine_failure",
    `pyro's DNS forwarder for ${id} did not start: ${why || "no output"}`,
  );
}

export async function stopForwarder(id: string): Promise<void> {
  const pid = runningPid(id);
  if (pid) {
    try {
      process.kill(pid, "SIGKILL");
    } catch (e) {
      noted("stopping the DNS forwarder: gone already", e);
    }
  }
  await rm(pidFile(id), { force: true });
  await rm(join(RUN_DIR, `${id}.dns.log`), { force: true });
}
