import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFile, copyFile, mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { c as tarCreate } from "tar";
import { PyroError, toPyroError } from "../../core/errors.js";
import type { PyroPaths } from "../../core/paths.js";
import { netNames, networkExists } from "../../network/netns.js";
import type { NetworkSpec } from "../../network/policy.js";
import {
  handleNetInfo,
  sandboxNetwork,
  teardownSandboxNetwork,
  updateSandboxNetwork,
} from "../../network/sandbox-net.js";
import { ignore } from "../../util/best-effort.js";
import { writeJsonAtomic } from "../../util/json-store.js";
import { sandboxNice } from "../../util/priority.js";
import { runCapture, sandboxProcessEnv } from "../../util/proc.js";
import { ensureStaticBinary, SANDBOX_INIT } from "../../util/static-binaries.js";
import { EXPIRES_FILE, writeExpiry } from "../expiry.js";
import { ensureRootImage } from "../guest-image/image.js";
import { ensureAgentBinary, ensureInitramfs, findBusybox } from "../guest-image/initramfs.js";
import { ensureGuestKernel, findGuestKernel, type GuestKernel, KERNEL_HINT } from "../guest-image/kernel.js";
import { runProbeCommand, unavailable } from "../probe-run.js";
import type {
  Engine,
  EngineTraits,
  ExecOutcome,
  ExecRequest,
  NetworkInfo,
  OneShotOutcome,
  ProbeOptions,
  ProbeResult,
  SandboxHandle,
  SandboxInspect,
  SandboxSpec,
} from "../types.js";
import { NO_TRAITS } from "../types.js";
import { AgentSession, agentExec, agentOutcome } from "./agent-client.js";
import { type Accel, buildQemuArgs, hostTscKhz, shellQuote } from "./args.js";
import { type QemuHandleData, qemuData, qemuDataLoose } from "./handle.js";
import {
  bootProbe,
  chooseAccel,
  findQemu,
  findQemuImg,
  kvmUsableNode,
  QEMU_HINT,
  qemuIdentity,
  qemuVersion,
  recordProbe,
} from "./probe.js";
import { QmpClient } from "./qmp.js";
import {
  findSnapshot,
  pruneSnapshots,
  removeSnapshot,
  removeStaleTemps,
  type SnapshotKeyParts,
  type SnapshotMeta,
  snapshotKey,
  snapshotPaths,
  snapshotsRoot,
  touchSnapshot,
} from "./snapshot.js";
import {
  findProcesses,
  isOurProcess,
  killVm,
  pidAlive,
  spawnDetached,
  tailLines,
  type VmFiles,
  vmFiles,
} from "./vmproc.js";

interface Prepared {
  binary: string;
  qemuImg: string;
  accel: Accel;
  kernel: GuestKernel;
  initrd: string;
  image: string;
  keyParts: SnapshotKeyParts;
  key: string;
}

const BOOT_DEADLINE_MS = { kvm: 30_000, tcg: 90_000 } as const;
const RESTORE_DEADLINE_MS = 20_000;

function lastLines(s: string, n = 3): string {
  return s.trim().split("\n").slice(-n).join(" | ").slice(0, 600) || "(no output)";
}

export interface QemuEngineOptions {
  /** Where warnings (snapshot fallbacks) go; stderr unless PYRO_QUIET=1. */
  warn?: (message: string) => void;
}

/**
 * QEMU microVM engine: `-M microvm` with Debian's kernel, a pyro-built initramfs and the
 * environment's rootfs as a shared read-only ext4 image under a per-VM qcow2 overlay. The
 * guest agent (guest/agent.c) runs as PID 1 and is reached over virtio-serial; QMP drives
 * snapshots. The first boot at given resources saves a snapshot once the agent answers;
 * later VMs restore it instead of booting. /workspace lives on the VM's own disk: the
 * workspace's seed directory is copied in with put-archive after boot.
 */
export class QemuEngine implements Engine {
  readonly name = "qemu" as const;
  readonly executionMode = "qemu" as const;
  readonly traits: EngineTraits = {
    ...NO_TRAITS,
    isolated: true,
    userNetwork: true,
    sessionsOverExec: true,
    pool: true,
  };
  private readonly warnFn: (m: string) => void;

  constructor(
    private readonly paths: PyroPaths,
    private readonly env: NodeJS.ProcessEnv = process.env,
    opts: QemuEngineOptions = {},
  ) {
    this.warnFn =
      opts.warn ??
      ((m) => {
        if (this.env.PYRO_QUIET !== "1") process.stderr.write(`pyro: warning: ${m}\n`);
      });
  }

  private readonly tscKhz = hostTscKhz();

