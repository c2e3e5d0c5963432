import { readFileSync } from "node:fs";

/** Pure construction of QEMU command lines, unit-tested. */

export type Accel = "kvm" | "tcg";

export interface QemuLaunchSpec {
  name: string;
  accel: Accel;
  vcpuCount: number;
  memMib: number;
  network: boolean;
  kernel: string;
  initrd: string;
  /** The VM's writable disk (qcow2 overlay over the shared base). */
  disk: string;
  agentSocket: string;
  qmpSocket: string;
  consoleLog: string;
  /** Wait for an incoming migration stream (snapshot restore) instead of booting. */
  incoming?: boolean;
  /** Host TSC rate for TCG guests (see kernelCmdline). */
  tscKhz?: number;
}

export const AGENT_PORT_NAME = "org.pyro.agent";

/** QEMU's option parser treats "," as a separator; a literal comma is written ",,". */
export function qemuEscape(value: string): string {
  return value.replace(/,/g, ",,");
}

/** Single-quotes a path for the /bin/sh that QEMU's exec: migration URIs run under. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The guest kernel's command line. `tscKhz` (TCG only) skips the guest's TSC calibration
 * against the PIT: under emulation that calibration fails now and then when the host is
 * busy, and the kernel then hangs calibrating its delay loop (measured: ~1 boot in 6 hung
 * without it, 0 in 16 with it). TCG's guest TSC is the host's TSC, so the host's rate is right.
 */
export function kernelCmdline(network: boolean, tscKhz?: number): string {
  return [
    ...(tscKhz ? [`tsc_early_khz=${tscKhz}`] : []),
    "console=ttyS0",
    "reboot=t", // triple-fault reboot, which -no-reboot turns into QEMU exiting
    "panic=-1",
    "quiet",
    "loglevel=3",
    "tsc=reliable", // TCG's TSC follows the host clock; no watchdog flip to jiffies
    "8250.nr_uarts=1",
    "random.trust_cpu=on",
    `pyro.net=${network ? 1 : 0}`,
  ].join(" ");
}

/**
 * The machine, its resources and what it boots: shared by real VMs and the boot probe, so
 * the probe tests the very machine VMs get.
 */
export function machineArgs(m: {
  accel: Accel;
  memMib: number;
  vcpuCount: number;
  kernel: string;
  initrd: string;
  append: string;
}): string[] {
  return [
    "-machine",
    "microvm,isa-serial=on,pit=on,pic=on,rtc=on",
    "-accel",
    m.accel,
    "-m",
    String(m.memMib),
    "-smp",
    String(m.vcpuCount),
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-no-reboot",
    "-kernel",
    m.kernel,
    "-initrd",
    m.initrd,
    "-append",
    m.append,
  ];
}

/**
 * The VM: a microvm machine (no PCI, no firmware tables beyond ACPI), the guest console on
 * the ISA serial port into a file, the root disk and the agent channel on virtio-mmio,
 * QMP on a unix socket. The device list depends only on `network`, so a snapshot taken
 * with the same resources restores into the same machine.
 */
export function buildQemuArgs(s: QemuLaunchSpec): string[] {
  if (!Number.isInteger(s.vcpuCount) || s.vcpuCount < 1) throw new Error(`invalid vcpu count ${s.vcpuCount}`);
  if (!Number.isInteger(s.memMib) || s.memMib < 64) throw new Error(`invalid memory size ${s.memMib} MiB`);
  const args = [
    "-name",
    qemuEscape(s.name),
    ...machineArgs({ ...s, append: kernelCmdline(s.network, s.accel === "tcg" ? s.tscKhz : undefined) }),
    "-chardev",
    `file,id=con0,path=${qemuEscape(s.consoleLog)}`,
    "-serial",
    "chardev:con0",
    "-device",
    "virtio-rng-device",
    "-drive",
    `id=root,file=${qemuEscape(s.disk)},format=qcow2,if=none,discard=unmap`,
    "-device",
    "virtio-blk-device,drive=root",
    "-device",
    "virtio-serial-device",
    "-chardev",
    `socket,id=agent0,path=${qemuEscape(s.agentSocket)},server=on,wait=off`,
    "-device",
    `virtserialport,chardev=agent0,name=${AGENT_PORT_NAME}`,
    "-qmp",
    `unix:${qemuEscape(s.qmpSocket)},server=on,wait=off`,
  ];
  if (s.network) args.push("-netdev", "user,id=net0", "-device", "virtio-net-device,netdev=net0");
  if (s.incoming) args.push("-incoming", "defer");
  return args;
}

/** The host's TSC rate in kHz from /proc/cpuinfo ("cpu MHz"), or undefined. */
export function hostTscKhz(cpuinfo?: string): number | undefined {
  let text = cpuinfo;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/cpuinfo", "utf8");
    } catch {
      return undefined;
    }
  }
  const m = /^cpu MHz\s*:\s*([0-9.]+)/m.exec(text);
  const khz = m ? Math.round(Number(m[1]) * 1000) : Number.NaN;
  return Number.isFinite(khz) && khz > 100_000 ? khz : undefined;
}
