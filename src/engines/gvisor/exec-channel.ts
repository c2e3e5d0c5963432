import { closeSync, openSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { basename, dirname } from "node:path";
import {
  CappedBuffer,
  type CaptureResult,
  capturedOutput,
  DEFAULT_MAX_OUTPUT_BYTES,
} from "../../util/proc.js";

/**
 * The host side of the sandbox init's exec channel (`init idle --listen`, guest/sandbox-init.c):
 * a command sent over a Unix socket the init created on the host through runsc's
 * `--host-uds=create`, instead of a `runsc exec` per command. `runsc exec` is a Go program
 * that starts, finds the sandbox and asks it to start the process: ~25-30 ms here, against
 * ~1-3 ms for a connection and a fork in the init.
 *
 * Same semantics as `runsc exec` under `init run`: the command leads its own session, is
 * killed with its group at the deadline, exits 127/126 when it cannot be started; output is
 * relayed as it comes. Unlike `runsc exec`, closing the connection (a timeout, a cancel, this
 * process dying) kills the command's group at once.
 *
 * Frames both ways: [type byte][u32 LE length][bytes] (see the init's header comment).
 */
export interface ChannelRequest {
  argv: string[];
  /** The whole environment, NAME=VALUE. */
  env: string[];
  cwd: string;
  user?: { uid: number; gid: number };
  /** The init kills the command's group after this long (0: never). */
  deadlineMs: number;
  stdin?: Buffer;
}

export interface ChannelOptions {
  timeoutMs?: number;
  maxOutputBytes?: number;
  signal?: AbortSignal;
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
}

/**
 * What came back: the capture, `lost` when the channel ended before the command did, and
 * `atPidsLimit` when the init saw the sandbox at its process limit while the command ran.
 */
export type ChannelResult = CaptureResult & { lost: boolean; atPidsLimit: boolean };

/** Thrown when nothing listens (yet): the caller falls back to `runsc exec`. */
export class ChannelUnavailable extends Error {}

function frame(type: string, data: Buffer | string): Buffer {
  const body = typeof data === "string" ? Buffer.from(data) : data;
  const h = Buffer.alloc(5);
  h.write(type, 0, "latin1");
  h.writeUInt32LE(body.length, 1);
  return Buffer.concat([h, body]);
}

export function encodeRequest(req: ChannelRequest): Buffer {
  const parts: Buffer[] = [];
  for (const a of req.argv) parts.push(frame("A", a));
  for (const e of req.env) parts.push(frame("E", e));
  parts.push(frame("C", req.cwd));
  if (req.user) parts.push(frame("U", `${req.user.uid} ${req.user.gid}`));
  parts.push(frame("T", String(Math.max(0, Math.round(req.deadlineMs)))));
  if (req.stdin) parts.push(frame("I", req.stdin));
  parts.push(frame("G", ""));
  return Buffer.concat(parts);
}

/** Parses frames from a growing buffer; returns what is left unparsed. */
export function decodeFrames(buf: Buffer, each: (type: string, body: Buffer) => void): Buffer {
  let off = 0;
  while (buf.length - off >= 5) {
    const n = buf.readUInt32LE(off + 1);
    if (buf.length - off - 5 < n) break;
    each(String.fromCharCode(buf[off]!), buf.subarray(off + 5, off + 5 + n));
    off += 5 + n;
  }
  return off === 0 ? buf : buf.subarray(off);
}

/** sun_path holds 107 bytes: a longer path is reached through /proc/self/fd of its directory. */
function connectPath(path: string): { path: string; release: () => void } {
  if (Buffer.byteLength(path) <= 100) return { path, release: () => undefined };
  const fd = openSync(dirname(path), "r");
  return { path: `/proc/self/fd/${fd}/${basename(path)}`, release: () => closeSync(fd) };
}

function open(path: string): Promise<Socket> {
  const target = connectPath(path);
  return new Promise((resolve, reject) => {
    const s = connect(target.path);
    s.once("connect", () => {
      target.release();
      resolve(s);
    });
    s.once("error", (e: NodeJS.ErrnoException) => {
      target.release();
      reject(e.code === "ENOENT" || e.code === "ECONNREFUSED" ? new ChannelUnavailable(String(e.code)) : e);
    });
  });
}

/**
 * One round trip to the init (a ping: frame H, answered V with its version, nothing run),
 * retried while nothing listens yet, until `deadlineMs` has passed. The engine's create waits
 * for it, so a sandbox is handed back only once its channel answers. Throws ChannelUnavailable
 * (with what was seen last) at the deadline.
 */
export async function channelPing(socketPath: string, deadlineMs: number): Promise<string> {
  const until = performance.now() + deadlineMs;
  let last = "no answer";
  for (;;) {
    const left = until - performance.now();
    if (left <= 0) throw new ChannelUnavailable(last);
    try {
      const sock = await open(socketPath);
      const version = await new Promise<string | undefined>((resolve) => {
        let pending: Buffer = Buffer.alloc(0);
        let got: string | undefined;
        const timer = setTimeout(() => sock.destroy(), left);
        sock.on("data", (chunk: Buffer) => {
          pending = decodeFrames(Buffer.concat([pending, chunk]), (type, body) => {
            if (type === "V") got = body.toString("utf8");
          });
        });
        sock.on("error", () => undefined);
        sock.on("close", () => {
          clearTimeout(timer);
          resolve(got);
        });
        sock.end(frame("H", ""));
      });
      if (version !== undefined) return version;
      last = "the init closed the connection without answering";
    } catch (e) {
      if (!(e instanceof ChannelUnavailable)) throw e;
      last = `nothing listens (${e.message})`;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

export async function channelExec(
  socketPath: string,
  req: ChannelRequest,
  opts: ChannelOptions = {},
): Promise<ChannelResult> {
  const started = performance.now();
  // The engine's create waited for the channel to answer; a sandbox made by an older pyro may
  // have been handed back before its init listened: a few tries.
  let sock: Socket;
  for (let attempt = 0; ; attempt++) {
    try {
      sock = await open(socketPath);
      break;
    } catch (e) {
      if (!(e instanceof ChannelUnavailable) || attempt >= 20) throw e;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  const sockOpen: Socket = sock;
  const max = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  const out = new CappedBuffer(max);
  const err = new CappedBuffer(max);
  return new Promise((resolve) => {
    let pending: Buffer = Buffer.alloc(0);
    let exitCode: number | null = null;
    let timedOut = false;
    let aborted = false;
    let atPidsLimit = false;
    const finish = () => {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      resolve({
        exitCode,
        signal: null,
        ...capturedOutput(out, err),
        timedOut,
        aborted,
        durationMs: Math.round(performance.now() - started),
        lost: exitCode === null && !timedOut && !aborted,
        atPidsLimit,
      });
    };
    // Closing the connection is the kill: the init kills the command's group when it sees it.
    const timer =
      opts.timeoutMs !== undefined
        ? setTimeout(() => {
            timedOut = true;
            sockOpen.destroy();
          }, opts.timeoutMs)
        : undefined;
    const onAbort = () => {
      aborted = true;
      sockOpen.destroy();
    };
    if (opts.signal) {
      if (opts.signal.aborted) onAbort();
      else opts.signal.addEventListener("abort", onAbort, { once: true });
    }
    sockOpen.on("data", (chunk: Buffer) => {
      pending = decodeFrames(pending.length ? Buffer.concat([pending, chunk]) : chunk, (type, body) => {
        // Copies: `body` is a view into a buffer the next chunk replaces.
        if (type === "1") {
          const c = Buffer.from(body);
          out.push(c);
          opts.onStdout?.(c);
        } else if (type === "2") {
          const c = Buffer.from(body);
          err.push(c);
          opts.onStderr?.(c);
        } else if (type === "X") exitCode = Number(body.toString("latin1"));
        else if (type === "P") atPidsLimit = true;
      });
    });
    sockOpen.on("error", () => undefined);
    sockOpen.on("close", finish);
    sockOpen.write(encodeRequest(req));
  });
}
