import { constants } from "node:fs";
import { access, mkdir, stat } from "node:fs/promises";
import { release } from "node:os";
import { join } from "node:path";
import { ignore } from "../../util/best-effort.js";
import { readJson, writeJsonAtomic } from "../../util/json-store.js";
import { runCapture, which } from "../../util/proc.js";
import { type Accel, hostTscKhz, kernelCmdline, machineArgs } from "./args.js";

export const QEMU_HINT =
  "install qemu-system-x86 and qemu-utils (`sudo scripts/setup-host.sh`), or set PYRO_QEMU";

export async function findQemu(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  return which(env.PYRO_QEMU || "qemu-system-x86_64", env);
}

export async function findQemuImg(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  return which(env.PYRO_QEMU_IMG || "qemu-img", env);
}

export interface BootProbe {
  accel: Accel;
  boots: boolean;
  ms: number;
  detail: string;
  host_kernel: string;
  at: string;
}

export function accelProbePath(cacheDir: string): string {
  return join(cacheDir, "qemu", "accel-probe.json");
}

/** The last recorded boot probes, if they were made on this host kernel. */
export async function cachedProbes(cacheDir: string): Promise<Partial<Record<Accel, BootProbe>>> {
  const all = await readJson<Partial<Record<Accel, BootProbe>>>(accelProbePath(cacheDir)).catch(
    ignore("no readable probe file: no cached probes"),
  );
  const out: Partial<Record<Accel, BootProbe>> = {};
  for (const a of ["kvm", "tcg"] as const) {
    const p = all?.[a];
    if (p && p.host_kernel === release()) out[a] = p;
  }
  return out;
}

export async function recordProbe(cacheDir: string, p: BootProbe): Promise<void> {
  const path = accelProbePath(cacheDir);
  await mkdir(join(cacheDir, "qemu"), { recursive: true });
  const all =
    (await readJson<Partial<Record<Accel, BootProbe>>>(path).catch(
      ignore("no readable probe file: a fresh one is written"),
    )) ?? {};
  all[p.accel] = p;
  await writeJsonAtomic(path, all);
}

export async function kvmUsableNode(): Promise<boolean> {
  try {
    await access("/dev/kvm", constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Accelerator for new VMs: PYRO_QEMU_ACCEL when set; KVM only when a probe on this host
 * kernel actually booted a guest with it (on nested hosts /dev/kvm exists and guests hang);
 * TCG emulation otherwise.
 */
export async function chooseAccel(cacheDir: string, env: NodeJS.ProcessEnv = process.env): Promise<Accel> {
  const forced = env.PYRO_QEMU_ACCEL;
  if (forced === "kvm" || forced === "tcg") return forced;
  const probes = await cachedProbes(cacheDir);
  return probes.kvm?.boots && (await kvmUsableNode()) ? "kvm" : "tcg";
}

/**
 * Boots the kernel + initramfs with `pyro.probe=1` (the init prints PYRO-PROBE-OK right after
 * loading the virtio modules, then reboots, which ends QEMU) under a deadline.
 */
export async function bootProbe(
  binary: string,
  accel: Accel,
  kernel: string,
  initrd: string,
  deadlineMs: number,
): Promise<BootProbe> {
  const started = performance.now();
  const args = [
    ...machineArgs({
      accel,
      memMib: 256,
      vcpuCount: 1,
      kernel,
      initrd,
      append: `${kernelCmdline(false, accel === "tcg" ? hostTscKhz() : undefined)} pyro.probe=1`,
    }),
    "-serial",
    "stdio",
  ];
  const r = await runCapture(binary, args, { timeoutMs: deadlineMs, maxOutputBytes: 256 * 1024 }).catch(
    (e: Error) => ({
      exitCode: null,
      stdout: "",
      stderr: e.message,
      timedOut: false,
    }),
  );
  const ms = Math.round(performance.now() - started);
  const boots = r.stdout.includes("PYRO-PROBE-OK");
  const lastErr = (r.stderr || r.stdout).trim().split("\n").slice(-2).join(" | ").slice(0, 300);
  const detail = boots
    ? `a guest booted under ${accel.toUpperCase()} in ${ms} ms`
    : r.timedOut
      ? `no guest boot under ${accel.toUpperCase()} within ${Math.round(deadlineMs / 1000)} s (it hangs here)`
      : `QEMU failed under ${accel.toUpperCase()} (exit ${r.exitCode}): ${lastErr || "no output"}`;
  return { accel, boots, ms, detail, host_kernel: release(), at: new Date().toISOString() };
}

/** Identity of the QEMU binary for snapshot keys: path, size and mtime (no process spawn). */
export async function qemuIdentity(binary: string): Promise<string> {
  const st = await stat(binary);
  return `${binary}:${st.size}:${Math.round(st.mtimeMs)}`;
}

export async function qemuVersion(binary: string): Promise<string> {
  const r = await runCapture(binary, ["--version"], { timeoutMs: 10_000 }).catch(
    ignore("qemu --version failed: the version is unknown"),
  );
  return r?.stdout.split("\n")[0]?.trim() || "unknown";
}
