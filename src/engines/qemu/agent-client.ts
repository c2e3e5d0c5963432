import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import { type Duplex, Readable } from "node:stream";
import { PyroError } from "../../core/errors.js";
import { ignore } from "../../util/best-effort.js";
import { DEFAULT_MAX_OUTPUT_BYTES } from "../../util/proc.js";
import type { ExecOutcome, ExecRequest } from "../types.js";
import {
  encodeExec,
  encodeFrame,
  encodeHello,
  encodePut,
  type Frame,
  FrameDecoder,
  HELLO_F_ONESHOT,
  KILL,
  parseExit,
  parseHelloOk,
  STDIN_CHUNK,
  STDIN_EOF,
  T,
} from "./protocol.js";

/** What one command (or put-archive) produced, as the agent reported it. */
export interface AgentResult {
  exitCode: number;
  stdout: Buffer;
  stderr: Buffer;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  timedOut: boolean;
  /** Killed on our request (cancel) or because the host gave up waiting. */
  killed: boolean;
  durationMs: number;
}

class Capped {
  private chunks: Buffer[] = [];
  size = 0;
  truncated = false;
  constructor(private readonly max: number) {}
  push(b: Buffer): void {
    const room = this.max - this.size;
    if (b.length > room) this.truncated = true;
    if (room <= 0) return;
    const take = b.length > room ? b.subarray(0, room) : b;
    this.chunks.push(take);
    this.size += take.length;
  }
  buffer(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** The agent's per-stream cap when output is streamed: the largest its u32 field holds. */
export const STREAMED_MAX_OUTPUT = 0xffffffff;

export interface RunOptions {
  stdin?: Readable;
  signal?: AbortSignal;
  /** Each STDOUT/STDERR frame's bytes as they arrive, beyond the in-memory cap too. */
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface OpenOptions {
  deadlineMs: number;
  /** Polled while waiting: false ends the wait early (the VM process died). */
  alive?: () => boolean;
  signal?: AbortSignal;
  /** A one-shot VM: the guest shuts down if this host goes away and does not come back. */
  oneshot?: boolean;
}

/**
 * One session with the guest agent over QEMU's virtio-serial chardev socket. QEMU serves one
 * client at a time, so a second session waits (in the socket backlog) until the first closes.
 * A session starts with HELLO (nonce, wall clock, fresh entropy for the guest's RNG, which
 * matters after a snapshot restore) and is ready when the agent echoes the nonce.
 */
export class AgentSession {
  private readonly decoder = new FrameDecoder();
  private waiters: ((f: Frame | Error) => void)[] = [];
  private queue: Frame[] = [];
  private closedError: Error | undefined;
  version = "";

  private constructor(private readonly sock: Duplex) {
    sock.on("data", (chunk: Buffer) => {
      for (const f of this.decoder.push(chunk)) this.deliver(f);
    });
    sock.resume();
    const onEnd = (e?: Error) => {
      if (this.closedError) return;
      this.closedError = e ?? new Error("the guest agent closed the connection");
      for (const w of this.waiters.splice(0)) w(this.closedError);
    };
    sock.on("error", (e) => onEnd(e));
    sock.on("close", () => onEnd());
  }

  private deliver(f: Frame): void {
    const w = this.waiters.shift();
    if (w) w(f);
    else this.queue.push(f);
  }

  /** Next frame, or an Error when the connection ends or `ms` passes. */
  private next(ms: number): Promise<Frame | Error> {
    const q = this.queue.shift();
    if (q) return Promise.resolve(q);
    if (this.closedError) return Promise.resolve(this.closedError);
    return new Promise((resolve) => {
      const timer = setTimeout(
        () => {
          const i = this.waiters.indexOf(done);
          if (i >= 0) this.waiters.splice(i, 1);
          resolve(new Error("timeout"));
        },
        Math.max(0, ms),
      );
      const done = (f: Frame | Error) => {
        clearTimeout(timer);
        resolve(f);
      };
      this.waiters.push(done);
    });
  }

  private write(b: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.closedError) {
        reject(this.closedError);
        return;
      }
      this.sock.write(b, (e) => (e ? reject(e) : resolve()));
    });
  }