  private get snapRoot(): string {
    return snapshotsRoot(this.paths.cacheDir, this.env);
  }

  private get snapshotsEnabled(): boolean {
    return this.env.PYRO_QEMU_SNAPSHOTS !== "0";
  }

  // ---------------------------------------------------------------- artifacts

  private async prepare(
    spec: Pick<SandboxSpec, "rootfs" | "vcpuCount" | "memMib" | "network">,
  ): Promise<Prepared> {
    const binary = await findQemu(this.env);
    if (!binary) throw new PyroError("engine_unavailable", "qemu-system-x86_64 is not installed", QEMU_HINT);
    const qemuImg = await findQemuImg(this.env);
    if (!qemuImg) throw new PyroError("engine_unavailable", "qemu-img is not installed", QEMU_HINT);
    const cache = this.paths.cacheDir;
    const kernel = await ensureGuestKernel(cache, this.env);
    const agent = await ensureAgentBinary(cache, this.env);
    const busybox = await findBusybox(this.env);
    const initrd = await ensureInitramfs(cache, kernel, agent, busybox);
    const image = await ensureRootImage(cache, spec.rootfs, this.env);
    const accel = await chooseAccel(cache, this.env);
    const keyParts: SnapshotKeyParts = {
      qemu: await qemuIdentity(binary),
      accel,
      kernel: `${kernel.package}=${kernel.version}`,
      initramfs: initrd.digest,
      image: image.digest,
      vcpuCount: spec.vcpuCount,
      memMib: spec.memMib,
      network: spec.network,
    };
    return {
      binary,
      qemuImg,
      accel,
      kernel,
      initrd: initrd.path,
      image: image.path,
      keyParts,
      key: snapshotKey(keyParts),
    };
  }

  private warn(spec: { sandboxDir: string }, warnings: string[], message: string): void {
    warnings.push(message);
    this.warnFn(message);
    appendFile(join(spec.sandboxDir, "warnings.log"), `${new Date().toISOString()} ${message}\n`).catch(
      ignore("appending to warnings.log: the warning is in the result and went to warnFn already"),
    );
  }

  // ---------------------------------------------------------------- probe

  async probe(opts: ProbeOptions): Promise<ProbeResult> {
    const binary = await findQemu(this.env);
    if (!binary) return unavailable(this.name, `qemu-system-x86_64 not found; ${QEMU_HINT}`);
    const version = await qemuVersion(binary);
    const kernel = await findGuestKernel(this.paths.cacheDir, this.env);
    if (!kernel) {
      return unavailable(this.name, `${version}; no guest kernel in pyro's cache: ${KERNEL_HINT}`, {
        binary,
        version,
      });
    }
    let initrd: string;
    try {
      initrd = (
        await ensureInitramfs(
          this.paths.cacheDir,
          kernel,
          await ensureAgentBinary(this.paths.cacheDir, this.env),
          await findBusybox(this.env),
        )
      ).path;
    } catch (e) {
      return unavailable(this.name, `${version}; ${toPyroError(e).message}`, { binary, version });
    }
    const deadline = opts.deadlineMs ?? 20_000;
    const kvm = (await kvmUsableNode())
      ? await bootProbe(binary, "kvm", kernel.vmlinuz, initrd, Math.min(deadline, 8_000))
      : undefined;
    if (kvm) await recordProbe(this.paths.cacheDir, kvm);
    const tcg = await bootProbe(binary, "tcg", kernel.vmlinuz, initrd, Math.max(deadline, 30_000));
    await recordProbe(this.paths.cacheDir, tcg);
    const extra: Record<string, unknown> = { binary, version, kernel: kernel.release, kvm: kvm ?? null, tcg };
    const boots = (kvm?.boots ?? false) || tcg.boots;
    if (!boots) {
      return unavailable(
        this.name,
        `${version}: ${kvm ? `${kvm.detail}; ` : "no usable /dev/kvm; "}${tcg.detail}`,
        extra,
      );
    }
    const accel: Accel = kvm?.boots ? "kvm" : "tcg";
    let detail = `${version}: ${kvm ? kvm.detail : "no usable /dev/kvm"}; ${tcg.detail}; VMs use ${accel.toUpperCase()}`;
    let guestExec = false;
    let probeMs = (accel === "kvm" ? kvm?.ms : tcg.ms) ?? tcg.ms;
    if (opts.rootfs) {
      // A real command in a real VM (default resources, so the snapshot it leaves is reused).
      const probe = await runProbeCommand(this, {
        rootfs: opts.rootfs,
        scratchDir: opts.scratchDir,
        memMib: 1024,
        timeoutMs: 20_000,
      });
      if (probe.error !== undefined) detail += `; test VM failed: ${probe.error.slice(0, 300)}`;
      else {
        const r = probe.outcome;
        guestExec = probe.ok;
        probeMs = r.bootMs + r.execMs;
        detail += guestExec
          ? `; a VM ran a command (boot ${r.bootMs} ms, exec ${r.execMs} ms)`
          : `; test command failed (exit ${r.exitCode})`;
      }
    }
    return {
      engine: this.name,
      available: opts.rootfs ? guestExec : true,
      detail,
      probeMs,
      capabilities: { vm_boot: true, guest_exec: guestExec, guest_network: guestExec },
      extra: { ...extra, accel },
    };
  }

