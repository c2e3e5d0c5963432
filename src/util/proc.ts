import { type ChildProcess, spawn } from "node:child_process";
import { constants, readFileSync } from "node:fs";
import { access, open, readFile } from "node:fs/promises";
import type { Readable } from "node:stream";
import { noted } from "./best-effort.js";

/**
 * The whole environment of the sandbox processes pyro starts (runsc and, through it, the
 * gofer and sandbox; QEMU and its watchdog). They outlive the call, and /proc/PID/environ
 * keeps what they were given; pyro's own environment may hold a secret's value
 * (`--secret-env NAME=VAR` reads VAR from it) or the operator's credentials. So they get a
 * new environment with only PATH (runsc finds nsenter, and re-executes itself, by path),
 * never a filtered copy of pyro's, which would pass on whatever a filter did not know.
 */
export function sandboxProcessEnv(from: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { PATH: from.PATH || "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" };
}

/** Output beyond this many bytes per stream is drained and dropped, and flagged as truncated. */
export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024;

/** How long output is still read after the child exited while something else holds its pipes. */
export const EXIT_DRAIN_MS = 250;

export interface CaptureOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Bytes or a stream for the child's stdin; stdin is /dev/null when absent. */
  stdin?: Buffer | string | Readable;
  timeoutMs?: number;
  maxOutputBytes?: number;
  signal?: AbortSignal;
  /**
   * Called once on timeout or abort, before the child is killed; used to kill what the child
   * started. Returning false (or throwing) says it could not: killGraceMs is then skipped.
   */
  onKill?: (reason: "timeout" | "abort") => unknown;
  /** Called with the child's pid once it is spawned (so another process can find and end it). */
  onSpawn?: (pid: number) => void;
  /** After onKill, give the child this long to exit by itself (and clean up) before SIGKILL. */
  killGraceMs?: number;
  /**
   * Called with every chunk of the child's output as it arrives, including what lies beyond
   * maxOutputBytes (the result's strings stay capped; the callbacks see everything).
   */
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** Kill the child's whole process group (it is started detached). */
  killGroup?: boolean;
  /** With killGroup: also kill what is left of the group once the child exits (background jobs). */
  killGroupOnExit?: boolean;
}

export interface CaptureResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  timedOut: boolean;
  aborted: boolean;
  durationMs: number;
  /** stdout as bytes (binary-safe; `stdout` is its UTF-8 decoding). */
  stdoutBytes?: Buffer;
}

export class CappedBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  truncated = false;
  constructor(private readonly max: number) {}
  push(chunk: Buffer): void {
    const room = this.max - this.size;
    if (room <= 0) {
      if (chunk.length > 0) this.truncated = true;
      return;
    }
    if (chunk.length > room) {
      this.chunks.push(chunk.subarray(0, room));
      this.size += room;
      this.truncated = true;
    } else {
      this.chunks.push(chunk);
      this.size += chunk.length;
    }
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
  text(): string {
    const buf = Buffer.concat(this.chunks);
    // A cut at the cap can split a UTF-8 character; drop the partial one rather than let
    // it decode to U+FFFD.
    return (this.truncated ? buf.subarray(0, utf8CompleteLength(buf)) : buf).toString("utf8");
  }
}

/** A CaptureResult's output fields, from its two streams' buffers. */
export function capturedOutput(out: CappedBuffer, err: CappedBuffer) {
  return {
    stdout: out.text(),
    stdoutBytes: out.bytes(),
    stderr: err.text(),
    stdoutTruncated: out.truncated,
    stderrTruncated: err.truncated,
  };
}

/** Length of `buf` without a trailing, incomplete UTF-8 sequence. */
export function utf8CompleteLength(buf: Uint8Array): number {
  const n = buf.length;
  for (let back = 1; back <= Math.min(4, n); back++) {
    const b = buf[n - back]!;
    if ((b & 0xc0) === 0x80) continue; // continuation byte: keep looking for the lead
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > back ? n - back : n;
  }
  return n;
}

/**
 * Runs a program and captures stdout/stderr separately with a size cap, so a guest that
 * prints 100 MB costs a bounded amount of memory. Never rejects for a non-zero exit.
 */
