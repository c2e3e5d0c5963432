import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { PyroError } from "../../errors.js";
import { EXEC_WRAPPER } from "../../runtime/command.js";
import { runToLog } from "../../util/proc.js";
import { execOutcome } from "../outcome.js";
import { runProbeCommand } from "../probe-run.js";
import type {
  Engine,
  ExecOutcome,
  ExecRequest,
  OneShotOutcome,
  ProbeOptions,
  ProbeResult,
  SandboxHandle,
  SandboxInspect,
  SandboxSpec,
} from "../types.js";
import { buildOciConfig, guestEnv } from "./bundle.js";
import {
  findRunsc,
  globalFlags,
  pidAlive,
  type RunscFlags,
  runsc,
  runscState,
  runscVersion,
} from "./runsc.js";

const MIN_RUNSC_DATE = 20240729;
const SETUP_HINT = "run `sudo scripts/setup-host.sh` (installs Debian trixie's runsc), or set PYRO_RUNSC";

/** Container names carry a prefix so `runsc list` shows which sandboxes are pyro's. */
export function containerId(id: string): string {
  return `pyro-${id}`;
}

function runscDate(version: string): number | undefined {
  const m = /(?:release-|0\.0~)(\d{8})/.exec(version);
  return m ? Number(m[1]) : undefined;
}

export class GvisorEngine implements Engine {
  readonly name = "gvisor" as const;
  readonly executionMode = "gvisor" as const;