  // ---------------------------------------------------------------- lifecycle

  async create(spec: SandboxSpec): Promise<SandboxHandle> {
    if (!spec.network) return this.createVm(spec);
    refuseAllowHost(spec);
    // QEMU runs inside the sandbox's own namespace (as runsc does): slirp's connections then
    // leave through its veth and meet the same nftables policy, and 10.0.2.2 is the
    // namespace's loopback, not the host's.
    await mkdir(spec.sandboxDir, { recursive: true });
    const net = await sandboxNetwork(spec, this.env);
    try {
      const h = await this.createVm(spec);
      (h.data as QemuHandleData).net = net.data;
      await writeJsonAtomic(join(spec.sandboxDir, "qemu-handle.json"), h).catch(
        ignore("writing qemu-handle.json, a copy for inspection: the record keeps the returned handle"),
      );
      return h;
    } catch (e) {
      await teardownSandboxNetwork(spec.id, this.env).catch(
        ignore("tearing down the network of a failed create: the create error is the one thrown"),
      );
      throw e;
    }
  }

  async updateNetwork(handle: SandboxHandle, net: NetworkSpec): Promise<NetworkInfo> {
    refuseAllowHost({ network: true, net });
    const d = qemuData(handle);
    d.net = await updateSandboxNetwork(handle.id, d.net, net, this.env);
    return handleNetInfo(d.net, false);
  }

  networkInfo(handle: SandboxHandle): NetworkInfo {
    return handleNetInfo(qemuDataLoose(handle).net, false);
  }

  private async createVm(spec: SandboxSpec): Promise<SandboxHandle> {
    const t0 = performance.now();
    const p = await this.prepare(spec);
    await mkdir(spec.sandboxDir, { recursive: true });
    const files = await vmFiles(spec.sandboxDir);
    const warnings: string[] = [];
    const marker = files.qmpSocket;
    let pid: number | undefined;
    let mode: "cold" | "restore" = "cold";
    const handle = (): SandboxHandle => ({
      engine: this.name,
      id: spec.id,
      sandboxDir: spec.sandboxDir,
      ...(spec.workspaceDir ? { workspaceDir: spec.workspaceDir } : {}),
      data: {
        pid: pid ?? 0,
        binary: p.binary,
        accel: p.accel,
        files,
        marker,
        boot: { mode, ms: Math.round(performance.now() - t0) },
        snapshotKey: p.key,
        warnings,
      } satisfies QemuHandleData,
    });
    try {
      // A restart boots the disk a halt kept, cold: the shared boot snapshots are for fresh
      // disks only (saving one here would put this workspace's files into the cache).
      if (spec.restart) pid = await this.coldBoot(spec, p, files, true);
      else if (this.snapshotsEnabled) {
        await removeStaleTemps(this.snapRoot);
        const snap = await findSnapshot(this.snapRoot, p.key);
        if (snap === "corrupt") {
          this.warn(
            spec,
            warnings,
            `qemu snapshot ${p.key} is incomplete or corrupt; removed it and cold booting`,
          );
          await removeSnapshot(this.snapRoot, p.key);
        } else if (snap) {
          try {
            pid = await this.restore(spec, p, files, snap.paths);
            mode = "restore";
            await touchSnapshot(this.snapRoot, p.key);
          } catch (e) {
            const why = toPyroError(e).message.replace(/\s*\n\s*/g, " | ");
            this.warn(
              spec,
              warnings,
              `restoring qemu snapshot ${p.key} failed (${why.slice(0, 400)}); removed it and cold booting`,
            );
            await killVm(pid, marker);
            pid = undefined;
            await removeSnapshot(this.snapRoot, p.key);
            await this.resetFiles(files);
          }
        }
      }
      if (mode === "cold" && !spec.restart) {
        pid = await this.coldBoot(spec, p, files);
        if (this.snapshotsEnabled && (await findSnapshot(this.snapRoot, p.key)) === undefined) {
          try {
            await this.saveSnapshot(p, files, pid);
          } catch (e) {
            this.warn(
              spec,
              warnings,
              `saving a qemu snapshot failed: ${toPyroError(e)
                .message.replace(/\s*\n\s*/g, " | ")
                .slice(0, 400)}`,
            );
            if (!isOurProcess(pid, marker))
              throw new PyroError("engine_failure", "the VM died while its snapshot was taken");
          }
        }
      }
      const h = handle();
      if (
        !spec.restart &&
        spec.workspaceDir &&
        (await readdir(spec.workspaceDir).catch(() => [] as string[])).length > 0
      ) {
        // Not `portable`: that resets modes to 0644/0755 (a 0444 git object would then show as
        // changed against the baseline); the guest's tar runs with --no-same-owner anyway.
        const tar = tarCreate({ cwd: spec.workspaceDir, portable: false, follow: false }, [
          ".",
        ]) as unknown as Readable;
        await this.putArchive(h, tar, "/workspace");
      }
      (h.data as QemuHandleData).boot.ms = Math.round(performance.now() - t0);
      if (spec.expiresAt && pid)
        Object.assign(h.data as QemuHandleData, await this.watchExpiry(spec, pid, marker, spec.expiresAt));
      await writeJsonAtomic(join(spec.sandboxDir, "qemu-handle.json"), h).catch(
        ignore("writing qemu-handle.json, a copy for inspection: the record keeps the returned handle"),
      );
      return h;
    } catch (e) {
      await killVm(pid, marker);
      // A failed restart keeps the disk: it is the workspace's /workspace.
      if (!spec.restart) await this.removeFiles(spec.sandboxDir, files);
      throw toPyroError(e);
    }
  }

