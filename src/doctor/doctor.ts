import { constants } from "node:fs";
import { access, mkdir, rm } from "node:fs/promises";
import { arch, platform, release, userInfo } from "node:os";
import { join } from "node:path";
import type { DoctorResultT } from "../contract/doctor.js";
import type { PyroError } from "../core/errors.js";
import type { PyroPaths } from "../core/paths.js";
import { FirecrackerEngine } from "../engines/firecracker/engine.js";
import { GvisorEngine } from "../engines/gvisor/engine.js";
import { platformReport } from "../engines/gvisor/runsc.js";
import { HostEngine } from "../engines/host/engine.js";
import { kubernetesDoctor } from "../engines/kubernetes/doctor.js";
import { QemuEngine } from "../engines/qemu/engine.js";
import type { ProbeResult } from "../engines/types.js";
import type { EnvironmentStore } from "../environments/store.js";
import { probeNetworkModes } from "../network/doctor.js";
import { noted } from "../util/best-effort.js";
import { DEFAULT_SANDBOX_NICE, sandboxNice, sandboxPriorityDetail } from "../util/priority.js";
import { which } from "../util/proc.js";
import { cachedProbes, keepProbes, probeKey } from "./probe-cache.js";
import { checkRootless } from "./rootless.js";
import { sharedCacheReport } from "./shared-cache.js";

/**
 * The network route the default engine's probe reported (gVisor's: engines/gvisor/net-route.ts),
 * or null when it reports none.
 */
function networkRoute(probe: ProbeResult | undefined): "netstack" | "host-stack" | null {
  const r = probe?.available ? probe.extra?.network_route : undefined;
  return r === "netstack" || r === "host-stack" ? r : null;
}

async function canAccess(p: string, mode: number): Promise<boolean> {
  try {
    await access(p, mode);
    return true;
  } catch {
    return false;
  }
}

/**
 * Probes every engine for real: gVisor and qemu by running a command in a sandbox with a
 * deadline (when an environment is installed), KVM and TCG by booting a tiny guest with a
 * deadline (qemu's probe), rather than trusting that /dev/kvm exists.
 */