  constructor(
    private readonly runscRoot: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  private async flagsFor(network: boolean): Promise<RunscFlags> {
    const binary = await findRunsc(this.env);
    if (!binary) throw new PyroError("engine_unavailable", "runsc (gVisor) is not installed", SETUP_HINT);
    await mkdir(this.runscRoot, { recursive: true, mode: 0o700 });
    return { binary, global: globalFlags(this.runscRoot, network, this.env) };
  }

  private handleFlags(handle: SandboxHandle): RunscFlags {
    const f = handle.data.flags as RunscFlags | undefined;
    if (!f || typeof f.binary !== "string" || !Array.isArray(f.global)) {
      throw new PyroError("invalid_state", `sandbox ${handle.id} has no runsc flags recorded`);
    }
    return f;
  }

  async probe(opts: ProbeOptions): Promise<ProbeResult> {
    const caps = { vm_boot: false, guest_exec: false, guest_network: false };
    const binary = await findRunsc(this.env);
    if (!binary)
      return {
        engine: this.name,
        available: false,
        detail: `runsc not found; ${SETUP_HINT}`,
        capabilities: caps,
      };
    const version = (await runscVersion(binary)) ?? "unknown";
    const date = runscDate(version);
    if (date !== undefined && date < MIN_RUNSC_DATE) {
      return {
        engine: this.name,
        available: false,
        detail: `${binary} is ${version}, older than ${MIN_RUNSC_DATE} (fails statx on directories); ${SETUP_HINT}`,
        capabilities: caps,
        extra: { binary, version },
      };
    }
    if (!opts.rootfs) {
      return {
        engine: this.name,
        available: true,
        detail: `${binary} (${version}) found; not test-run because no environment is installed yet`,
        capabilities: { vm_boot: false, guest_exec: false, guest_network: true },
        extra: { binary, version, tested: false },
      };
    }
    const probe = await runProbeCommand(this, {
      rootfs: opts.rootfs,
      scratchDir: opts.scratchDir,
      memMib: 256,
      timeoutMs: opts.deadlineMs ?? 20_000,
    });
    if (probe.error !== undefined) {
      return {
        engine: this.name,
        available: false,
        detail: `test sandbox failed: ${probe.error}`,
        capabilities: caps,
      };
    }
    const r = probe.outcome;
    return {
      engine: this.name,
      available: probe.ok,
      detail: probe.ok
        ? `${version}: a sandbox ran a command in ${r.execMs} ms`
        : `${version}: test sandbox failed (exit ${r.exitCode}${r.timedOut ? ", timed out" : ""}): ${(r.stderr || r.stdout).trim().slice(0, 300)}`,
      probeMs: r.execMs,
      capabilities: probe.ok ? { vm_boot: true, guest_exec: true, guest_network: true } : caps,
      extra: { binary, version, tested: true },
    };
  }

  async create(spec: SandboxSpec): Promise<SandboxHandle> {
    const flags = await this.flagsFor(spec.network);
    const bundle = join(spec.sandboxDir, "bundle");
    await mkdir(bundle, { recursive: true });
    // The init idles; commands arrive later with `runsc exec`. Its stdio is /dev/null so no
    // pipe of ours is held open by the long-lived sandbox.
    const config = buildOciConfig(spec, { args: ["/bin/sleep", "infinity"], cwd: "/" });
    await writeFile(join(bundle, "config.json"), JSON.stringify(config));
    const cid = containerId(spec.id);
    const handle: SandboxHandle = {
      engine: this.name,
      id: spec.id,
      sandboxDir: spec.sandboxDir,
      ...(spec.workspaceDir ? { workspaceDir: spec.workspaceDir } : {}),
      data: { flags, containerId: cid },
    };
    const created = await runToLog(
      flags.binary,
      [...flags.global, "create", "--bundle", bundle, cid],
      join(spec.sandboxDir, "create.log"),
      {
        timeoutMs: 60_000,
      },
    );
    if (created.exitCode !== 0) {
      await this.destroy(handle);
      throw new PyroError("engine_failure", `runsc create failed: ${lastLines(created.output)}`);
    }
    const started = await runsc(flags, ["start", cid], { timeoutMs: 60_000 });
    if (started.exitCode !== 0) {
      await this.destroy(handle);
      throw new PyroError("engine_failure", `runsc start failed: ${lastLines(started.stderr)}`);
    }
    const st = await runscState(flags, cid);
    if (st?.pid) handle.data.pid = st.pid;
    return handle;
  }

  async exec(handle: SandboxHandle, req: ExecRequest, viaWrapper = false): Promise<ExecOutcome> {
    const flags = this.handleFlags(handle);
    const cid = String(handle.data.containerId);
    await this.assertRunning(handle);
    // The `sh -c 'exec "$@"'` wrapper (runtime/command.ts) is there to turn a missing program
    // into exit 127. Under gVisor it costs a fork+exec, ~15 ms of a ~35 ms exec, so the
    // program runs directly; only when runsc says it could not start it (then nothing ran)
    // is it run again through the wrapper, for the shell's exact 127/126 and message.
    const direct = viaWrapper ? undefined : withoutExecWrapper(req.argv);
    const pidFile = join(
      handle.sandboxDir,
      `exec-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}.pid`,
    );
    const args = ["exec", "--internal-pid-file", pidFile, "--cwd", req.cwd ?? "/"];
    for (const kv of guestEnv(req.env)) args.push("--env", kv);
    if (req.user) args.push("--user", `${req.user.uid}:${req.user.gid}`);
    args.push(cid, ...(direct ?? req.argv));
    const r = await runsc(flags, args, {
      timeoutMs: req.timeoutMs,
      maxOutputBytes: req.maxOutputBytes,
      signal: req.signal,
      // runsc exec makes the command a session leader inside the sandbox: killing its
      // process group ends the whole tree it started.
      onKill: async () => {
        const pid = Number((await readFile(pidFile, "utf8").catch(() => "")).trim());
        if (pid > 0) {
          await runsc(
            flags,
            [
              "exec",
              cid,
              "/bin/sh",
              "-c",
              `kill -KILL -${pid} 2>/dev/null; kill -KILL ${pid} 2>/dev/null; true`,
            ],
            {
              timeoutMs: 10_000,
            },
          );
        }
      },
    });
    await rm(pidFile, { force: true });
    if (r.aborted) throw new PyroError("cancelled", "command cancelled; its processes were killed");
    if (direct && !r.timedOut && programDidNotStart(r)) return this.exec(handle, req, true);
    if (
      !r.timedOut &&
      r.exitCode !== 0 &&
      r.exitCode !== null &&
      (await this.inspect(handle)).state !== "running"
    ) {
      throw new PyroError(
        "sandbox_dead",
        `sandbox ${handle.id} stopped while the command ran`,
        "delete it and create a new one",
      );
    }
    return execOutcome(r);
  }

  async putArchive(handle: SandboxHandle, tar: Readable, dest: string): Promise<void> {
    const flags = this.handleFlags(handle);
    const cid = String(handle.data.containerId);
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
    await runsc(flags, ["kill", String(handle.data.containerId), "KILL"], { timeoutMs: 10_000 });
  }

  async destroy(handle: SandboxHandle): Promise<void> {
    const flags = handle.data.flags as RunscFlags | undefined;
    if (flags) {
      const cid = String(handle.data.containerId);
      await runsc(flags, ["kill", cid, "KILL"], { timeoutMs: 10_000 }).catch(() => undefined);
      const r = await runsc(flags, ["delete", "--force", cid], { timeoutMs: 30_000 }).catch(() => undefined);
      if (r && r.exitCode !== 0 && (await runscState(flags, cid))) {
        throw new PyroError("engine_failure", `runsc delete ${cid} failed: ${lastLines(r.stderr)}`);
      }
    }
    await rm(handle.sandboxDir, { recursive: true, force: true });
  }

  async inspect(handle: SandboxHandle): Promise<SandboxInspect> {
    // Fast path, no runsc process: the sandbox pid recorded at create is alive.
    const pid = handle.data.pid;
    if (typeof pid === "number" && pidAlive(pid)) return { state: "running", pid };
    const flags = this.handleFlags(handle);
    const st = await runscState(flags, String(handle.data.containerId));
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
      throw new PyroError(
        "sandbox_dead",
        `sandbox ${handle.id} is not running: ${i.reason ?? i.state}`,
        "delete it and create a new one",
      );
    }
  }

