import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { release } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { PyroPaths } from "../core/paths.js";
import { VERSION } from "../core/version.js";
import { findGuestKernel } from "../engines/guest-image/kernel.js";
import type { ProbeResult } from "../engines/types.js";
import { ignore } from "../util/best-effort.js";
import { readJson, writeJsonAtomic } from "../util/json-store.js";
import { which } from "../util/proc.js";

/**
 * The engine probes are most of `pyro doctor`'s time (a KVM boot that may hang for its 8 s, a
 * TCG boot, a command in a gVisor sandbox: ~12 s as root, a minute on a loaded host; then a
 * throwaway network namespace and nftables table), and their answer depends only on things
 * that rarely change. It is kept in the state dir under a
 * key made of all of them, so any change re-probes: the engines' binaries (path, size, mtime),
 * pyro's own build, Node, the kernel and this boot, ip and nft and IP forwarding, /dev/kvm's mode and owner, the guest kernel
 * and environment the probes use, and every PYRO_* setting and PATH. A day at most, in case
 * something outside the key moved. What is cheap and can change by the minute (KVM access,
 * tools, networking, the rootless checks, the environments) is still checked on every run;
 * `pyro doctor --fresh` probes the engines again.
 */

export const PROBE_CACHE_MAX_AGE_MS = 24 * 3600 * 1000;
const FILE = "doctor-probes.json";

/** What `probeNetworkModes` found. */
export interface NetworkProbe {
  modes: string[];
  detail: string;
}

interface Cached {
  key: string;
  at: string;
  probes: ProbeResult[];
  network: NetworkProbe;
}

async function fileId(p: string | undefined): Promise<string | null> {
  if (!p) return null;
  const s = await stat(p).catch(ignore("not there: that is part of the key too"));
  return s ? `${p}:${s.size}:${Math.round(s.mtimeMs)}:${s.mode}:${s.uid}:${s.gid}` : `${p}:missing`;
}

/** Everything the engine probes' answer depends on, hashed. */
export async function probeKey(
  paths: PyroPaths,
  env: NodeJS.ProcessEnv,
  rootfs: string | undefined,
): Promise<string> {
  const binaries: Record<string, string | null> = {};
  // As the engines find them: an override (PYRO_RUNSC, PYRO_QEMU, PYRO_FIRECRACKER) or PATH.
  const named = {
    runsc: env.PYRO_RUNSC || "runsc",
    // The network probe's tools.
    ip: "ip",
    nft: "nft",
    qemu: env.PYRO_QEMU || "qemu-system-x86_64",
    firecracker: env.PYRO_FIRECRACKER || "firecracker",
  };
  for (const [k, name] of Object.entries(named)) binaries[k] = await fileId(await which(name, env));
  const kernel = await findGuestKernel(paths.cacheDir, env).catch(ignore("no guest kernel: part of the key"));
  const parts = {
    pyro: VERSION,
    // This build of pyro (the bundle or module the doctor runs from): a rebuild re-probes.
    build: await fileId(fileURLToPath(import.meta.url)),
    node: process.version,
    kernel: release(),
    forwarding: (await readFile("/proc/sys/net/ipv4/ip_forward", "utf8").catch(ignore("no procfs"))) ?? null,
    boot: (await readFile("/proc/sys/kernel/random/boot_id", "utf8").catch(ignore("no boot id"))) ?? null,
    uid: process.getuid?.() ?? null,
    kvm: await fileId("/dev/kvm"),
    binaries,
    guest_kernel: kernel ? await fileId(kernel.vmlinuz) : null,
    rootfs: await fileId(rootfs),
    config: Object.entries(env)
      .filter(([k]) => k.startsWith("PYRO_") || k === "PATH")
      .sort(([a], [b]) => a.localeCompare(b)),
  };
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex");
}

/** The probes an earlier run kept under this key, with when they ran, if still young. */
export async function cachedProbes(
  stateDir: string,
  key: string,
  now = Date.now(),
): Promise<{ at: string; probes: ProbeResult[]; network: NetworkProbe } | undefined> {
  const c = await readJson<Cached>(join(stateDir, FILE)).catch(ignore("a damaged cache is a miss"));
  if (!c || c.key !== key || !Array.isArray(c.probes) || !Array.isArray(c.network?.modes)) return undefined;
  const age = now - Date.parse(c.at);
  if (!(age >= 0 && age < PROBE_CACHE_MAX_AGE_MS)) return undefined;
  return { at: c.at, probes: c.probes, network: c.network };
}

export async function keepProbes(
  stateDir: string,
  key: string,
  probes: ProbeResult[],
  network: NetworkProbe,
): Promise<void> {
  const c: Cached = { key, at: new Date().toISOString(), probes, network };
  await writeJsonAtomic(join(stateDir, FILE), c).catch(ignore("not kept: the next doctor probes again"));
}