  static async open(path: string, opts: OpenOptions): Promise<AgentSession> {
    const deadline = Date.now() + opts.deadlineMs;
    let sock: Socket | undefined;
    let lastErr = "";
    while (!sock) {
      opts.signal?.throwIfAborted();
      if (opts.alive && !opts.alive())
        throw new PyroError("sandbox_dead", "the VM process exited before its agent answered");
      try {
        sock = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path);
          s.once("connect", () => {
            s.removeAllListeners("error");
            resolve(s);
          });
          s.once("error", reject);
        });
      } catch (e) {
        lastErr = (e as Error).message;
        if (Date.now() > deadline)
          throw new PyroError("timeout", `cannot connect to the guest agent socket ${path}: ${lastErr}`);
        await sleep(30);
      }
    }
    return AgentSession.attach(sock, { ...opts, deadlineMs: Math.max(1, deadline - Date.now()) });
  }

  /** Starts a session over an already connected stream (tests run the agent with `--fd`). */
  static async attach(sock: Duplex, opts: OpenOptions): Promise<AgentSession> {
    const session = new AgentSession(sock);
    try {
      await session.hello(Date.now() + opts.deadlineMs, opts);
    } catch (e) {
      session.close();
      throw e;
    }
    return session;
  }

  private async hello(deadline: number, opts: OpenOptions): Promise<void> {
    const nonces: Buffer[] = [];
    let resendAt = 0;
    for (;;) {
      opts.signal?.throwIfAborted();
      const now = Date.now();
      if (now > deadline)
        throw new PyroError("timeout", "the guest agent did not answer before the deadline");
      if (opts.alive && !opts.alive())
        throw new PyroError("sandbox_dead", "the VM process exited before its agent answered");
      if (now >= resendAt) {
        // Resent while the guest is still booting: the first HELLOs may wait in buffers.
        const nonce = randomBytes(8);
        nonces.push(nonce);
        await this.write(encodeHello(nonce, new Date(), randomBytes(64), opts.oneshot ? HELLO_F_ONESHOT : 0));
        resendAt = now + 1000;
      }
      const f = await this.next(Math.min(200, Math.max(1, deadline - Date.now())));
      if (f instanceof Error) {
        if (f.message === "timeout") continue;
        throw new PyroError("sandbox_dead", `guest agent connection failed: ${f.message}`);
      }
      if (f.type !== T.HELLO_OK) continue; // stale output of an earlier session
      const ok = parseHelloOk(f.payload);
      if (nonces.some((n) => n.equals(ok.nonce))) {
        this.version = ok.version;
        // Replies to HELLOs sent before this one are still on their way: drop them on sight.
        return;
      }
    }
  }

  close(): void {
    this.sock.destroy();
  }

  exec(
    req: {
      argv: readonly string[];
      env?: Record<string, string>;
      cwd?: string;
      timeoutMs: number;
      maxOutputBytes: number;
    },
    opts: RunOptions = {},
  ): Promise<AgentResult> {
    // Streamed output must not stop at the in-memory cap: the agent then forwards all of it
    // (it drops what lies beyond the cap in its EXEC frame) and only our buffers are capped.
    const streamed = opts.onStdout !== undefined || opts.onStderr !== undefined;
    return this.run(
      encodeExec({
        ...req,
        maxOutputBytes: streamed ? STREAMED_MAX_OUTPUT : req.maxOutputBytes,
        stdin: opts.stdin !== undefined,
      }),
      req.timeoutMs,
      req.maxOutputBytes,
      opts,
    );
  }

  putArchive(dest: string, tar: Readable, timeoutMs: number): Promise<AgentResult> {
    return this.run(encodePut(dest, timeoutMs), timeoutMs, 64 * 1024, { stdin: tar });
  }

  private async run(
    request: Buffer,
    timeoutMs: number,
    maxOutputBytes: number,
    opts: RunOptions,
  ): Promise<AgentResult> {
    const out = new Capped(maxOutputBytes);
    const err = new Capped(maxOutputBytes);
    let finished = false;
    let killSent = false;
    const sendKill = () => {
      if (killSent || finished) return;
      killSent = true;
      this.write(KILL()).catch(
        ignore("sending KILL to the guest agent: the connection may be closed already"),
      );
    };
    await this.write(request);
    const feeding = opts.stdin ? this.feed(opts.stdin, () => finished) : Promise.resolve();
    feeding.catch(
      ignore("a failed stdin feed is awaited in finally; this only keeps it from being unhandled"),
    );
    const onAbort = () => sendKill();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    if (opts.signal?.aborted) sendKill();
    // The agent enforces the timeout itself; the host waits a grace period longer, then
    // asks for a kill, then gives up on the session.
    const graceAt = Date.now() + timeoutMs + 10_000;
    let giveUpAt = Number.POSITIVE_INFINITY;
    try {
      for (;;) {
        const now = Date.now();
        if (now >= graceAt && !killSent) {
          sendKill();
          giveUpAt = now + 5_000;
        }
        if (now >= giveUpAt) {
          return {
            exitCode: 124,
            stdout: out.buffer(),
            stderr: err.buffer(),
            stdoutTruncated: out.truncated,
            stderrTruncated: err.truncated,
            timedOut: true,
            killed: true,
            durationMs: timeoutMs,
          };
        }
        const wait = Math.min(killSent ? giveUpAt - now : graceAt - now, 1000);
        const f = await this.next(wait);
        if (f instanceof Error) {
          if (f.message === "timeout") continue;
          throw new PyroError(
            "sandbox_dead",
            `lost the guest agent connection while the command ran: ${f.message}`,
          );
        }
        switch (f.type) {
          case T.STDOUT:
            out.push(f.payload);
            opts.onStdout?.(f.payload);
            break;
          case T.STDERR:
            err.push(f.payload);
            opts.onStderr?.(f.payload);
            break;
          case T.ERROR:
            finished = true;
            throw new PyroError("engine_failure", `guest agent: ${f.payload.toString("utf8")}`);
          case T.EXIT: {
            finished = true;
            const x = parseExit(f.payload);
            return {
              exitCode: x.exitCode,
              stdout: out.buffer(),
              stderr: err.buffer(),
              stdoutTruncated: out.truncated || x.stdoutTruncated,
              stderrTruncated: err.truncated || x.stderrTruncated,
              timedOut: x.timedOut,
              killed: x.killed || killSent,
              durationMs: x.durationMs,
            };
          }
          default:
            break; // HELLO_OK replies to resent HELLOs, and anything unknown
        }
      }
    } finally {
      finished = true;
      opts.signal?.removeEventListener("abort", onAbort);
      opts.stdin?.destroy();
      await feeding.catch(ignore("feeding stdin after the command ended: the command's outcome stands"));
    }
  }

  /** Streams stdin as STDIN frames, honouring socket backpressure, then sends end-of-stdin. */
  private async feed(stdin: Readable, stop: () => boolean): Promise<void> {
    for await (const chunk of stdin) {
      if (stop()) return;
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
      for (let off = 0; off < b.length; off += STDIN_CHUNK) {
        if (stop()) return;
        const frame = encodeFrame(T.STDIN, b.subarray(off, off + STDIN_CHUNK));
        if (!this.sock.write(frame)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              this.sock.off("drain", done);
              this.sock.off("close", done);
              resolve();
            };
            this.sock.once("drain", done);
            this.sock.once("close", done);
          });
        }
      }
    }
    if (!stop()) await this.write(STDIN_EOF());
  }
}