  private async resetFiles(files: VmFiles): Promise<void> {
    for (const f of [files.disk, files.agentSocket, files.qmpSocket]) await rm(f, { force: true });
  }

  private async overlay(
    p: Prepared,
    files: VmFiles,
    backing: string,
    format: "raw" | "qcow2",
  ): Promise<void> {
    await rm(files.disk, { force: true });
    const r = await runCapture(
      p.qemuImg,
      ["create", "-q", "-f", "qcow2", "-b", backing, "-F", format, files.disk],
      { timeoutMs: 30_000 },
    );
    if (r.exitCode !== 0)
      throw new PyroError("engine_failure", `qemu-img create failed: ${lastLines(r.stderr)}`);
  }

  private launchArgs(spec: SandboxSpec, p: Prepared, files: VmFiles, incoming: boolean): string[] {
    return buildQemuArgs({
      name: `pyro-${spec.id}`,
      accel: p.accel,
      vcpuCount: spec.vcpuCount,
      memMib: spec.memMib,
      network: spec.network,
      kernel: p.kernel.vmlinuz,
      initrd: p.initrd,
      disk: files.disk,
      agentSocket: files.agentSocket,
      qmpSocket: files.qmpSocket,
      consoleLog: files.consoleLog,
      incoming,
      ...(p.accel === "tcg" && this.tscKhz ? { tscKhz: this.tscKhz } : {}),
    });
  }

  private async diagnostics(files: VmFiles): Promise<string> {
    const con = await tailLines(files.consoleLog, 10);
    const q = await tailLines(files.qemuLog, 4);
    return (
      [con && `serial console (last lines):\n${con}`, q && `qemu:\n${q}`].filter(Boolean).join("\n") ||
      "no console output"
    );
  }

  /** Waits for the agent's HELLO reply; on failure the error carries the console's last lines. */
  private async waitAgent(files: VmFiles, pid: number, deadlineMs: number, what: string): Promise<void> {
    try {
      const s = await AgentSession.open(files.agentSocket, { deadlineMs, alive: () => pidAlive(pid) });
      s.close();
    } catch (e) {
      const pe = toPyroError(e);
      const dead = !pidAlive(pid);
      throw new PyroError(
        "engine_failure",
        `${what}: ${dead ? "the VM exited" : `the guest agent did not become ready within ${Math.round(deadlineMs / 1000)} s`} (${pe.message})\n${await this.diagnostics(files)}`,
        "check `pyro doctor`; PYRO_QEMU_ACCEL=tcg forces emulation if KVM misbehaves",
      );
    }
  }

  private async coldBoot(spec: SandboxSpec, p: Prepared, files: VmFiles, keepDisk = false): Promise<number> {
    if (!keepDisk) await this.overlay(p, files, p.image, "raw");
    else if (!(await stat(files.disk).catch(ignore("disk missing: reported as missing"))))
      throw new PyroError("invalid_state", `the disk of ${spec.id} is missing (${files.disk})`);
    const deadline = Number(this.env.PYRO_QEMU_BOOT_DEADLINE_MS) || BOOT_DEADLINE_MS[p.accel];
    const pid = await spawnDetached(
      ...inNetns(spec, p.binary, this.launchArgs(spec, p, files, false)),
      files.qemuLog,
      sandboxNice(this.env),
    );
    try {
      await this.waitAgent(files, pid, deadline, `VM ${spec.id} did not boot`);
    } catch (e) {
      await killVm(pid, files.qmpSocket);
      throw e;
    }
    return pid;
  }

