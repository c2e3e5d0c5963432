import { chmod, copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import type { Readable } from "node:stream";
import { create as tarCreate } from "tar";
import { PyroError } from "../core/errors.js";
import { ensureStaticBinary, SANDBOX_INIT } from "../util/static-binaries.js";
import type { AttachedWorkspace } from "./port.js";
import { type OutputChunk, SupervisedDir, type SupervisorFiles } from "./supervised.js";

/**
 * Where a workspace's shells and services live, per engine. gVisor shares a host directory
 * at /.pyro/run and starts the supervisor with a runsc exec of its own (the fast path: file
 * operations on the host). QEMU shares nothing with the host: the sandbox init is copied
 * into the guest once (put-archive), the supervisor daemonizes itself (`--daemon`), and its
 * files are read and appended through the agent's exec (`init files`), one exec per call.
 */
export interface SessionHost {
  /** The sandbox init's path in the guest (for `supervise` and `probe`). */
  init: string;
  files(rel: string): SupervisorFiles;
  /** Starts the supervisor; returns once it is started (it outlives this process). */
  spawn(argv: string[], cwd: string): Promise<void>;
}

const GUEST_RUN = "/.pyro/run";
const QEMU_INIT_DIR = "/.pyro";
const QEMU_INIT = "/.pyro/pyro-sandbox-init";
/** Input per append exec: hex doubles it, and the agent's frames carry at most 1 MiB. */
const APPEND_CHUNK = 128 * 1024;

export async function sessionHost(ws: AttachedWorkspace, kind: "shells" | "services"): Promise<SessionHost> {
  const root = ws.engine.runDir?.(ws.handle);
  if (root && ws.engine.spawnDetached) {
    const spawnDetached = ws.engine.spawnDetached.bind(ws.engine);
    return {
      init: "/.pyro/init",
      files: (rel) => new SupervisedDir(root, rel),
      spawn: (argv, cwd) =>
        spawnDetached(ws.handle, { argv, cwd, env: ws.env, ...(ws.user ? { user: ws.user } : {}) }),
    };
  }
  if (ws.engine.traits.sessionsOverExec) return qemuHost(ws);
  // An engine with a run directory whose sandbox has none: made before shells existed.
  const older = ws.engine.runDir !== undefined;
  throw new PyroError(
    "engine_unavailable",
    `workspace ${ws.workspaceId} cannot run ${kind}: ${older ? "it was created by an older pyro" : `the ${ws.engine.name} engine has none`}`,
    older
      ? ["create a new workspace with ", { op: "workspace_create" }]
      : "use the gvisor or qemu engine (PYRO_ENGINE)",
  );
}

async function qemuHost(ws: AttachedWorkspace): Promise<SessionHost> {
  const run = async (argv: string[], what: string, timeoutMs = 30_000) => {
    const out: Buffer[] = [];
    const r = await ws.engine.exec(ws.handle, {
      argv,
      cwd: "/",
      timeoutMs,
      maxOutputBytes: 64 * 1024,
      onStdout: (b) => out.push(b),
    });
    if (r.exitCode !== 0)
      throw new PyroError(
        "engine_failure",
        `${what} failed in the guest (exit ${r.exitCode}): ${r.stderr.trim().slice(0, 300)}`,
      );
    return Buffer.concat(out);
  };
  // The init, copied in once per VM (the guest's disk keeps it).
  const installed = await ws.engine.exec(ws.handle, {
    argv: ["/bin/sh", "-c", `test -x ${QEMU_INIT}`],
    timeoutMs: 10_000,
  });
  if (installed.exitCode !== 0) {
    const bin = await ensureStaticBinary(SANDBOX_INIT, ws.cacheDir, ws.env);
    const staging = await mkdtemp(join(tmpdir(), "pyro-init-"));
    try {
      await copyFile(bin, join(staging, posix.basename(QEMU_INIT)));
      await chmod(join(staging, posix.basename(QEMU_INIT)), 0o755);
      const tar = tarCreate({ cwd: staging, portable: true }, [
        posix.basename(QEMU_INIT),
      ]) as unknown as Readable;
      await ws.engine.putArchive(ws.handle, tar, QEMU_INIT_DIR);
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }
  return {
    init: QEMU_INIT,
    files: (rel) => new ExecFiles(posix.join(GUEST_RUN, rel), run),
    spawn: async (argv, cwd) => {
      // `supervise --daemon`: the supervisor leaves the exec's session, so the exec returns.
      const i = argv.indexOf("supervise");
      const daemon = [...argv.slice(0, i + 1), "--daemon", ...argv.slice(i + 1)];
      const r = await ws.engine.exec(ws.handle, {
        argv: daemon,
        cwd,
        ...(Object.keys(ws.env).length ? { env: ws.env } : {}),
        timeoutMs: 30_000,
      });
      if (r.exitCode !== 0)
        throw new PyroError(
          "engine_failure",
          `the supervisor did not start (exit ${r.exitCode}): ${r.stderr.trim().slice(0, 300)}`,
        );
    },
  };
}

type Run = (argv: string[], what: string, timeoutMs?: number) => Promise<Buffer>;

/** A supervisor's directory inside a QEMU guest, through `init files` execs. */
class ExecFiles implements SupervisorFiles {
  constructor(
    readonly guest: string,
    private readonly run: Run,
  ) {}

  async prepare(user?: { uid: number; gid: number }): Promise<void> {
    const own = user ? ` && chown -R ${user.uid}:${user.gid} "$1"` : "";
    await this.run(
      [
        "/bin/sh",
        "-c",
        `rm -rf "$1" && mkdir -p "$1" && : > "$1/in" && : > "$1/ctl"${own}`,
        "sh",
        this.guest,
      ],
      "preparing the shell directory",
    );
  }
  async exists(): Promise<boolean> {
    return (
      (await this.run(["/bin/sh", "-c", 'test -d "$1" && echo yes || true', "sh", this.guest], "checking"))
        .toString()
        .trim() === "yes"
    );
  }
  async remove(): Promise<void> {
    await this.run(["/bin/sh", "-c", 'rm -rf "$1"', "sh", this.guest], "removing");
  }
  private async append(name: "in" | "ctl", data: Buffer): Promise<void> {
    for (let at = 0; at < data.length || (at === 0 && data.length === 0); at += APPEND_CHUNK) {
      const hex = data.subarray(at, at + APPEND_CHUNK).toString("hex");
      await this.run([QEMU_INIT, "files", this.guest, "append", name, hex], `writing to ${name}`);
      if (data.length === 0) break;
    }
  }
  input(data: Buffer): Promise<void> {
    return this.append("in", data);
  }
  control(line: string): Promise<void> {
    return this.append("ctl", Buffer.from(`${line}\n`));
  }
  private async header(cursor: number, max: number) {
    const out = await this.run(
      [QEMU_INIT, "files", this.guest, "read", String(cursor), String(max)],
      "reading output",
    );
    const nl = out.indexOf(0x0a);
    const m = /^(\d+) (\d+) (-?\d+) (-?\d+)$/.exec(out.subarray(0, nl).toString("latin1"));
    if (!m) throw new PyroError("engine_failure", "unreadable answer from the sandbox init (files read)");
    return {
      total: Number(m[1]),
      oldest: Number(m[2]),
      pid: Number(m[3]) >= 0 ? Number(m[3]) : undefined,
      exit: Number(m[4]) >= 0 ? Number(m[4]) : undefined,
      data: out.subarray(nl + 1),
    };
  }
  async pid(): Promise<number | undefined> {
    return (await this.header(0, 0)).pid;
  }
  async exitCode(): Promise<number | undefined> {
    return (await this.header(0, 0)).exit;
  }
  async totalBytes(): Promise<number> {
    return (await this.header(0, 0)).total;
  }
  async read(cursor: number, maxBytes: number): Promise<OutputChunk> {
    // The exec's own capture is bounded; page through it in pieces the agent carries.
    const h = await this.header(cursor, Math.min(maxBytes, 48 * 1024));
    const from = Math.min(Math.max(cursor, h.oldest), h.total);
    return {
      cursor: from,
      next_cursor: from + h.data.length,
      dropped_bytes: Math.max(0, from - cursor),
      total_bytes: h.total,
      data: h.data,
    };
  }
}