/** An engine's exec request sent to the guest agent, which both VM engines (QEMU, Firecracker) run. */
export function agentExec(s: AgentSession, req: ExecRequest): Promise<AgentResult> {
  return s.exec(
    {
      argv: req.argv,
      ...(req.env ? { env: req.env } : {}),
      cwd: req.cwd ?? "/",
      timeoutMs: req.timeoutMs,
      maxOutputBytes: req.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES,
    },
    {
      ...(req.signal ? { signal: req.signal } : {}),
      ...(req.onStdout ? { onStdout: req.onStdout } : {}),
      ...(req.onStderr ? { onStderr: req.onStderr } : {}),
      ...(req.stdin ? { stdin: Readable.from([req.stdin]) } : {}),
    },
  );
}

/** The agent's answer as an engine outcome; a cancelled command is an error, not an exit code. */
export function agentOutcome(r: AgentResult, req: ExecRequest, t0: number): ExecOutcome {
  if (req.signal?.aborted) throw new PyroError("cancelled", "command cancelled; its processes were killed");
  return {
    exitCode: r.timedOut ? 124 : r.exitCode,
    stdout: r.stdout.toString("utf8"),
    stdoutBytes: r.stdout,
    stderr: r.stderr.toString("utf8"),
    stdoutTruncated: r.stdoutTruncated,
    stderrTruncated: r.stderrTruncated,
    timedOut: r.timedOut,
    execMs: Math.round(performance.now() - t0),
  };
}