export async function runDoctor(
  paths: PyroPaths,
  envs: EnvironmentStore,
  env: NodeJS.ProcessEnv = process.env,
  onProgress?: (p: { message: string }) => void,
  opts: { fresh?: boolean } = {},
): Promise<DoctorResultT> {
  const problems: string[] = [];
  const kvmExists = await canAccess("/dev/kvm", constants.F_OK);
  const kvm = {
    exists: kvmExists,
    readable: kvmExists && (await canAccess("/dev/kvm", constants.R_OK)),
    writable: kvmExists && (await canAccess("/dev/kvm", constants.W_OK)),
    boots: null as boolean | null,
    detail: kvmExists
      ? "/dev/kvm exists, but existence proves nothing on nested hosts"
      : "no /dev/kvm: microVM engines would need TCG emulation",
  };
  const rootfs = await envs.anyInstalledRootfs();
  const qemu = new QemuEngine(paths, env);
  const firecracker = new FirecrackerEngine(paths, env);
  const gvisor = new GvisorEngine(paths.runscRoot, env, paths.cacheDir);
  const host = new HostEngine();
  const engineOf = (name: string | null) => [qemu, firecracker, gvisor, host].find((e) => e.name === name);
  // The engine probes, from an earlier run when nothing they depend on changed (probe-cache.ts).
  const key = await probeKey(paths, env, rootfs);
  const cached = opts.fresh ? undefined : await cachedProbes(paths.stateDir, key);
  const probes = cached?.probes ?? (await probeEngines());
  // The probe of the engine that boots guests records the KVM boot (see probeEngines).
  const qemuProbe = probes.find((p) => p.engine === qemu.name);
  const kvmProbe = qemuProbe?.extra?.kvm as { boots: boolean; detail: string } | null | undefined;
  if (kvmProbe) {
    kvm.boots = kvmProbe.boots;
    kvm.detail = `boot probe: ${kvmProbe.detail}`;
  } else if (kvmExists) {
    kvm.detail = "/dev/kvm exists but no guest was test-booted (qemu or its guest kernel is missing)";
  }

  async function probeEngines(): Promise<ProbeResult[]> {
    const scratch = join(paths.stateDir, "probe");
    await mkdir(scratch, { recursive: true });
    const probes: ProbeResult[] = [];
    // qemu first: its KVM boot probe (a real guest under a deadline, never just /dev/kvm's
    // existence) is recorded, and firecracker's probe relies on it.
    onProgress?.({ message: "probing qemu: a KVM boot (up to 8 s), a TCG boot and a command" });
    const qemuProbe = await qemu.probe({
      scratchDir: scratch,
      ...(rootfs ? { rootfs } : {}),
      deadlineMs: 20_000,
    });
    onProgress?.({ message: "probing firecracker" });
    probes.push(
      await firecracker.probe({
        scratchDir: scratch,
        ...(rootfs ? { rootfs } : {}),
        deadlineMs: 20_000,
      }),
    );
    probes.push(qemuProbe);
    onProgress?.({ message: "probing gvisor: a command in a sandbox" });
    probes.push(
      await gvisor.probe({
        scratchDir: scratch,
        ...(rootfs ? { rootfs } : {}),
        deadlineMs: 20_000,
      }),
    );
    probes.push(await host.probe());
    await rm(scratch, { recursive: true, force: true });
    return probes;
  }
  const isolated = probes.filter((p) => engineOf(p.engine)?.traits.isolated && p.available);
  // As in engine selection: qemu under TCG emulation ranks after gVisor, under a KVM that boots,
  // before it. An available probe says which (QEMU's always names its accel; no other has one).
  const rank = (p: ProbeResult) => (p.extra?.accel === "tcg" ? 1 : 0);
  isolated.sort((a, b) => rank(a) - rank(b));
  const def = isolated[0]?.engine ?? null;
  let user = "unknown";
  try {
    user = userInfo().username;
  } catch (e) {
    noted("no passwd entry for this uid: the user shows as unknown", e);
  }
  const root = process.getuid?.() === 0;
  // What this user (not root) needs, with fixes; listed first, since the rest follows from it.
  const rootless = await checkRootless(user, env);
  problems.push(...rootless.problems);
  if (!def)
    problems.push(
      root
        ? "no isolated engine works: run `sudo scripts/setup-host.sh`, or use --allow-host-compat (no isolation)"
        : "no isolated engine works for you: fix the problems above, or run `sudo scripts/setup-host.sh` (or use --allow-host-compat: no isolation)",
    );
  if (!rootfs)
    problems.push(
      root
        ? "no environment installed yet: `pyro env pull debian:12` (or any `pyro run` pulls it); `sudo scripts/setup-host.sh` after building pyro also fills the shared cache other users read"
        : `no environment installed yet, neither yours nor shared (${(paths.sharedEnvironmentsDirs ?? []).join(", ") || "no shared cache"}): \`pyro env pull debian:12\` builds one in your cache without root, or an administrator's \`sudo scripts/setup-host.sh\` fills the shared cache`,
    );
  if (root === false && kvmExists && !kvm.writable)
    problems.push(
      `/dev/kvm exists but you cannot open it, so microVM engines cannot use KVM for you: run \`sudo usermod -aG kvm ${user}\` and log in again`,
    );
  const tools: Record<string, string | null> = {};
  for (const t of ["runsc", "mmdebstrap", "qemu-system-x86_64", "firecracker", "tar", "umoci"])
    tools[t] = (await which(t, env)) ?? null;
  if (!tools.mmdebstrap)
    problems.push("mmdebstrap is missing, so environments cannot be built: run `sudo scripts/setup-host.sh`");
  // Not fatal (catalog environments work without it): only OCI images need it.
  if (!tools.umoci)
    problems.push(
      "umoci is missing, so OCI images cannot be used as environments: run `sudo scripts/setup-host.sh`",
    );
  const best = isolated[0]?.capabilities ?? { vm_boot: false, guest_exec: false, guest_network: false };
  const defEngine = engineOf(def);
  // A throwaway namespace and nftables table: kept with the engine probes (its tools are in the key).
  const net =
    cached?.network ??
    (await probeNetworkModes(
      defEngine ? { name: defEngine.name, egressPolicy: defEngine.traits.egressPolicy } : null,
      env,
    ));
  if (!cached) await keepProbes(paths.stateDir, key, probes, net);
  let priority = { nice: DEFAULT_SANDBOX_NICE, detail: "" };
  try {
    const nice = sandboxNice(env);
    priority = { nice, detail: sandboxPriorityDetail(nice) };
  } catch (e) {
    // Every sandbox start refuses it too, so it is a problem, not a fallback to the default.
    const why = `${(e as Error).message}: no sandbox starts until it is fixed (${(e as PyroError).hint ?? ""})`;
    problems.push(why);
    priority.detail = why;
  }
  // With PYRO_ENGINE=kubernetes: the cluster's checks, fresh every run (null otherwise).
  const kubernetes = await kubernetesDoctor(env);
  for (const c of kubernetes?.checks ?? [])
    if (c.status !== "ok") problems.push(`kubernetes ${c.name}: ${c.detail}${c.fix ? `: ${c.fix}` : ""}`);
  return {
    platform: {
      os: platform(),
      arch: arch(),
      kernel: release(),
      node: process.version,
      user,
      root,
    },
    kvm,
    engines: probes.map((p) => ({
      engine: p.engine,
      available: p.available,
      detail: p.detail,
      probe_ms: p.probeMs ?? null,
      capabilities: p.capabilities,
      binary: p.runtime?.binary ?? null,
      version: p.runtime?.version ?? null,
      features: p.runtime?.features ?? [],
    })),
    default_engine: def,
    capabilities: best,
    networking: {
      default: "none",
      available_modes: net.modes,
      detail: net.detail,
      route: net.modes.includes("egress") ? networkRoute(probes.find((p) => p.engine === def)) : null,
    },
    paths: { cache_dir: paths.cacheDir, state_dir: paths.stateDir, environments_dir: paths.environmentsDir },
    sandbox_priority: priority,
    gvisor_platform: platformReport(env),
    environments: (await envs.list()).map((e) => ({ name: e.name, installed: e.installed })),
    shared_cache: await sharedCacheReport(envs),
    host_tools: tools,
    ok: def !== null && tools.mmdebstrap !== null && (kubernetes?.ok ?? true),
    problems,
    probes_cached_at: cached?.at ?? null,
    kubernetes,
  };
}