export function runCapture(
  file: string,
  args: readonly string[],
  opts: CaptureOptions = {},
): Promise<CaptureResult> {
  const started = performance.now();
  const max = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn(file, args, {
        env: opts.env ?? process.env,
        cwd: opts.cwd,
        stdio: [opts.stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"],
        detached: opts.killGroup === true,
      });
    } catch (e) {
      reject(e);
      return;
    }
    if (child.pid !== undefined) opts.onSpawn?.(child.pid);
    const out = new CappedBuffer(max);
    const err = new CappedBuffer(max);
    child.stdout?.on("data", (c: Buffer) => {
      out.push(c);
      opts.onStdout?.(c);
    });
    child.stderr?.on("data", (c: Buffer) => {
      err.push(c);
      opts.onStderr?.(c);
    });
    let timedOut = false;
    let aborted = false;
    let killing: Promise<void> | undefined;

    const kill = (reason: "timeout" | "abort") => {
      if (killing) return;
      if (reason === "timeout") timedOut = true;
      else aborted = true;
      killing = (async () => {
        let stopping = true;
        try {
          stopping = (await opts.onKill?.(reason)) !== false;
        } catch (e) {
          stopping = false;
          noted("onKill hook failed: the SIGKILL below still ends our side", e);
        }
        // A grace only helps a child the hook is stopping; otherwise it is a wait for nothing.
        if (stopping && opts.killGraceMs && child.exitCode === null && child.signalCode === null) {
          await new Promise<void>((res) => {
            const t = setTimeout(res, opts.killGraceMs);
            child.once("exit", () => {
              clearTimeout(t);
              res();
            });
          });
        }
        if (child.exitCode !== null || child.signalCode !== null) return;
        try {
          if (opts.killGroup && child.pid) process.kill(-child.pid, "SIGKILL");
          else child.kill("SIGKILL");
        } catch (e) {
          noted("SIGKILL: the process is gone already", e);
        }
      })();
    };

    const timer =
      opts.timeoutMs !== undefined ? setTimeout(() => kill("timeout"), opts.timeoutMs) : undefined;
    const onAbort = () => kill("abort");
    if (opts.signal) {
      if (opts.signal.aborted) onAbort();
      else opts.signal.addEventListener("abort", onAbort, { once: true });
    }

    if (opts.stdin !== undefined && child.stdin) {
      child.stdin.on("error", () => {
        // the child may exit before reading all of stdin (EPIPE); its exit status tells the story
      });
      if (typeof opts.stdin === "string" || Buffer.isBuffer(opts.stdin)) child.stdin.end(opts.stdin);
      else opts.stdin.pipe(child.stdin);
    }

    child.on("error", (e) => {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      reject(e);
    });
    // A descendant that outlives the child (a job a guest command left in the background,
    // e.g. `server &`) inherits our pipes and can hold them open for ever; `close` would
    // then wait for it, and a finished command would be reported as timed out. So once the
    // child itself has exited, drain briefly and stop waiting for the pipes.
    let drainTimer: NodeJS.Timeout | undefined;
    child.on("exit", () => {
      if (opts.killGroup && opts.killGroupOnExit && child.pid) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch (e) {
          noted("killing the process group on exit: nothing left in it", e);
        }
      }
      drainTimer = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
      }, EXIT_DRAIN_MS);
    });
    child.on("close", async (code, sig) => {
      if (timer) clearTimeout(timer);
      if (drainTimer) clearTimeout(drainTimer);
      opts.signal?.removeEventListener("abort", onAbort);
      if (killing) await killing;
      resolve({
        exitCode: code,
        signal: sig,
        ...capturedOutput(out, err),
        timedOut,
        aborted,
        durationMs: Math.round(performance.now() - started),
      });
    });
  });
}

/** Runs a helper program that must succeed; throws with its stderr otherwise. */
export async function runChecked(
  file: string,
  args: readonly string[],
  opts: CaptureOptions = {},
): Promise<CaptureResult> {
  const r = await runCapture(file, args, opts);
  if (r.exitCode !== 0) {
    const detail = (r.stderr || r.stdout).trim().split("\n").slice(-5).join("\n");
    throw new Error(
      `${file} ${args.slice(0, 3).join(" ")} failed (exit ${r.exitCode ?? r.signal}): ${detail}`,
    );
  }
  return r;
}

/** Finds an executable on PATH (plus sbin dirs, which non-login root shells may lack). */
export async function which(name: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  if (name.includes("/")) {
    try {
      await access(name, constants.X_OK);
      return name;
    } catch {
      return undefined;
    }
  }
  const dirs = [
    ...(env.PATH ?? "").split(":"),
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
  ];
  for (const d of dirs) {
    if (!d) continue;
    const p = `${d}/${name}`;
    try {
      await access(p, constants.X_OK);
      return p;
    } catch (e) {
      noted("not an executable in this PATH entry: try the next", e);
    }
  }
  return undefined;
}

/**
 * Runs a program whose descendants may outlive it (runsc create leaves the sandbox running
 * with the container's stdio): output goes to a log file, not a pipe we would wait on.
 */
export async function runToLog(
  file: string,
  args: readonly string[],
  logPath: string,
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<{ exitCode: number | null; output: string }> {
  const fh = await open(logPath, "w");
  try {
    const exitCode = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(file, args, { stdio: ["ignore", fh.fd, fh.fd], env: opts.env ?? process.env });
      const timer = opts.timeoutMs ? setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs) : undefined;
      child.on("error", reject);
      child.on("exit", (code) => {
        if (timer) clearTimeout(timer);
        resolve(code);
      });
    });
    return { exitCode, output: await readFile(logPath, "utf8").catch(() => "") };
  } finally {
    await fh.close();
  }
}

/**
 * Whether a process is alive. A zombie is not: it has exited and only waits to be reaped,
 * which inside containers (whose pid 1 often never reaps orphans) can be forever, so
 * `kill(pid, 0)` alone would report a sandbox killed from outside as still running.
 */
export function pidAlive(pid: number | undefined): boolean {
  if (!pid || pid <= 0 || !Number.isInteger(pid)) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ..."; comm may contain spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return true; // no procfs (or a race with its exit): trust kill(0)
  }
}