  async removeOrphan(id: string): Promise<void> {
    const binary = await findRunsc(this.env);
    if (!binary) return;
    // The run's network setting is not recorded, and the flags must match the ones it used.
    for (const network of [false, true]) {
      const flags = { binary, global: globalFlags(this.runscRoot, network, this.env) };
      if (await runscState(flags, containerId(id))) {
        await runsc(flags, ["delete", "--force", containerId(id)], { timeoutMs: 30_000 });
        return;
      }
    }
  }

  async runOnce(spec: SandboxSpec, req: ExecRequest, viaWrapper = false): Promise<OneShotOutcome> {
    const prepStart = performance.now();
    // As in exec: run the program directly; only if it could not be started, run it again
    // (in a new sandbox: nothing ran) through the shell wrapper for the exact 127/126.
    const direct = viaWrapper ? undefined : withoutExecWrapper(req.argv);
    let retryViaWrapper = false;
    const flags = await this.flagsFor(spec.network);
    const bundle = join(spec.sandboxDir, "bundle");
    await mkdir(bundle, { recursive: true });
    const cid = containerId(spec.id);
    const config = buildOciConfig(spec, {
      args: direct ?? req.argv,
      cwd: req.cwd ?? "/",
      ...(req.env ? { env: req.env } : {}),
    });
    await writeFile(join(bundle, "config.json"), JSON.stringify(config));
    const bootMs = Math.round(performance.now() - prepStart);
    let cleanExit = false;
    try {
      // `runsc run` starts the sandbox with the command as its init and tears it down on
      // exit; the command's stdio is our pipes. Killing the init ends the sandbox.
      const r = await runsc(flags, ["run", "--bundle", bundle, cid], {
        timeoutMs: req.timeoutMs,
        maxOutputBytes: req.maxOutputBytes,
        signal: req.signal,
        onKill: async () => {
          await runsc(flags, ["kill", cid, "KILL"], { timeoutMs: 10_000 }).catch(() => undefined);
        },
        // Once its sandbox is killed, `runsc run` reaps it and deletes the container itself,
        // much faster than a later `runsc delete` (which waits on PID 1 to reap here).
        killGraceMs: 3_000,
      });
      cleanExit = !r.timedOut && !r.aborted;
      if (r.aborted) throw new PyroError("cancelled", "run cancelled; the sandbox was removed");
      if (
        direct &&
        r.exitCode === 128 &&
        /starting sandbox: .*(error finding executable|failed to load)/.test(r.stderr)
      ) {
        retryViaWrapper = true;
        cleanExit = false;
      } else if (
        r.exitCode !== 0 &&
        !r.timedOut &&
        /^running container: |creating container: |starting container: /m.test(r.stderr)
      ) {
        throw new PyroError("engine_failure", `runsc could not start the sandbox: ${lastLines(r.stderr)}`);
      }
      if (!retryViaWrapper) return { ...execOutcome(r), bootMs };
    } finally {
      // `runsc run` removes its container on a normal exit; after a kill it may not have.
      if (!cleanExit && (await runscState(flags, cid)))
        await runsc(flags, ["delete", "--force", cid], { timeoutMs: 30_000 }).catch(() => undefined);
      await rm(spec.sandboxDir, { recursive: true, force: true });
    }
    return this.runOnce(spec, req, true);
  }
}

function lastLines(s: string, n = 3): string {
  return s.trim().split("\n").slice(-n).join(" | ").slice(0, 600) || "(no output)";
}

/** argv without the shell exec wrapper, or undefined when it has none. */
function withoutExecWrapper(argv: string[]): string[] | undefined {
  if (argv.length <= EXEC_WRAPPER.length || !EXEC_WRAPPER.every((a, i) => argv[i] === a)) return undefined;
  return argv.slice(EXEC_WRAPPER.length);
}

/**
 * runsc's ways of saying the program could not be started: exit 128 with "executing
 * command … failed to load / error finding executable", or (for an absolute path) dying of
 * SIGPIPE without a word. A program that ran reports its own status instead.
 */
function programDidNotStart(r: {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}): boolean {
  if (r.signal === "SIGPIPE" && r.stdout === "" && r.stderr === "") return true;
  return r.exitCode === 128 && /executing processes for container: executing command/.test(r.stderr);
}