  private async restore(
    spec: SandboxSpec,
    p: Prepared,
    files: VmFiles,
    snap: { state: string; disk?: string },
  ): Promise<number> {
    // Without a disk: resume, on the disk the VM had when it was paused.
    if (snap.disk) await this.overlay(p, files, snap.disk, "qcow2");
    const pid = await spawnDetached(
      ...inNetns(spec, p.binary, this.launchArgs(spec, p, files, true)),
      files.qemuLog,
      sandboxNice(this.env),
    );
    try {
      await this.loadSnapshot(files, pid, snap.state);
      await this.waitAgent(
        files,
        pid,
        RESTORE_DEADLINE_MS,
        `VM ${spec.id} did not answer after its snapshot was restored`,
      );
    } catch (e) {
      await killVm(pid, files.qmpSocket);
      throw e;
    }
    return pid;
  }

  private async loadSnapshot(files: VmFiles, pid: number, state: string): Promise<void> {
    const qmp = await QmpClient.connect(files.qmpSocket, 10_000).catch(async (e: Error) => {
      throw new PyroError(
        "engine_failure",
        `QMP not reachable: ${e.message}\n${await this.diagnostics(files)}`,
      );
    });
    try {
      await qmp.execute("migrate-incoming", { uri: `exec:cat ${shellQuote(state)}` });
      const deadline = Date.now() + RESTORE_DEADLINE_MS;
      for (;;) {
        if (!pidAlive(pid))
          throw new PyroError(
            "engine_failure",
            `QEMU exited while loading the snapshot\n${await this.diagnostics(files)}`,
          );
        const st = await qmp
          .execute<{ status?: string }>("query-status")
          .catch(() => ({ status: undefined }));
        if (st.status === "running") break;
        type Mig = { status?: string; "error-desc"?: string };
        const mig = await qmp.execute<Mig>("query-migrate").catch((): Mig => ({}));
        if (mig.status === "failed")
          throw new PyroError(
            "engine_failure",
            `loading the snapshot failed: ${mig["error-desc"] ?? "unknown error"}`,
          );
        if (mig.status === "completed" && st.status !== "running") {
          await qmp
            .execute("cont")
            .catch(ignore("resuming a loaded snapshot: the status poll that follows sees whether it runs"));
        }
        if (Date.now() > deadline)
          throw new PyroError("engine_failure", "loading the snapshot did not finish in time");
        await new Promise((r) => setTimeout(r, 15));
      }
    } finally {
      qmp.close();
    }
  }

