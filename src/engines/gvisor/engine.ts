import { spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { EXEC_WRAPPER } from "../../core/command.js";
import { PyroError } from "../../core/errors.js";
import { networkExists } from "../../network/netns.js";
import type { NetworkSpec } from "../../network/policy.js";
import {
  handleNetInfo,
  rearmSandboxNetwork,
  rootlessSandboxNetwork,
  sandboxNetwork,
  teardownSandboxNetwork,
  updateSandboxNetwork,
} from "../../network/sandbox-net.js";
import { ignore, noted } from "../../util/best-effort.js";
import { cpuSharesForNice, niced, sandboxNice, setAutogroupNice } from "../../util/priority.js";
import { runCapture, runToLog, sandboxProcessEnv } from "../../util/proc.js";
import { ensureStaticBinary, SANDBOX_INIT } from "../../util/static-binaries.js";
import { EXPIRES_FILE, writeExpiry } from "../expiry.js";
import { execOutcome } from "../outcome.js";
import { NO_CAPABILITIES, runProbeCommand, unavailable } from "../probe-run.js";
import type {
  DetachedRequest,
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
import {
  buildOciConfig,
  CTL_IN_GUEST,
  EXEC_SOCKET,
  guestEnv,
  HOSTS_FILE,
  IN_SANDBOX_DEADLINE_GRACE_MS,
  INIT_IN_GUEST,
  RUN_IN_GUEST,
  type SandboxMounts,
  SOCK_IN_GUEST,
} from "./bundle.js";
import { deathCause, runOverChannel, sandboxDeathError } from "./channel-run.js";
import { ChannelUnavailable, channelPing } from "./exec-channel.js";
import { MIN_RUNSC_DATE, runscFeatures, runscTooOld } from "./features.js";
import { type GvisorHandleData, gvisorData, gvisorDataOrUndefined, handleMayHaveNetwork } from "./handle.js";
import { type NetRoute, netRouteFor, runscNetRoute } from "./net-route.js";
import { hostPidsLimit, pidsLimit } from "./pids.js";
import { rootfsSource } from "./rootfs.js";
import {
  findRunsc,
  globalFlags,
  pidAlive,
  type RunscFlags,
  readRunscVersion,
  runsc,
  runscRootless,
  runscState,
  runscSupports,
} from "./runsc.js";

const SETUP_HINT =
  "run `sudo scripts/setup-host.sh` (builds the pinned gVisor, or installs Debian trixie's runsc without Go), or set PYRO_RUNSC";

/**
 * argv run through the sandbox init with a deadline: `/.pyro/init run --deadline-ms N -- argv`,
 * and the sandbox's process limit for the command when it has one (see pids.ts).
 */
export function withDeadline(argv: string[], timeoutMs: number, pids = 0): string[] {
  return [
    INIT_IN_GUEST,
    "run",
    "--deadline-ms",
    String(timeoutMs + IN_SANDBOX_DEADLINE_GRACE_MS),
    ...(pids > 0 ? ["--pids-limit", String(pids)] : []),
    "--",
    ...argv,
  ];
}

/**
 * How long create waits for a started sandbox's exec channel to answer. Measured here: the
 * first answer comes ~10-40 ms after `runsc run --detach` returns; the deadline is for a host
 * so loaded that the init has not run yet.
 */
const CHANNEL_READY_MS = 15_000;

/** The sandbox's process limit as recorded in its handle (0: none, or made before limits). */
function handlePids(handle: SandboxHandle): number {
  return gvisorData(handle).pidsLimit ?? 0;
}

/** Container names carry a prefix so `runsc list` shows which sandboxes are pyro's. */
export function containerId(id: string): string {
  return `pyro-${id}`;
}

export class GvisorEngine implements Engine {
  readonly name = "gvisor" as const;
  readonly executionMode = "gvisor" as const;
  readonly traits: EngineTraits = {
    ...NO_TRAITS,
    isolated: true,
    sharedWorkspaceDir: true,
    diskImage: true,
    guestOnlySpecialFiles: true,
    secretsMount: "overlay",
    egressPolicy: true,
    pool: true,
  };

  constructor(
    private readonly runscRoot: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly cacheDir: string = join(dirname(runscRoot), "cache"),
  ) {}

  /**
   * The read-only host files every sandbox gets: the init, a shared /etc/hosts, and the
   * environment's EROFS image when it has one (always, without root: see rootfs.ts).
   */
  private async mounts(rootfs: string, ctlDir?: string): Promise<SandboxMounts> {
    const source = await rootfsSource(rootfs, {
      cacheDir: this.cacheDir,
      rootless: runscRootless(),
      env: this.env,
    });
    const rootfsImage = source.image ? { image: source.image, emptyRoot: await this.emptyRoot() } : undefined;
    const init = await ensureStaticBinary(SANDBOX_INIT, this.cacheDir, this.env);
    // In the cache (it is rebuildable), not in runsc's root: runsc owns that directory.
    const hostsFile = join(this.cacheDir, "gvisor", "hosts");
    if (!existsSync(hostsFile)) {
      await mkdir(dirname(hostsFile), { recursive: true });
      const tmp = `${hostsFile}.${process.pid}`;
      await writeFile(tmp, HOSTS_FILE, { mode: 0o644 });
      await rename(tmp, hostsFile);
    }
    return { init, hostsFile, ...(ctlDir ? { ctlDir } : {}), ...(rootfsImage ? { rootfsImage } : {}) };
  }

  /** An empty directory for the OCI root when the rootfs is an image (runsc wants a directory). */
  private async emptyRoot(): Promise<string> {
    const dir = join(this.cacheDir, "gvisor", "empty-root");
    await mkdir(dir, { recursive: true, mode: 0o755 });
    return dir;
  }

  /** Moves the sandbox's expiry; its init stops the sandbox once it has passed. */
  async setExpiry(handle: SandboxHandle, expiresAt: string): Promise<void> {
    const { ctlDir } = gvisorData(handle);
    if (!ctlDir) return;
    await writeExpiry(ctlDir, expiresAt);
  }

  /**
   * Every host path under `from` rewritten to `to`. runsc itself keeps no path it uses after
   * start (measured: exec, kill and delete work after the rename; the guest sees host writes
   * to the moved files/ and run/, and the init reads the moved ctl/expires_at).
   */
  relocate(handle: SandboxHandle, from: string, to: string): SandboxHandle {
    const move = (v: unknown): unknown =>
      typeof v === "string" && (v === from || v.startsWith(`${from}/`)) ? to + v.slice(from.length) : v;
    const data = Object.fromEntries(
      Object.entries(gvisorData(handle)).map(([k, v]) => [k, move(v)]),
    ) as unknown as GvisorHandleData;
    return {
      ...handle,
      sandboxDir: move(handle.sandboxDir) as string,
      ...(handle.workspaceDir ? { workspaceDir: move(handle.workspaceDir) as string } : {}),
      data,
    };
  }

  private async flagsFor(network: boolean, execChannel = false): Promise<RunscFlags> {
    const binary = await findRunsc(this.env);
    if (!binary) throw new PyroError("engine_unavailable", "runsc (gVisor) is not installed", SETUP_HINT);
    await mkdir(this.runscRoot, { recursive: true, mode: 0o700 });
    const goferNetns = await runscSupports("gofer_netns", { binary, cacheDir: this.cacheDir });
    // Without root the namespace is pasta's and runsc refuses its netstack there (rootless-net.ts).
    const mode = !network ? "none" : runscRootless() ? "host" : runscNetworkFor(await this.netRoute(binary));
    return {
      binary,
      global: globalFlags(this.runscRoot, mode, this.env, runscRootless(), execChannel, goferNetns),
    };
  }

  /** The route a sandbox with network takes with this runsc (net-route.ts). */
  private netRoute(binary: string): Promise<NetRoute> {
    return runscNetRoute(binary, this.cacheDir, this.env);
  }

  /** The sandbox's namespace: pyro's own as root, pasta's without (network/rootless-net.ts). */
  private async network(spec: SandboxSpec) {
    if (!runscRootless()) return sandboxNetwork(spec, this.env);
    return rootlessSandboxNetwork(spec, this.env);
  }

  private handleFlags(handle: SandboxHandle): RunscFlags {
    const f = gvisorData(handle).flags;
    if (!f) {
      throw new PyroError("invalid_state", `sandbox ${handle.id} has no runsc flags recorded`);
    }
    return f;
  }

  async probe(opts: ProbeOptions): Promise<ProbeResult> {
    const binary = await findRunsc(this.env);
    if (!binary) return unavailable(this.name, `runsc not found; ${SETUP_HINT}`);
    const parsed = await readRunscVersion(binary);
    const version = parsed.text;
    // Which runsc, and what its version enables: doctor reports it for every probe outcome.
    const runtime = { binary, version, features: runscFeatures(parsed) };
    if (runscTooOld(parsed)) {
      return {
        ...unavailable(
          this.name,
          `${binary} is ${version}, older than ${MIN_RUNSC_DATE} (fails statx on directories); ${SETUP_HINT}`,
          { binary, version },
        ),
        runtime,
      };
    }
    if (!opts.rootfs) {
      return {
        engine: this.name,
        available: true,
        detail: `${binary} (${version}) found; not test-run because no environment is installed yet`,
        capabilities: { vm_boot: false, guest_exec: false, guest_network: true },
        extra: { binary, version, tested: false, ...networkRouteExtra(version, this.env) },
        runtime,
      };
    }
    const probe = await runProbeCommand(this, {
      rootfs: opts.rootfs,
      scratchDir: opts.scratchDir,
      memMib: 256,
      timeoutMs: opts.deadlineMs ?? 20_000,
    });
    if (probe.error !== undefined) {
      return { ...unavailable(this.name, `test sandbox failed: ${probe.error}`), runtime };
    }
    const r = probe.outcome;
    // Said where it changes what a user gets: no cgroups are set up without root.
    const mode = runscRootless() ? " without root (memory and CPU limits not enforced)" : "";
    return {
      engine: this.name,
      available: probe.ok,
      detail: probe.ok
        ? `${version}${mode}: a sandbox ran a command in ${r.execMs} ms`
        : `${version}: test sandbox failed (exit ${r.exitCode}${r.timedOut ? ", timed out" : ""}): ${(r.stderr || r.stdout).trim().slice(0, 300)}`,
      probeMs: r.execMs,
      capabilities: probe.ok ? { vm_boot: true, guest_exec: true, guest_network: true } : NO_CAPABILITIES,
      extra: { binary, version, tested: true, ...networkRouteExtra(version, this.env) },
      runtime,
    };
  }

  async create(spec: SandboxSpec): Promise<SandboxHandle> {
    try {
      return await this.createSandbox(spec);
    } catch (e) {
      // Whatever failed, the sandbox's network (named from its id) goes with it.
      if (spec.network)
        await teardownSandboxNetwork(spec.id, this.env).catch(
          ignore("tearing down the network of a failed create: the create error is the one thrown"),
        );
      throw e;
    }
  }

  private async createSandbox(spec: SandboxSpec): Promise<SandboxHandle> {
    const channel = this.env.PYRO_EXEC_CHANNEL !== "runsc";
    const pids = pidsLimit(this.env);
    const nice = sandboxNice(this.env);
    const flags = await this.flagsFor(spec.network, channel);
    const bundle = join(spec.sandboxDir, "bundle");
    await mkdir(bundle, { recursive: true });
    // The network first: its namespace must exist for the spec to name it. Removed by id on
    // any failure below (and by removeOrphan after a crash).
    const net = spec.network ? await this.network(spec) : undefined;
    const ctlDir = join(spec.sandboxDir, "ctl");
    const runDir = join(spec.sandboxDir, "run");
    const sockDir = join(spec.sandboxDir, "sock");
    await mkdir(bundle, { recursive: true });
    await mkdir(ctlDir, { recursive: true });
    // 0700: in the guest only root (the init) may reach the exec socket, not an image's user.
    if (channel) await mkdir(sockDir, { recursive: true, mode: 0o700 });
    // 0755: an image's non-root user must reach its shells' files (the state dir keeps others out).
    await mkdir(runDir, { recursive: true, mode: 0o755 });
    // Written before the sandbox starts (0: no expiry), so the init may take a missing file
    // for a removed state dir from its first read on (--expires-file-present).
    await writeExpiry(ctlDir, spec.expiresAt);
    // The init idles, reaps orphans and ends the sandbox past its expiry (with no pyro
    // process alive); commands arrive later with `runsc exec`. Its stdio is a log file, so no
    // pipe of ours is held open by the long-lived sandbox.
    const config = buildOciConfig(
      spec,
      {
        args: [
          INIT_IN_GUEST,
          "idle",
          "--expires-file",
          `${CTL_IN_GUEST}/${EXPIRES_FILE}`,
          "--expires-file-present",
          ...(channel ? ["--listen", `${SOCK_IN_GUEST}/${EXEC_SOCKET}`] : []),
          ...(pids > 0 ? ["--pids-limit", String(pids)] : []),
        ],
        cwd: "/",
        // Root, whatever an image's User says: the init binds its socket in the 0700
        // /.pyro/sock and kills whole sessions; each command carries the image's user itself.
        user: { uid: 0, gid: 0 },
      },
      {
        ...(await this.mounts(spec.rootfs, ctlDir)),
        runDir,
        ...(channel ? { sockDir } : {}),
        ...(net ? { net: { ...net.mount, netstack: isNetstack(flags) } } : {}),
      },
      pids > 0 ? hostPidsLimit(pids) : undefined,
      cpuSharesForNice(nice),
    );
    await writeFile(join(bundle, "config.json"), JSON.stringify(config));
    // A restart gets a container name of its own (a generation), so it need not wait for the
    // previous sandbox's `runsc delete` (~1.3 s here, see retire); orphans are found by prefix.
    const cid = spec.restart ? `${containerId(spec.id)}-r${Date.now().toString(36)}` : containerId(spec.id);
    const data: GvisorHandleData = {
      flags,
      containerId: cid,
      ctlDir,
      runDir,
      init: true,
      ...(channel ? { execSocket: join(sockDir, EXEC_SOCKET) } : {}),
      memMib: spec.memMib,
      ...(pids > 0 ? { pidsLimit: pids } : {}),
      ...(net ? { net: net.data } : {}),
    };
    const handle: SandboxHandle = {
      engine: this.name,
      id: spec.id,
      sandboxDir: spec.sandboxDir,
      ...(spec.workspaceDir ? { workspaceDir: spec.workspaceDir } : {}),
      data,
    };
    // `run --detach` creates and starts in one call: rootless runsc refuses `create` ("Rootless
    // mode not supported with create"), and one code path serves both modes.
    // At the sandbox niceness (util/priority.ts), which the sandbox and gofer inherit.
    const created = await runToLog(
      ...niced(
        nice,
        ...inNetns(hostStackNs(flags, net?.mount), flags.binary, [
          ...flags.global,
          "run",
          "--detach",
          "--bundle",
          bundle,
          cid,
        ]),
      ),
      join(spec.sandboxDir, "create.log"),
      { timeoutMs: 60_000, env: sandboxProcessEnv() },
    );
    if (created.exitCode !== 0) {
      await this.destroy(handle);
      throw new PyroError("engine_failure", `runsc run --detach failed: ${lastLines(created.output)}`);
    }
    const st = await runscState(flags, cid);
    if (st?.pid) data.pid = st.pid;
    // Rootless runsc makes no cgroup: the sandbox's own session (an autogroup) is its group.
    if (flags.global.includes("--rootless")) await setAutogroupNice(st?.pid, nice);
    // Handed back only once the exec channel answers: `run --detach` returns before the init
    // has created its socket, and a first exec that found none would take `runsc exec`.
    // Here, so every caller (create, start, reset, fork, restore, the pool) gets it.
    if (data.execSocket) await this.awaitChannel(handle, data.execSocket);
    return handle;
  }

  /** One round trip to the init's exec channel, or the sandbox is destroyed and that said. */
  private async awaitChannel(handle: SandboxHandle, socket: string): Promise<void> {
    try {
      await channelPing(socket, CHANNEL_READY_MS);
    } catch (e) {
      if (!(e instanceof ChannelUnavailable)) throw e;
      const cause = (await this.inspect(handle)).state !== "running" ? await deathCause(handle) : undefined;
      await this.destroy(handle).catch(
        ignore("destroying a sandbox whose exec channel never answered: the channel error is the one thrown"),
      );
      throw new PyroError(
        "engine_failure",
        `sandbox ${handle.id} started, but its init's exec channel did not answer within ${CHANNEL_READY_MS / 1000} s (${cause ?? e.message}); the sandbox was removed`,
        `try again; if it keeps happening, read ${join(handle.sandboxDir, "create.log")} before it goes, or set PYRO_EXEC_CHANNEL=runsc`,
      );
    }
  }

  async exec(handle: SandboxHandle, req: ExecRequest): Promise<ExecOutcome> {
    const flags = this.handleFlags(handle);
    const d = gvisorData(handle);
    const cid = d.containerId;
    await this.assertRunning(handle);
    // The program runs under the sandbox init (`/.pyro/init run`), which gives it its own
    // session, enforces the deadline inside the sandbox and reports a missing program as 127
    // the way a shell would; the `sh -c 'exec "$@"'` wrapper other engines need is dropped.
    const argv = unwrapExecWrapper(req.argv);
    if (d.execSocket) {
      const r = await runOverChannel(handle, d.execSocket, argv, req, () => this.throwIfDead(handle));
      if (r) return r;
    }
    const pidFile = join(
      handle.sandboxDir,
      `exec-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}.pid`,
    );
    const args = ["exec", "--internal-pid-file", pidFile, "--cwd", req.cwd ?? "/"];
    for (const kv of guestEnv(req.env)) args.push("--env", kv);
    if (req.user) args.push("--user", `${req.user.uid}:${req.user.gid}`);
    // `init read` carries its own deadline: no `run` wrapper (one exec instead of two).
    const selfTimed = argv[0] === INIT_IN_GUEST && argv[1] === "read";
    args.push(cid, ...(d.init && !selfTimed ? withDeadline(argv, req.timeoutMs, handlePids(handle)) : argv));
    const r = await runsc(flags, args, {
      timeoutMs: req.timeoutMs,
      maxOutputBytes: req.maxOutputBytes,
      signal: req.signal,
      ...streamTo(req),
      ...(req.stdin ? { stdin: req.stdin } : {}),
      // SIGTERM to the init's `run` makes it kill the command's whole process group.
      // (Signalling `runsc exec` itself would not: it does not forward signals.)
      onKill: async () => {
        const pid = Number((await readFile(pidFile, "utf8").catch(() => "")).trim());
        if (pid > 0) await runsc(flags, ["kill", "--pid", String(pid), cid, "TERM"], { timeoutMs: 10_000 });
      },
      killGraceMs: 2_000,
    });
    await rm(pidFile, { force: true });
    if (r.aborted) throw new PyroError("cancelled", "command cancelled; its processes were killed");
    if (!r.timedOut && r.exitCode !== 0 && r.exitCode !== null) await this.throwIfDead(handle);
    return execOutcome(r);
  }

  /** A command that failed because its sandbox died (out of memory, killed): said so. */
  private async throwIfDead(handle: SandboxHandle): Promise<void> {
    if ((await this.inspect(handle)).state === "running") return;
    throw await sandboxDeathError(handle);
  }

  async updateNetwork(handle: SandboxHandle, net: NetworkSpec): Promise<NetworkInfo> {
    await this.assertRunning(handle);
    const d = gvisorData(handle);
    d.net = await updateSandboxNetwork(handle.id, d.net, net, this.env);
    return this.networkInfo(handle);
  }

  networkInfo(handle: SandboxHandle): NetworkInfo {
    const d = gvisorDataOrUndefined(handle);
    return handleNetInfo(d?.net, d?.flags?.global.includes("--network=host") ?? false);
  }

  hasInit(handle: SandboxHandle): boolean {
    return gvisorDataOrUndefined(handle)?.init === true;
  }

  /** Freezes every process of the sandbox (runsc pause: ~20 ms, processes intact). */
  async freeze(handle: SandboxHandle): Promise<void> {
    const out = await runsc(this.handleFlags(handle), ["pause", gvisorData(handle).containerId], {
      timeoutMs: 15_000,
    });
    if (out.exitCode !== 0)
      throw new PyroError(
        "engine_failure",
        `cannot pause the sandbox for the snapshot: ${out.stderr.trim().slice(-300)}`,
      );
  }

  async thaw(handle: SandboxHandle): Promise<void> {
    const out = await runsc(this.handleFlags(handle), ["resume", gvisorData(handle).containerId], {
      timeoutMs: 15_000,
    });
    if (out.exitCode !== 0 && !/not paused|is not paused|running/i.test(out.stderr))
      throw new PyroError("engine_failure", `cannot resume the sandbox: ${out.stderr.trim().slice(-300)}`);
  }

  /**
   * Waits (up to 30 s) until no runsc command naming the sandbox's container runs (found in
   * /proc), other than the sandbox's own long-lived processes (its boot and gofer): a dead
   * pyro's `runsc delete` would otherwise remove the sandbox a recovery starts under the name.
   */
  async settle(id: string, handle: SandboxHandle | undefined): Promise<void> {
    const cid = (handle && gvisorDataOrUndefined(handle)?.containerId) || containerId(id);
    const busy = async () => {
      for (const pid of await readdir("/proc").catch(() => [] as string[])) {
        if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
        const argv = (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0");
        if (!argv.includes(cid) || !/runsc/.test(argv[0] ?? "")) continue;
        // The subcommand: the first argument that is no global flag.
        const sub = argv.slice(1).find((a) => !a.startsWith("-"));
        if (sub && ["delete", "kill", "pause", "resume", "run"].includes(sub)) return true;
      }
      return false;
    };
    const t0 = Date.now();
    while ((await busy()) && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 50));
  }

  runDir(handle: SandboxHandle): { host: string; guest: string } | undefined {
    const host = gvisorData(handle).runDir;
    return typeof host === "string" ? { host, guest: RUN_IN_GUEST } : undefined;
  }

  /**
   * A `runsc exec` of our own, started in its own session with its output to a log file and
   * not waited for: it outlives this process, and ends when the program does or the sandbox
   * goes. (runsc's own `exec --detach` appends `--pid-file=…` to the program's argv in this
   * runsc release, so it cannot be used.)
   */
  async spawnDetached(handle: SandboxHandle, req: DetachedRequest): Promise<void> {
    const flags = this.handleFlags(handle);
    const cid = gvisorData(handle).containerId;
    await this.assertRunning(handle);
    const args = [...flags.global, "exec", "--cwd", req.cwd ?? "/"];
    for (const kv of guestEnv(req.env)) args.push("--env", kv);
    if (req.user) args.push("--user", `${req.user.uid}:${req.user.gid}`);
    // A shell's or service's program gets the sandbox's process limit like any command.
    const argv =
      req.argv[0] === INIT_IN_GUEST && req.argv[1] === "supervise" && handlePids(handle) > 0
        ? [INIT_IN_GUEST, "supervise", "--pids-limit", String(handlePids(handle)), ...req.argv.slice(2)]
        : req.argv;
    args.push(cid, ...argv);
    const log = await open(join(handle.sandboxDir, "detached.log"), "a", 0o600);
    try {
      await new Promise<void>((resolve, reject) => {
        const child = spawn(flags.binary, args, {
          detached: true,
          stdio: ["ignore", log.fd, log.fd],
          env: sandboxProcessEnv(),
        });
        child.once("error", (e) =>
          reject(new PyroError("engine_failure", `runsc exec could not start: ${e.message}`)),
        );
        child.once("spawn", () => {
          child.unref();
          resolve();
        });
      });
    } finally {
      await log.close();
    }
  }

  async putArchive(handle: SandboxHandle, tar: Readable, dest: string): Promise<void> {
    const flags = this.handleFlags(handle);
    const cid = gvisorData(handle).containerId;
    await this.assertRunning(handle);
    // Unpacked by the guest's own tar, inside the sandbox: whatever the archive or the
    // guest's symlinks say, nothing on the host outside /workspace's directory is touched.
    const r = await runsc(
      flags,
      [
        "exec",
        "--cwd",
        "/",
        cid,
        "/bin/sh",
        "-c",
        'mkdir -p -- "$1" && exec tar -x --no-same-owner -C "$1" -f -',
        "sh",
        dest,
      ],
      { stdin: tar, timeoutMs: 300_000 },
    );
    if (r.exitCode !== 0)
      throw new PyroError("engine_failure", `unpacking into ${dest} failed: ${lastLines(r.stderr)}`);
  }

  async stop(handle: SandboxHandle): Promise<void> {
    const flags = this.handleFlags(handle);
    await runsc(flags, ["kill", gvisorData(handle).containerId, "KILL"], { timeoutMs: 10_000 });
    // Its published ports close with it; a later create under this id makes a new network.
    if (handleMayHaveNetwork(handle)) await teardownSandboxNetwork(handle.id, this.env);
  }

  /**
   * Memory-level pause: `runsc checkpoint` (the sandbox's memory, processes and its in-memory
   * root overlay into imageDir; the sandbox then stops), then `runsc delete`, keeping the
   * bundle for `resume`. What works with runsc 20240729 and what does not: see the
   * "Lifecycle" section of docs/architecture.md (a process holding a host FD that runsc exec
   * gave it cannot be restored).
   */
  async pause(handle: SandboxHandle, imageDir: string): Promise<void> {
    // Measured with runsc 20240729: the restored sandbox has its init, pid counter and
    // in-memory root overlay back, but the sentry SIGKILLs every process `runsc exec` started
    // as the kernel loads (all of pyro's commands, shells and services), with or without
    // --leave-running. Not a pause with memory, then: opt-in only, for trying newer runsc.
    if (this.env.PYRO_GVISOR_CHECKPOINT !== "1")
      throw new PyroError(
        "engine_unavailable",
        "gVisor (runsc 20240729) restores a checkpoint without the processes runsc exec started, so no process would survive",
      );
    const flags = this.handleFlags(handle);
    const cid = gvisorData(handle).containerId;
    await mkdir(imageDir, { recursive: true, mode: 0o700 });
    const r = await runsc(flags, ["checkpoint", `--image-path=${imageDir}`, cid], { timeoutMs: 120_000 });
    if (r.exitCode !== 0)
      throw new PyroError("engine_failure", `runsc checkpoint failed: ${lastLines(r.stderr || r.stdout)}`);
    // checkpoint returns before the sandbox has stopped.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (await runscState(flags, cid))?.status === "running")
      await new Promise((res) => setTimeout(res, 50));
    await runsc(flags, ["kill", cid, "KILL"], { timeoutMs: 10_000 }).catch(
      ignore(
        "killing the checkpointed sandbox: it may have stopped already; the delete that follows is checked",
      ),
    );
    const d = await runsc(flags, ["delete", "--force", cid], { timeoutMs: 30_000 });
    if (d.exitCode !== 0 && (await runscState(flags, cid)))
      throw new PyroError(
        "engine_failure",
        `runsc delete ${cid} after checkpoint failed: ${lastLines(d.stderr)}`,
      );
  }

  /** `runsc restore` from pause's image with the same bundle; proven by one exec. */
  async resume(handle: SandboxHandle, imageDir: string, _spec: SandboxSpec): Promise<SandboxHandle> {
    const flags = this.handleFlags(handle);
    const cid = gvisorData(handle).containerId;
    const bundle = join(handle.sandboxDir, "bundle");
    // The sandbox's namespace outlives the pause: restored into it on the route it started on.
    const nsPath = await rearmSandboxNetwork(gvisorData(handle).net, isNetstack(flags), this.env);
    const r = await runToLog(
      ...niced(
        sandboxNice(this.env),
        ...inNetns(hostStackNs(flags, nsPath ? { nsPath } : undefined), flags.binary, [
          ...flags.global,
          "restore",
          `--image-path=${imageDir}`,
          "--bundle",
          bundle,
          "--detach",
          cid,
        ]),
      ),
      join(handle.sandboxDir, "restore.log"),
      { timeoutMs: 60_000, env: sandboxProcessEnv() },
    );
    const fail = async (why: string): Promise<never> => {
      await this.destroyKeepingFiles(flags, cid);
      throw new PyroError("engine_failure", `runsc restore failed: ${why}`);
    };
    if (r.exitCode !== 0) return fail(firstLine(r.output));
    const st = await runscState(flags, cid);
    if (st?.status !== "running") return fail(`the sandbox is ${st?.status ?? "gone"} after restore`);
    const data: GvisorHandleData = { ...gvisorData(handle), ...(st.pid ? { pid: st.pid } : {}) };
    const next: SandboxHandle = { ...handle, data };
    const probe = await runsc(flags, ["exec", cid, INIT_IN_GUEST], {
      timeoutMs: 15_000,
    }).catch((e: unknown) => ({ exitCode: -1, stderr: String(e), stdout: "" }));
    // Any answer from inside (even a usage error) proves the sandbox runs; runsc's own
    // failures (no control server) exit 128 with its message.
    if (probe.exitCode === 128 || probe.exitCode === -1)
      return fail(`the restored sandbox does not answer: ${lastLines(probe.stderr)}`);
    return next;
  }

  private async destroyKeepingFiles(flags: RunscFlags, cid: string): Promise<void> {
    await runsc(flags, ["kill", cid, "KILL"], { timeoutMs: 10_000 }).catch(
      ignore(
        "killing the container of a failed restore: it may be stopped already; the restore error is the one thrown",
      ),
    );
    await runsc(flags, ["delete", "--force", cid], { timeoutMs: 30_000 }).catch(
      ignore("deleting the container of a failed restore: the restore error is the one thrown"),
    );
  }

  /**
   * Kills the sandbox now and leaves `runsc delete` (which waits for the sandbox and its
   * gofer to exit) to a detached process that outlives pyro; its bundle and files stay for
   * the restart. Anything the delete leaves is found by removeOrphan (container names are
   * prefixed with the sandbox id). A sandbox with a network of its own takes the slow path:
   * its namespace, named from the id, is the fresh sandbox's too.
   */
  async retire(handle: SandboxHandle): Promise<void> {
    const d = gvisorDataOrUndefined(handle);
    const flags = d?.flags;
    if (!d || !flags || d.net) return this.destroy(handle);
    const cid = d.containerId;
    await runsc(flags, ["kill", cid, "KILL"], { timeoutMs: 10_000 }).catch(
      ignore("killing the retired container: it may be stopped already; its delete runs in the background"),
    );
    const child = spawn(flags.binary, [...flags.global, "delete", "--force", cid], {
      detached: true,
      stdio: "ignore",
      env: sandboxProcessEnv(),
    });
    child.on("error", () => undefined);
    child.unref();
  }

  async destroy(handle: SandboxHandle): Promise<void> {
    const d = gvisorDataOrUndefined(handle);
    // A damaged handle cannot name its container: it is found from the id, as an orphan's is.
    if (!d) await this.removeOrphan(handle.id, handle.sandboxDir);
    const flags = d?.flags;
    if (d && flags) {
      const cid = d.containerId;
      await runsc(flags, ["kill", cid, "KILL"], { timeoutMs: 10_000 }).catch(
        ignore("killing the container: it may be stopped already; the delete that follows is checked"),
      );
      const r = await runsc(flags, ["delete", "--force", cid], { timeoutMs: 30_000 }).catch(
        ignore("runsc delete could not run: the network and sandbox dir go below regardless"),
      );
      if (r && r.exitCode !== 0 && (await runscState(flags, cid))) {
        throw new PyroError("engine_failure", `runsc delete ${cid} failed: ${lastLines(r.stderr)}`);
      }
    }
    // After the sandbox: its published ports close with the table.
    if (handleMayHaveNetwork(handle)) await teardownSandboxNetwork(handle.id, this.env);
    await rm(handle.sandboxDir, { recursive: true, force: true });
  }

  async inspect(handle: SandboxHandle): Promise<SandboxInspect> {
    // Fast path, no runsc process: the sandbox pid recorded at create is alive.
    const d = gvisorData(handle);
    const pid = d.pid;
    if (typeof pid === "number" && pidAlive(pid)) return { state: "running", pid };
    const flags = this.handleFlags(handle);
    const st = await runscState(flags, d.containerId);
    if (!st) return { state: "missing", reason: "runsc has no record of the sandbox" };
    if (st.status === "running" && pidAlive(st.pid))
      return { state: "running", ...(st.pid ? { pid: st.pid } : {}) };
    if (st.status === "running")
      return { state: "stopped", reason: `sandbox process ${st.pid} is gone (killed from outside?)` };
    return { state: "stopped", reason: `runsc reports status ${st.status}` };
  }

  private async assertRunning(handle: SandboxHandle): Promise<void> {
    const i = await this.inspect(handle);
    if (i.state !== "running") {
      // Between commands too (a job left in the background), the cause is said when known.
      const cause = await deathCause(handle);
      throw new PyroError(
        "sandbox_dead",
        `sandbox ${handle.id} is not running: ${cause ? `killed: ${cause}` : (i.reason ?? i.state)}`,
        "delete it and create a new one",
      );
    }
  }

  /** The flags a sandbox with this id was made with (its network setting is not known here). */
  private async orphanFlags(id: string): Promise<{ flags: RunscFlags; generations: string[] } | undefined> {
    const binary = await findRunsc(this.env);
    if (!binary) return undefined;
    const flagsFor = (network: "none" | "sandbox" | "host") => ({
      binary,
      global: globalFlags(this.runscRoot, network, this.env),
    });
    // Restarts run under generation names (`pyro-<id>-r…`, see createSandbox); `runsc list`
    // reads only the root, so one call finds them whatever the network flag, and says whether
    // the first name exists at all: a gone sandbox (every delete checks) costs no `runsc
    // state` per network flag, each a spawn that holds a busy server's main thread 6-9 ms.
    const listed = await this.listed(flagsFor("none"));
    const prefix = `${containerId(id)}-r`;
    const generations = (listed ?? []).filter((c) => c.startsWith(prefix));
    if (generations.length) return { flags: flagsFor("none"), generations };
    if (listed && !listed.includes(containerId(id))) return undefined;
    for (const network of ["none", "sandbox", "host"] as const) {
      const flags = flagsFor(network);
      if (await runscState(flags, containerId(id))) return { flags, generations };
    }
    return undefined;
  }

  /** The containers of the runsc root, or undefined when `runsc list` failed. */
  private async listed(flags: RunscFlags): Promise<string[] | undefined> {
    const r = await runsc(flags, ["list", "-quiet"], { timeoutMs: 10_000 }).catch(
      ignore("runsc list failed: undefined says nothing is known, and the caller probes instead"),
    );
    if (r?.exitCode !== 0) return undefined;
    return r.stdout
      .split("\n")
      .map((l) => l.trim())
      .filter((c) => c !== "");
  }

  async orphanAlive(id: string, sandboxDir: string): Promise<boolean> {
    return (
      (await oneShotPid(id, sandboxDir)) !== undefined ||
      (await this.orphanFlags(id)) !== undefined ||
      (await networkExists(id, this.env))
    );
  }

  async removeOrphan(id: string, sandboxDir: string): Promise<void> {
    if (await endOneShot(id, sandboxDir)) await removeRunFiles(this.runscRoot, containerId(id));
    const found = await this.orphanFlags(id);
    if (found) {
      const { flags } = found;
      for (const cid of [containerId(id), ...found.generations]) {
        if (!(await runscState(flags, cid))) continue;
        await runsc(flags, ["kill", cid, "KILL"], { timeoutMs: 10_000 }).catch(
          ignore(
            "killing a leftover container: it may be stopped already; the delete that follows is checked",
          ),
        );
        await runsc(flags, ["delete", "--force", cid], { timeoutMs: 30_000 });
      }
    }
    await teardownSandboxNetwork(id, this.env);
    if (await this.orphanAlive(id, sandboxDir))
      throw new PyroError("engine_failure", `runsc could not remove sandbox ${containerId(id)}`);
  }

  async runOnce(spec: SandboxSpec, req: ExecRequest): Promise<OneShotOutcome> {
    const prepStart = performance.now();
    const pids = pidsLimit(this.env);
    const nice = sandboxNice(this.env);
    const flags = await this.flagsFor(spec.network);
    const bundle = join(spec.sandboxDir, "bundle");
    await mkdir(bundle, { recursive: true });
    const cid = containerId(spec.id);
    let net: Awaited<ReturnType<GvisorEngine["network"]>> | undefined;
    try {
      net = spec.network ? await this.network(spec) : undefined;
    } catch (e) {
      await rm(spec.sandboxDir, { recursive: true, force: true });
      throw e;
    }
    // The sandbox init is the container's PID 1: it runs the program with the deadline
    // (kept even if this process dies), reaps orphans, and its exit ends the sandbox.
    const config = buildOciConfig(
      spec,
      {
        args: withDeadline(unwrapExecWrapper(req.argv), req.timeoutMs, pids),
        cwd: req.cwd ?? "/",
        ...(req.env ? { env: req.env } : {}),
      },
      {
        ...(await this.mounts(spec.rootfs)),
        ...(net ? { net: { ...net.mount, netstack: isNetstack(flags) } } : {}),
      },
      pids > 0 ? hostPidsLimit(pids) : undefined,
      cpuSharesForNice(nice),
    );
    await writeFile(join(bundle, "config.json"), JSON.stringify(config));
    const bootMs = Math.round(performance.now() - prepStart);
    let cleanExit = false;
    try {
      // `runsc run` starts the sandbox with the init as PID 1 and tears it down on exit;
      // the command's stdio is our pipes. Killing the init ends the sandbox.
      const r = await runCapture(
        ...niced(
          nice,
          ...inNetns(hostStackNs(flags, net?.mount), flags.binary, [
            ...flags.global,
            "run",
            "--bundle",
            bundle,
            cid,
          ]),
        ),
        {
          env: sandboxProcessEnv(),
          timeoutMs: req.timeoutMs,
          maxOutputBytes: req.maxOutputBytes,
          signal: req.signal,
          ...streamTo(req),
          // On a timeout the init's own deadline (the same) ends the command and reports it:
          // `runsc run` gets the grace to exit with that report. On a cancel there is nothing
          // to wait for: `runsc kill` cannot reach the sandbox (an attached `runsc run`,
          // 20240729, keeps no container state; trying cost a runsc spawn and a 3 s grace per
          // cancel), but the sandbox is started attached (`boot --attached`: it dies with its
          // parent), so SIGKILL of `runsc run` ends the sandbox and gofer in ~0.3 s. The
          // finally below deletes what a runsc that does keep state left.
          onKill: (reason) => reason === "timeout",
          killGraceMs: 3_000,
          // Another process (vm_delete, the reaper) ends this run through that pid.
          onSpawn: (pid) => {
            try {
              writeFileSync(join(spec.sandboxDir, RUN_PID_FILE), String(pid), { mode: 0o600 });
            } catch (e) {
              noted("writing the one-shot's pid file: only this process can end the run then", e);
            }
          },
        },
      );
      cleanExit = !r.timedOut && !r.aborted;
      if (r.aborted) throw new PyroError("cancelled", "run cancelled; the sandbox was removed");
      if (
        r.exitCode !== 0 &&
        !r.timedOut &&
        /^running container: |creating container: |starting container: /m.test(r.stderr)
      ) {
        throw new PyroError("engine_failure", `runsc could not start the sandbox: ${lastLines(r.stderr)}`);
      }
      return { ...execOutcome(r), bootMs };
    } finally {
      // `runsc run` removes its container on a normal exit; after a kill it may not have.
      if (!cleanExit) {
        if (await runscState(flags, cid))
          await runsc(flags, ["delete", "--force", cid], { timeoutMs: 30_000 }).catch(
            ignore("deleting the killed one-shot's container: the run's outcome stands"),
          );
        await removeRunFiles(this.runscRoot, cid);
      }
      if (net)
        await teardownSandboxNetwork(spec.id, this.env).catch(
          ignore("tearing down the one-shot's network: the run's outcome stands"),
        );
      await rm(spec.sandboxDir, { recursive: true, force: true });
    }
  }
}

/**
 * Where a one-shot run keeps the pid of its `runsc run`: an attached `runsc run` keeps no
 * container state (runsc 20240729), so `runsc list`/`kill` cannot find the sandbox for any
 * process but the one that started it. Killing `runsc run` takes its sandbox and gofer with it.
 */
const RUN_PID_FILE = "runsc-run.pid";

/** The pid of a one-shot's `runsc run` if it still runs (its command line names the container). */
async function oneShotPid(id: string, sandboxDir: string): Promise<number | undefined> {
  const text = await readFile(join(sandboxDir, RUN_PID_FILE), "utf8").catch(
    ignore("no pid file: no one-shot run of this id is running"),
  );
  const pid = Number(text ?? "");
  if (!Number.isInteger(pid) || pid <= 0 || !pidAlive(pid)) return undefined;
  // The pid may have been reused since: it is the run's only if its command line names it.
  const cmd = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(
    ignore("the process ended meanwhile: nothing to end"),
  );
  return cmd?.split("\0").includes(containerId(id)) ? pid : undefined;
}

/**
 * A killed `runsc run` leaves its lock and socket in the runsc root (with no state file,
 * `runsc delete` cannot remove them): removed here, so the root lists only live sandboxes.
 */
async function removeRunFiles(root: string, cid: string): Promise<void> {
  for (const f of [`${cid}_sandbox:${cid}.lock`, `${cid}_sandbox:${cid}.state`, `runsc-${cid}.sock`])
    await rm(join(root, f), { force: true });
}

/** Ends a one-shot run another process started (vm_delete of a run; a dead owner's run). */
async function endOneShot(id: string, sandboxDir: string): Promise<boolean> {
  const pid = await oneShotPid(id, sandboxDir);
  if (pid === undefined) return false;
  try {
    process.kill(pid, "SIGKILL");
  } catch (e) {
    noted("killing the one-shot's runsc run: it ended meanwhile", e);
  }
  // Its sandbox and gofer go with it (~0.3 s); bounded, the checks that follow say the rest.
  const deadline = Date.now() + 5_000;
  while (pidAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  return true;
}

/**
 * Whether the kernel's OOM killer fired in the sandbox's memory cgroup (runsc names it after
 * the container): how an out-of-memory death is told from other ones. cgroup v1 and v2.
 */

/** The request's output callbacks as runsc options (no copy when there are none). */
function streamTo(req: ExecRequest) {
  const { onStdout, onStderr } = req;
  return { ...(onStdout ? { onStdout } : {}), ...(onStderr ? { onStderr } : {}) };
}

/** runsc's own error line (restore prints a Go stack after it). */
function firstLine(s: string): string {
  return (
    s
      .trim()
      .split("\n")
      .find((l) => l.trim() && !l.startsWith(" ") && !l.startsWith("\t")) ?? "(no output)"
  ).slice(0, 400);
}

function lastLines(s: string, n = 3): string {
  return s.trim().split("\n").slice(-n).join(" | ").slice(0, 600) || "(no output)";
}

/** argv without the shell exec wrapper (the sandbox init does its job). */
/** Whether these flags take gVisor's netstack (net-route.ts) for the sandbox's network. */
function isNetstack(flags: RunscFlags): boolean {
  return flags.global.includes("--network=sandbox");
}

/** The namespace `run` is started in: only the host-stack route's (see inNetns). */
function hostStackNs<T>(flags: RunscFlags, mount: T | undefined): T | undefined {
  return isNetstack(flags) ? undefined : mount;
}

/** runsc's --network value for a sandbox with network on this route. */
function runscNetworkFor(route: NetRoute): "sandbox" | "host" {
  return route === "netstack" ? "sandbox" : "host";
}

/**
 * What the probe says of the network route (doctor's `networking.route`): as root only, since
 * without root gVisor sandboxes get no network (flagsFor refuses it).
 */
function networkRouteExtra(version: string, env: NodeJS.ProcessEnv): { network_route?: NetRoute } {
  if (runscRootless()) return {};
  try {
    return { network_route: netRouteFor(version, env) };
  } catch (e) {
    // A bad PYRO_GVISOR_NET_ROUTE: every create with network says so; the probe reports no route.
    noted("PYRO_GVISOR_NET_ROUTE is not a route: the probe reports none", e);
    return {};
  }
}

function unwrapExecWrapper(argv: string[]): string[] {
  if (argv.length <= EXEC_WRAPPER.length || !EXEC_WRAPPER.every((a, i) => argv[i] === a)) return argv;
  return argv.slice(EXEC_WRAPPER.length);
}

/**
 * A runsc command started inside the sandbox's network namespace, so that the sandbox (and
 * its gofer) inherit it: with --network=host their network is that namespace's, not the
 * host's. Only `run` needs it; exec, kill and delete talk to the running sandbox. With
 * --network=sandbox the OCI spec names the namespace instead (bundle.ts), and runsc joins it.
 */
function inNetns(
  mount: { nsPath: string; enter?: string[] } | undefined,
  binary: string,
  args: string[],
): [string, string[]] {
  // Without root, pasta's namespace is entered with its user namespace (rootless-net.ts).
  if (mount?.enter?.[0]) return [mount.enter[0], [...mount.enter.slice(1), binary, ...args]];
  return mount ? ["nsenter", [`--net=${mount.nsPath}`, "--", binary, ...args]] : [binary, args];
}
