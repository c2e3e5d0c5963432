import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { x as untar } from "tar";
import { PyroError } from "../../core/errors.js";
import { runCapture } from "../../util/proc.js";
import { execOutcome } from "../outcome.js";
import type {
  Engine,
  EngineTraits,
  ExecOutcome,
  ExecRequest,
  OneShotOutcome,
  ProbeResult,
  SandboxHandle,
  SandboxInspect,
  SandboxSpec,
} from "../types.js";
import { NO_TRAITS } from "../types.js";
import { type HostHandleData, hostData } from "./handle.js";

/**
 * No isolation at all: commands run as host processes. Only reachable with
 * --allow-host-compat, and every result says `execution_mode: host_compat`. Guest paths
 * are mapped onto the sandbox's host directories: `/workspace` is the workspace's host
 * directory, and `/` is a scratch directory (the host's real root is never the target).
 */
export class HostEngine implements Engine {
  readonly name = "host" as const;
  readonly executionMode = "host_compat" as const;
  readonly traits: EngineTraits = { ...NO_TRAITS, sharedWorkspaceDir: true };

  async probe(): Promise<ProbeResult> {
    return {
      engine: this.name,
      available: true,
      detail: "always available, with NO isolation; used only with --allow-host-compat",
      capabilities: { vm_boot: false, guest_exec: true, guest_network: true },
    };
  }

  private hostPath(handle: { sandboxDir: string; workspaceDir?: string }, guestPath: string): string {
    if (handle.workspaceDir && (guestPath === "/workspace" || guestPath.startsWith("/workspace/"))) {
      return join(handle.workspaceDir, guestPath.slice("/workspace".length));
    }
    return join(handle.sandboxDir, "root", guestPath);
  }

  async create(spec: SandboxSpec): Promise<SandboxHandle> {
    await mkdir(join(spec.sandboxDir, "root"), { recursive: true });
    return {
      engine: this.name,
      id: spec.id,
      sandboxDir: spec.sandboxDir,
      ...(spec.workspaceDir ? { workspaceDir: spec.workspaceDir } : {}),
      data: { running: true } satisfies HostHandleData,
    };
  }

  exec(handle: SandboxHandle, req: ExecRequest): Promise<ExecOutcome> {
    return this.execIn(handle, req, false);
  }

  /** `oneShot`: nothing the command started may outlive it (a workspace's background jobs may). */
  private async execIn(handle: SandboxHandle, req: ExecRequest, oneShot: boolean): Promise<ExecOutcome> {
    const cwd = this.hostPath(handle, req.cwd ?? "/");
    await mkdir(cwd, { recursive: true });
    const [file, ...args] = req.argv;
    if (!file) throw new PyroError("invalid_argument", "empty command");
    const env = {
      ...process.env,
      ...req.env,
      PYRO_HOST_COMPAT: "1",
      ...(handle.workspaceDir ? { PYRO_WORKSPACE: handle.workspaceDir } : {}),
    };
    try {
      const r = await runCapture(file, args, {
        cwd,
        env,
        timeoutMs: req.timeoutMs,
        maxOutputBytes: req.maxOutputBytes,
        signal: req.signal,
        ...(req.onStdout ? { onStdout: req.onStdout } : {}),
        ...(req.onStderr ? { onStderr: req.onStderr } : {}),
        ...(req.stdin ? { stdin: req.stdin } : {}),
        killGroup: true,
        killGroupOnExit: oneShot,
      });
      if (r.aborted) throw new PyroError("cancelled", "command cancelled; its processes were killed");
      return execOutcome(r);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") {
        return {
          exitCode: 127,
          stdout: "",
          stderr: `${file}: command not found\n`,
          stdoutTruncated: false,
          stderrTruncated: false,
          timedOut: false,
          execMs: 0,
        };
      }
      throw e;
    }
  }

  async putArchive(handle: SandboxHandle, tar: Readable, dest: string): Promise<void> {
    const target = this.hostPath(handle, dest);
    await mkdir(target, { recursive: true });
    await new Promise<void>((resolve, reject) => {
      const sink = untar({ cwd: target, strict: true, preservePaths: false, noChmod: false });
      sink.on("error", reject);
      sink.on("finish", () => resolve());
      tar.on("error", reject);
      tar.pipe(sink);
    });
  }

  async stop(handle: SandboxHandle): Promise<void> {
    handle.data = { running: false } satisfies HostHandleData;
  }

  // Host-compat commands are children of the pyro process that ran them and die with its
  // process group; there is no sandbox to find afterwards.
  async orphanAlive(_id: string, _sandboxDir: string): Promise<boolean> {
    return false;
  }

  async removeOrphan(_id: string, _sandboxDir: string): Promise<void> {}

  async destroy(handle: SandboxHandle): Promise<void> {
    await rm(handle.sandboxDir, { recursive: true, force: true });
  }

  async inspect(handle: SandboxHandle): Promise<SandboxInspect> {
    return hostData(handle).running ? { state: "running" } : { state: "stopped", reason: "stopped" };
  }

  async runOnce(spec: SandboxSpec, req: ExecRequest): Promise<OneShotOutcome> {
    const t0 = performance.now();
    const handle = await this.create(spec);
    const bootMs = Math.round(performance.now() - t0);
    try {
      return { ...(await this.execIn(handle, req, true)), bootMs };
    } finally {
      await this.destroy(handle);
    }
  }
}