  /**
   * Snapshots a freshly booted VM (its agent idle, no client connected): QMP migrate to a
   * file, a copy of its disk overlay at that instant (the guest's page cache matches it),
   * then `cont` so this VM carries on. Written to a temp dir and renamed into place, with
   * meta.json last, so a crash never leaves a snapshot that looks complete.
   */
  private async saveSnapshot(p: Prepared, files: VmFiles, pid: number): Promise<void> {
    const t0 = performance.now();
    const root = this.snapRoot;
    const tmp = join(root, `.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
    await mkdir(tmp, { recursive: true });
    const qmp = await QmpClient.connect(files.qmpSocket, 10_000);
    let paused = false;
    try {
      await qmp
        .execute("migrate-set-parameters", { "max-bandwidth": 8 * 1024 ** 3 })
        .catch(ignore("raising the migration bandwidth: without it the snapshot is only slower"));
      const state = join(tmp, "state");
      await qmp.execute("migrate", { uri: `exec:cat > ${shellQuote(state)}` });
      paused = true;
      const deadline = Date.now() + 60_000;
      for (;;) {
        const m = await qmp.execute<{ status?: string; "error-desc"?: string }>("query-migrate");
        if (m.status === "completed") break;
        if (m.status === "failed" || m.status === "cancelled")
          throw new Error(`migrate ${m.status}: ${m["error-desc"] ?? ""}`);
        if (Date.now() > deadline || !pidAlive(pid)) throw new Error("migrate did not complete");
        await new Promise((r) => setTimeout(r, 20));
      }
      const disk = join(tmp, "disk.qcow2");
      await copyFile(files.disk, disk);
      const meta: SnapshotMeta = {
        key: p.key,
        parts: p.keyParts,
        created_at: new Date().toISOString(),
        state_bytes: (await stat(state)).size,
        disk_bytes: (await stat(disk)).size,
        save_ms: Math.round(performance.now() - t0),
      };
      await writeJsonAtomic(join(tmp, "meta.json"), meta);
      const dest = snapshotPaths(root, p.key).dir;
      await rename(tmp, dest).catch(async () => {
        // Another process saved the same snapshot first: keep theirs.
        await rm(tmp, { recursive: true, force: true });
      });
      await pruneSnapshots(root);
    } finally {
      if (paused)
        await qmp
          .execute("cont")
          .catch(ignore("resuming the VM after its snapshot: the snapshot's outcome stands"));
      qmp.close();
      await rm(tmp, { recursive: true, force: true });
    }
    await this.waitAgent(files, pid, 20_000, "VM did not resume after its snapshot");
  }

  private data(handle: SandboxHandle): QemuHandleData {
    return qemuData(handle);
  }

  private async assertRunning(handle: SandboxHandle): Promise<QemuHandleData> {
    const d = this.data(handle);
    const i = await this.inspect(handle);
    if (i.state !== "running") {
      throw new PyroError(
        "sandbox_dead",
        `sandbox ${handle.id} is not running: ${i.reason ?? i.state}`,
        "delete it and create a new one",
      );
    }
    return d;
  }

  private async session(
    handle: SandboxHandle,
    d: QemuHandleData,
    waitMs: number,
    signal?: AbortSignal,
    oneshot = false,
  ): Promise<AgentSession> {
    try {
      return await AgentSession.open(d.files.agentSocket, {
        deadlineMs: waitMs,
        alive: () => pidAlive(d.pid),
        oneshot,
        ...(signal ? { signal } : {}),
      });
    } catch (e) {
      if (signal?.aborted) throw new PyroError("cancelled", "command cancelled before it started");
      if (!isOurProcess(d.pid, d.marker)) {
        throw new PyroError(
          "sandbox_dead",
          `sandbox ${handle.id} stopped (its VM exited)\n${await this.diagnostics(d.files)}`,
          "delete it and create a new one",
        );
      }
      throw new PyroError(
        "engine_failure",
        `the guest agent of ${handle.id} is not answering: ${toPyroError(e).message}`,
        "delete the sandbox and create a new one",
      );
    }
  }

  exec(handle: SandboxHandle, req: ExecRequest): Promise<ExecOutcome> {
    return this.execIn(handle, req, false);
  }

  /** `oneshot`: the guest shuts itself down if this process dies (runOnce leaves no VM behind). */
  private async execIn(handle: SandboxHandle, req: ExecRequest, oneshot: boolean): Promise<ExecOutcome> {
    const t0 = performance.now();
    const d = await this.assertRunning(handle);
    // QEMU serves one agent client at a time: a concurrent exec waits for the one before it.
    const s = await this.session(handle, d, Math.max(30_000, req.timeoutMs + 10_000), req.signal, oneshot);
    let r: Awaited<ReturnType<AgentSession["exec"]>>;
    try {
      r = await agentExec(s, req);
    } catch (e) {
      if (!isOurProcess(d.pid, d.marker)) {
        throw new PyroError(
          "sandbox_dead",
          `sandbox ${handle.id} stopped while the command ran\n${await this.diagnostics(d.files)}`,
          "delete it and create a new one",
        );
      }
      throw toPyroError(e);
    } finally {
      s.close();
    }
    return agentOutcome(r, req, t0);
  }

  async putArchive(handle: SandboxHandle, tar: Readable, dest: string): Promise<void> {
    const d = await this.assertRunning(handle);
    const s = await this.session(handle, d, 60_000);
    try {
      const r = await s.putArchive(dest, tar, 300_000);
      if (r.exitCode !== 0)
        throw new PyroError(
          "engine_failure",
          `unpacking into ${dest} failed: ${lastLines(r.stderr.toString("utf8"))}`,
        );
    } finally {
      s.close();
    }
  }

  async stop(handle: SandboxHandle): Promise<void> {
    const d = this.data(handle);
    await killVm(d.pid, d.marker);
    // Its published ports close with it; a later create under this id makes a new network.
    await teardownSandboxNetwork(handle.id, this.env);
  }

  /** Flushes the guest's file systems (best effort), then ends the VM and its watchdog; the disk stays. */
  async halt(handle: SandboxHandle): Promise<void> {
    const d = this.data(handle);
    if (isOurProcess(d.pid, d.marker))
      await this.exec(handle, { argv: ["sync"], cwd: "/", timeoutMs: 15_000 }).catch(
        ignore("flushing the guest's file systems before halt is best effort: the VM is ended either way"),
      );
    await this.endVm(handle, d);
  }

  private async endVm(handle: SandboxHandle, d: QemuHandleData): Promise<void> {
    if (!(await killVm(d.pid, d.marker)))
      throw new PyroError("engine_failure", `qemu process ${d.pid} of ${handle.id} did not exit`);
    const watchPid = d.watchPid;
    if (typeof watchPid === "number") await killVm(watchPid, d.marker);
    await this.detachFromSnapshot(d.files);
  }

  /**
   * A VM restored from a boot snapshot writes to an overlay backed by that snapshot's disk in
   * the cache, which pruning may remove while the workspace is stopped or paused. Rebase the
   * overlay onto the base image (safe mode copies what the snapshot's layer held): the
   * guest-visible disk is the same, and it no longer depends on the cache's snapshots.
   */
  private async detachFromSnapshot(files: VmFiles): Promise<void> {
    const qemuImg = await findQemuImg(this.env);
    if (!qemuImg) return;
    const info = await runCapture(qemuImg, ["info", "--output=json", "--backing-chain", "-U", files.disk], {
      timeoutMs: 30_000,
    });
    if (info.exitCode !== 0) return;
    const chain = JSON.parse(info.stdout) as {
      filename: string;
      format: string;
      "backing-filename"?: string;
    }[];
    const backing = chain[0]?.["backing-filename"];
    const base = chain[chain.length - 1];
    if (chain.length < 3 || !backing || !base || !backing.startsWith(this.snapRoot)) return;
    const r = await runCapture(
      qemuImg,
      ["rebase", "-f", "qcow2", "-b", base.filename, "-F", base.format, files.disk],
      { timeoutMs: 600_000 },
    );
    if (r.exitCode !== 0)
      throw new PyroError(
        "engine_failure",
        `qemu-img rebase of ${files.disk} failed: ${lastLines(r.stderr)}`,
      );
  }

  /**
   * Memory-level pause: the VM is stopped, its whole state migrated to `imageDir/state`
   * (QMP migrate to a file, as for the boot snapshots), then its process ends. Its disk
   * overlay is left exactly as the saved memory expects it.
   */
  async pause(handle: SandboxHandle, imageDir: string): Promise<void> {
    const d = await this.assertRunning(handle);
    await mkdir(imageDir, { recursive: true, mode: 0o700 });
    const state = join(imageDir, "state");
    const qmp = await QmpClient.connect(d.files.qmpSocket, 10_000);
    try {
      await qmp.execute("stop");
      await qmp
        .execute("migrate-set-parameters", { "max-bandwidth": 8 * 1024 ** 3 })
        .catch(ignore("raising the migration bandwidth: without it the pause is only slower"));
      await qmp.execute("migrate", { uri: `exec:cat > ${shellQuote(state)}` });
      const deadline = Date.now() + 120_000;
      for (;;) {
        const m = await qmp.execute<{ status?: string; "error-desc"?: string }>("query-migrate");
        if (m.status === "completed") break;
        if (m.status === "failed" || m.status === "cancelled") {
          await qmp
            .execute("cont")
            .catch(ignore("resuming the VM after a failed migration: the migration error is the one thrown"));
          throw new PyroError(
            "engine_failure",
            `saving the VM's memory failed: ${m["error-desc"] ?? m.status}`,
          );
        }
        if (Date.now() > deadline || !pidAlive(d.pid))
          throw new PyroError("engine_failure", "saving the VM's memory did not complete");
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      qmp.close();
    }
    // No sync: the guest is stopped, and its disk is as the saved memory expects it.
    await this.endVm(handle, d);
  }

  /** Starts QEMU with -incoming on the kept disk and loads pause's state: the same processes run on. */
  async resume(handle: SandboxHandle, imageDir: string, spec: SandboxSpec): Promise<SandboxHandle> {
    const t0 = performance.now();
    const p = await this.prepare(spec);
    const old = this.data(handle);
    const files = await vmFiles(handle.sandboxDir);
    for (const f of [files.agentSocket, files.qmpSocket]) await rm(f, { force: true });
    const pid = await this.restore(spec, p, files, { state: join(imageDir, "state") });
    const data: QemuHandleData = {
      ...old,
      pid,
      files,
      boot: { mode: "restore", ms: Math.round(performance.now() - t0) },
    };
    delete data.watchPid;
    if (spec.expiresAt) Object.assign(data, await this.watchExpiry(spec, pid, old.marker, spec.expiresAt));
    return { ...handle, data };
  }

  /**
   * The VM's TTL without a pyro process alive: a detached `pyro-sandbox-init watch` on the
   * host kills the VM process once the time in ctl/expires_at has passed (and exits with it).
   */
  private async watchExpiry(
    spec: SandboxSpec,
    pid: number,
    marker: string,
    expiresAt: string,
  ): Promise<{ ctlDir: string; watchPid?: number }> {
    const ctlDir = join(spec.sandboxDir, "ctl");
    await mkdir(ctlDir, { recursive: true });
    await writeExpiry(ctlDir, expiresAt);
    const init = await ensureStaticBinary(SANDBOX_INIT, this.paths.cacheDir, this.env);
    const args = [
      "watch",
      "--pid",
      String(pid),
      "--marker",
      marker,
      "--expires-file",
      join(ctlDir, EXPIRES_FILE),
    ];
    const watcher = spawn(init, args, { detached: true, stdio: "ignore", env: sandboxProcessEnv() });
    watcher.unref();
    return { ctlDir, ...(watcher.pid ? { watchPid: watcher.pid } : {}) };
  }

  async setExpiry(handle: SandboxHandle, expiresAt: string): Promise<void> {
    const { ctlDir } = qemuData(handle);
    if (typeof ctlDir === "string") await writeExpiry(ctlDir, expiresAt);
  }

  async orphanAlive(id: string, sandboxDir: string): Promise<boolean> {
    return (
      (await findProcesses((await vmFiles(sandboxDir)).qmpSocket)).length > 0 ||
      (await networkExists(id, this.env))
    );
  }

  async removeOrphan(id: string, sandboxDir: string): Promise<void> {
    const files = await vmFiles(sandboxDir);
    for (const pid of await findProcesses(files.qmpSocket)) {
      if (!(await killVm(pid, files.qmpSocket)))
        throw new PyroError("engine_failure", `could not kill the VM process ${pid}`);
    }
    await teardownSandboxNetwork(id, this.env);
    if (files.socketDir !== sandboxDir) await rm(files.socketDir, { recursive: true, force: true });
  }

  async destroy(handle: SandboxHandle): Promise<void> {
    const d = qemuDataLoose(handle);
    if (typeof d.pid === "number" && typeof d.marker === "string") {
      if (!(await killVm(d.pid, d.marker)))
        throw new PyroError("engine_failure", `qemu process ${d.pid} of ${handle.id} did not exit`);
    }
    // The expiry watchdog would exit on its own within seconds; it goes with the VM.
    const watchPid = d.watchPid;
    if (typeof watchPid === "number" && typeof d.marker === "string") await killVm(watchPid, d.marker);
    await teardownSandboxNetwork(handle.id, this.env);
    await this.removeFiles(handle.sandboxDir, d.files);
  }

  private async removeFiles(sandboxDir: string, files: VmFiles | undefined): Promise<void> {
    if (files && files.socketDir !== sandboxDir) await rm(files.socketDir, { recursive: true, force: true });
    await rm(sandboxDir, { recursive: true, force: true });
  }

  async inspect(handle: SandboxHandle): Promise<SandboxInspect> {
    const d = this.data(handle);
    if (isOurProcess(d.pid, d.marker)) return { state: "running", pid: d.pid };
    const last = (await tailLines(d.files.consoleLog, 1)).slice(0, 200);
    return { state: "stopped", reason: `qemu process ${d.pid} exited${last ? ` (console: ${last})` : ""}` };
  }

  async runOnce(spec: SandboxSpec, req: ExecRequest): Promise<OneShotOutcome> {
    const t0 = performance.now();
    let handle: SandboxHandle | undefined;
    try {
      handle = await this.create(spec);
      const bootMs = Math.round(performance.now() - t0);
      const out = await this.execIn(handle, req, true);
      return { ...out, bootMs };
    } finally {
      if (handle)
        await this.destroy(handle).catch(ignore("destroying the one-shot VM: the run's outcome stands"));
      else await rm(spec.sandboxDir, { recursive: true, force: true });
    }
  }
}

/**
 * `--allow-host` is enforced by the guest asking pyro's forwarder; slirp resolves through the
 * host's /etc/resolv.conf itself, so under QEMU it is refused rather than silently bypassed.
 */
function refuseAllowHost(spec: Pick<SandboxSpec, "network" | "net">): void {
  if (!spec.network || !spec.net?.allow_hosts.length) return;
  throw new PyroError(
    "engine_unavailable",
    "the QEMU engine cannot enforce allow_host: its user-mode network resolves names itself, around pyro's DNS forwarder",
    "use the gVisor engine for allow_host (PYRO_ENGINE=gvisor), or allow_cidr with the addresses",
  );
}

/** The VM process started inside the sandbox's network namespace when it has one. */
function inNetns(spec: SandboxSpec, binary: string, args: string[]): [string, string[]] {
  return spec.network
    ? ["nsenter", [`--net=${netNames(spec.id).nsPath}`, "--", binary, ...args]]
    : [binary, args];
}
