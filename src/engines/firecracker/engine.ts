import { constants } from "node:fs";
import { access, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { c as tarCreate } from "tar";
import { PyroError, toPyroError } from "../../core/errors.js";
import type { PyroPaths } from "../../core/paths.js";
import { ignore } from "../../util/best-effort.js";
import { readJson, withLock, writeJsonAtomic } from "../../util/json-store.js";
import { sandboxNice } from "../../util/priority.js";
import { runCapture, which } from "../../util/proc.js";
import { ensureRootImage } from "../guest-image/image.js";
import {
  AGENT_VSOCK_PORT,
  ensureAgentBinary,
  ensureInitramfs,
  findBusybox,
} from "../guest-image/initramfs.js";
import { ensureGuestKernel, type GuestKernel } from "../guest-image/kernel.js";
import { NO_CAPABILITIES, runProbeCommand, unavailable } from "../probe-run.js";
import { AgentSession, agentExec, agentOutcome } from "../qemu/agent-client.js";
import { kernelCmdline } from "../qemu/args.js";
import { cachedProbes } from "../qemu/probe.js";
import {
  findProcesses,
  isOurProcess,
  killVm,
  pidAlive,
  socketDirFor,
  spawnDetached,
  tailLines,
} from "../qemu/vmproc.js";
import type {
  Engine,
  EngineTraits,
  ExecOutcome,
  ExecRequest,
  OneShotOutcome,
  ProbeOptions,
  ProbeResult,
  SandboxHandle,
  SandboxInspect,
  SandboxSpec,
} from "../types.js";
import { NO_TRAITS } from "../types.js";
import { bootPlan, restorePlan, snapshotPlan } from "./api.js";
import { connectVsock, sendAll, waitApi } from "./client.js";
import { type FcData, type FcFiles, fcData, fcDataLoose } from "./handle.js";
import { extractVmlinux } from "./vmlinux.js";

export const FIRECRACKER_HINT =
  "Firecracker is not packaged in Debian: install a release binary (github.com/firecracker-microvm/firecracker) on a host with working KVM and set PYRO_FIRECRACKER, or use PYRO_ENGINE=qemu";

const SNAPSHOT_VERSION = 1;
const BOOT_DEADLINE_MS = 30_000;

export async function findFirecracker(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  return which(env.PYRO_FIRECRACKER || "firecracker", env);
}

async function kvmNodeUsable(): Promise<boolean> {
  try {
    await access("/dev/kvm", constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Cheap check for engine selection: the binary exists, /dev/kvm is usable, and a recorded
 * boot probe (pyro doctor) showed KVM guests really boot on this host kernel.
 */
export async function firecrackerQuickAvailable(paths: PyroPaths, env: NodeJS.ProcessEnv): Promise<boolean> {
  if (!(await findFirecracker(env)) || !(await kvmNodeUsable())) return false;
  return (await cachedProbes(paths.cacheDir)).kvm?.boots === true;
}

interface Prepared {
  binary: string;
  kernel: GuestKernel;
  vmlinux: string;
  initrd: string;
  image: string;
  key: string;
}

async function fcFiles(sandboxDir: string): Promise<FcFiles> {
  const socketDir = await socketDirFor(sandboxDir);
  return {
    apiSocket: join(socketDir, "firecracker.sock"),
    vsockSocket: join(socketDir, "vsock.sock"),
    disk: join(sandboxDir, "disk.raw"),
    consoleLog: join(sandboxDir, "console.log"),
    socketDir,
  };
}

/**
 * Firecracker microVM engine: Debian's kernel (its ELF vmlinux extracted from the bzImage),
 * the same initramfs and agent as the QEMU engine (agent over virtio-vsock instead of
 * virtio-serial), and a per-VM raw copy of the environment disk (Firecracker has no qcow2).
 * Snapshots: a template VM boots, is paused and snapshotted, then killed; every VM restores
 * from it with its own disk copy and vsock socket.
 *
 * NOT exercised on this project's machines (no Firecracker binary, KVM guests hang); the
 * API requests are unit-tested against Firecracker's OpenAPI description. It also needs a
 * Firecracker that describes virtio devices to the guest via ACPI: Debian's kernel lacks
 * CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES.
 */
export class FirecrackerEngine implements Engine {
  readonly name = "firecracker" as const;
  readonly executionMode = "firecracker" as const;
  readonly traits: EngineTraits = { ...NO_TRAITS, isolated: true };

  constructor(
    private readonly paths: PyroPaths,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  private bootArgs(): string {
    return `${kernelCmdline(false).replace("reboot=t", "reboot=k")} pci=off pyro.vsock=1`;
  }

  async probe(opts: ProbeOptions): Promise<ProbeResult> {
    const binary = await findFirecracker(this.env);
    if (!binary) return unavailable(this.name, `firecracker not installed; ${FIRECRACKER_HINT}`);
    const version =
      (
        await runCapture(binary, ["--version"], { timeoutMs: 5000 }).catch(
          ignore("firecracker --version failed: the version is unknown"),
        )
      )?.stdout.split("\n")[0] ?? "unknown";
    if (!(await kvmNodeUsable())) {
      return unavailable(this.name, `${version}: /dev/kvm is missing or not accessible`);
    }
    const kvm = (await cachedProbes(this.paths.cacheDir)).kvm;
    if (!kvm?.boots) {
      return unavailable(
        this.name,
        `${version}: ${kvm ? `KVM guests do not boot here (${kvm.detail})` : "KVM not proven to boot guests yet (the qemu probe records it)"}`,
      );
    }
    if (!opts.rootfs) {
      return {
        engine: this.name,
        available: true,
        detail: `${version}; KVM boots guests; not test-run (no environment installed)`,
        capabilities: NO_CAPABILITIES,
      };
    }
    const probe = await runProbeCommand(this, {
      rootfs: opts.rootfs,
      scratchDir: opts.scratchDir,
      memMib: 1024,
      timeoutMs: opts.deadlineMs ?? 20_000,
    });
    if (probe.error !== undefined) {
      return unavailable(this.name, `${version}: test VM failed: ${probe.error.slice(0, 300)}`);
    }
    const r = probe.outcome;
    return {
      engine: this.name,
      available: probe.ok,
      detail: `${version}: ${probe.ok ? `a VM ran a command (boot ${r.bootMs} ms)` : `test command failed (exit ${r.exitCode})`}`,
      probeMs: r.bootMs + r.execMs,
      capabilities: probe.ok ? { vm_boot: true, guest_exec: true, guest_network: false } : NO_CAPABILITIES,
    };
  }

  private async prepare(spec: SandboxSpec): Promise<Prepared> {
    const binary = await findFirecracker(this.env);
    if (!binary) throw new PyroError("engine_unavailable", "firecracker is not installed", FIRECRACKER_HINT);
    if (spec.network) {
      throw new PyroError(
        "engine_unavailable",
        "networking under Firecracker needs a host TAP device, which pyro does not set up yet",
        "use PYRO_ENGINE=qemu (user-mode networking) or gvisor for --network",
      );
    }
    const cache = this.paths.cacheDir;
    const kernel = await ensureGuestKernel(cache, this.env);
    const vmlinux = join(cache, "guest-images", `vmlinux-${kernel.release}-${kernel.version}`);
    if (!(await stat(vmlinux).catch(ignore("no cached vmlinux: it is extracted")))) {
      await mkdir(join(cache, "guest-images"), { recursive: true });
      const tmp = `${vmlinux}.tmp-${process.pid}`;
      await writeFile(tmp, extractVmlinux(await readFile(kernel.vmlinuz)));
      await rename(tmp, vmlinux);
    }
    const initrd = await ensureInitramfs(
      cache,
      kernel,
      await ensureAgentBinary(cache, this.env),
      await findBusybox(this.env),
    );
    const image = await ensureRootImage(cache, spec.rootfs, this.env);
    const key =
      `v${SNAPSHOT_VERSION}-${kernel.version}-${initrd.digest}-${image.digest}-${spec.vcpuCount}c-${spec.memMib}m`.replace(
        /[^A-Za-z0-9._-]/g,
        "_",
      );
    return { binary, kernel, vmlinux, initrd: initrd.path, image: image.path, key };
  }

  /** A sparse (or reflinked) private copy of a disk image. */
  private async copyDisk(from: string, to: string): Promise<void> {
    const r = await runCapture("cp", ["--sparse=always", "--reflink=auto", from, to], { timeoutMs: 300_000 });
    if (r.exitCode !== 0)
      throw new PyroError("engine_failure", `copying the VM disk failed: ${r.stderr.trim()}`);
  }

  private async start(p: Prepared, files: FcFiles): Promise<number> {
    await rm(files.apiSocket, { force: true });
    await rm(files.vsockSocket, { force: true });
    const pid = await spawnDetached(
      p.binary,
      ["--api-sock", files.apiSocket],
      files.consoleLog,
      sandboxNice(this.env),
    );
    await waitApi(files.apiSocket, 10_000, () => pidAlive(pid));
    return pid;
  }

  private async waitAgent(files: FcFiles, pid: number, deadlineMs: number): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    let last = "";
    while (Date.now() < deadline) {
      if (!pidAlive(pid)) break;
      try {
        const sock = await connectVsock(files.vsockSocket, AGENT_VSOCK_PORT, 2000);
        const s = await AgentSession.attach(sock, { deadlineMs: Math.max(1000, deadline - Date.now()) });
        s.close();
        return;
      } catch (e) {
        last = (e as Error).message;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const con = await tailLines(files.consoleLog, 12);
    throw new PyroError(
      "engine_failure",
      `the Firecracker guest did not become ready within ${Math.round(deadlineMs / 1000)} s (${pidAlive(pid) ? last : "the VM exited"})\nserial console (last lines):\n${con}`,
    );
  }

  private async coldBoot(spec: SandboxSpec, p: Prepared, files: FcFiles, disk: string): Promise<number> {
    const pid = await this.start(p, files);
    try {
      await sendAll(
        files.apiSocket,
        bootPlan({
          kernel: p.vmlinux,
          initrd: p.initrd,
          bootArgs: this.bootArgs(),
          rootDisk: disk,
          vsockUds: files.vsockSocket,
          vcpuCount: spec.vcpuCount,
          memMib: spec.memMib,
        }),
      );
      await this.waitAgent(files, pid, BOOT_DEADLINE_MS);
      return pid;
    } catch (e) {
      await killVm(pid, files.apiSocket);
      throw e;
    }
  }

  private snapDir(key: string): string {
    return join(
      this.env.PYRO_FIRECRACKER_SNAPSHOT_DIR || join(this.paths.cacheDir, "firecracker-snapshots"),
      key,
    );
  }

  /** Boots a template VM, snapshots it (memory, state, disk), kills it. */
  private async ensureSnapshot(spec: SandboxSpec, p: Prepared): Promise<string | undefined> {
    const dir = this.snapDir(p.key);
    if (
      await readJson(join(dir, "meta.json")).catch(ignore("no readable snapshot meta: the snapshot is made"))
    )
      return dir;
    await mkdir(dir, { recursive: true });
    return withLock(dir, async () => {
      if (
        await readJson(join(dir, "meta.json")).catch(
          ignore("no readable snapshot meta: the snapshot is made"),
        )
      )
        return dir;
      const files = await fcFiles(join(dir, "template"));
      await mkdir(join(dir, "template"), { recursive: true });
      const disk = join(dir, "disk.raw");
      await this.copyDisk(p.image, disk);
      const pid = await this.coldBoot(spec, p, files, disk);
      try {
        const plan = snapshotPlan({ snapshotPath: join(dir, "vmstate"), memPath: join(dir, "memory") });
        await sendAll(files.apiSocket, plan.before);
      } finally {
        await killVm(pid, files.apiSocket);
      }
      await rm(join(dir, "template"), { recursive: true, force: true });
      await writeJsonAtomic(join(dir, "meta.json"), { key: p.key, created_at: new Date().toISOString() });
      return dir;
    });
  }

  async create(spec: SandboxSpec): Promise<SandboxHandle> {
    const t0 = performance.now();
    const p = await this.prepare(spec);
    await mkdir(spec.sandboxDir, { recursive: true });
    const files = await fcFiles(spec.sandboxDir);
    let pid: number | undefined;
    let mode: "cold" | "restore" = "cold";
    try {
      const snap =
        this.env.PYRO_FIRECRACKER_SNAPSHOTS === "0"
          ? undefined
          : await this.ensureSnapshot(spec, p).catch(
              ignore("the template snapshot failed: the VM cold-boots"),
            );
      if (snap) {
        await this.copyDisk(join(snap, "disk.raw"), files.disk);
        pid = await this.start(p, files);
        try {
          await sendAll(
            files.apiSocket,
            restorePlan({
              snapshotPath: join(snap, "vmstate"),
              memPath: join(snap, "memory"),
              vsockUds: files.vsockSocket,
              rootDisk: files.disk,
            }),
          );
          await this.waitAgent(files, pid, 15_000);
          mode = "restore";
        } catch (e) {
          if (this.env.PYRO_QUIET !== "1")
            process.stderr.write(
              `pyro: warning: firecracker snapshot restore failed (${toPyroError(e).message.split("\n")[0]}); cold booting\n`,
            );
          await killVm(pid, files.apiSocket);
          pid = undefined;
          await rm(this.snapDir(p.key), { recursive: true, force: true });
        }
      }
      if (mode === "cold") {
        await rm(files.disk, { force: true });
        await this.copyDisk(p.image, files.disk);
        pid = await this.coldBoot(spec, p, files, files.disk);
      }
      const data: FcData = {
        pid: pid!,
        files,
        marker: files.apiSocket,
        boot: { mode, ms: Math.round(performance.now() - t0) },
      };
      const h: SandboxHandle = {
        engine: this.name,
        id: spec.id,
        sandboxDir: spec.sandboxDir,
        ...(spec.workspaceDir ? { workspaceDir: spec.workspaceDir } : {}),
        data,
      };
      if (spec.workspaceDir) {
        const tar = tarCreate({ cwd: spec.workspaceDir, portable: true, follow: false }, [
          ".",
        ]) as unknown as Readable;
        await this.putArchive(h, tar, "/workspace");
      }
      return h;
    } catch (e) {
      await killVm(pid, files.apiSocket);
      await this.cleanup(spec.sandboxDir, files);
      throw toPyroError(e);
    }
  }

  private data(handle: SandboxHandle): FcData {
    return fcData(handle);
  }

  private async session(handle: SandboxHandle, waitMs: number): Promise<{ s: AgentSession; d: FcData }> {
    const d = this.data(handle);
    if (!isOurProcess(d.pid, d.marker))
      throw new PyroError(
        "sandbox_dead",
        `sandbox ${handle.id} is not running`,
        "delete it and create a new one",
      );
    const sock = await connectVsock(d.files.vsockSocket, AGENT_VSOCK_PORT);
    return { s: await AgentSession.attach(sock, { deadlineMs: waitMs, alive: () => pidAlive(d.pid) }), d };
  }

  async exec(handle: SandboxHandle, req: ExecRequest): Promise<ExecOutcome> {
    const t0 = performance.now();
    const { s, d } = await this.session(handle, 30_000);
    try {
      return agentOutcome(await agentExec(s, req), req, t0);
    } catch (e) {
      if (!isOurProcess(d.pid, d.marker))
        throw new PyroError("sandbox_dead", `sandbox ${handle.id} stopped while the command ran`);
      throw toPyroError(e);
    } finally {
      s.close();
    }
  }

  async putArchive(handle: SandboxHandle, tar: Readable, dest: string): Promise<void> {
    const { s } = await this.session(handle, 60_000);
    try {
      const r = await s.putArchive(dest, tar, 300_000);
      if (r.exitCode !== 0)
        throw new PyroError(
          "engine_failure",
          `unpacking into ${dest} failed: ${r.stderr.toString("utf8").trim().slice(-500)}`,
        );
    } finally {
      s.close();
    }
  }

  async stop(handle: SandboxHandle): Promise<void> {
    const d = this.data(handle);
    await killVm(d.pid, d.marker);
  }

  private async cleanup(sandboxDir: string, files: FcFiles | undefined): Promise<void> {
    if (files && files.socketDir !== sandboxDir) await rm(files.socketDir, { recursive: true, force: true });
    await rm(sandboxDir, { recursive: true, force: true });
  }

  async orphanAlive(_id: string, sandboxDir: string): Promise<boolean> {
    return (await findProcesses((await fcFiles(sandboxDir)).apiSocket)).length > 0;
  }

  async removeOrphan(_id: string, sandboxDir: string): Promise<void> {
    const files = await fcFiles(sandboxDir);
    for (const pid of await findProcesses(files.apiSocket)) {
      if (!(await killVm(pid, files.apiSocket)))
        throw new PyroError("engine_failure", `could not kill the firecracker process ${pid}`);
    }
    if (files.socketDir !== sandboxDir) await rm(files.socketDir, { recursive: true, force: true });
  }

  async destroy(handle: SandboxHandle): Promise<void> {
    const d = fcDataLoose(handle);
    if (typeof d.pid === "number" && typeof d.marker === "string" && !(await killVm(d.pid, d.marker))) {
      throw new PyroError("engine_failure", `firecracker process ${d.pid} of ${handle.id} did not exit`);
    }
    await this.cleanup(handle.sandboxDir, d.files);
  }

  async inspect(handle: SandboxHandle): Promise<SandboxInspect> {
    const d = this.data(handle);
    if (isOurProcess(d.pid, d.marker)) return { state: "running", pid: d.pid };
    return { state: "stopped", reason: `firecracker process ${d.pid} exited` };
  }

  async runOnce(spec: SandboxSpec, req: ExecRequest): Promise<OneShotOutcome> {
    const t0 = performance.now();
    let handle: SandboxHandle | undefined;
    try {
      handle = await this.create(spec);
      const bootMs = Math.round(performance.now() - t0);
      return { ...(await this.exec(handle, req)), bootMs };
    } finally {
      if (handle)
        await this.destroy(handle).catch(ignore("destroying the one-shot VM: the run's outcome stands"));
      else await rm(spec.sandboxDir, { recursive: true, force: true });
    }
  }
}
