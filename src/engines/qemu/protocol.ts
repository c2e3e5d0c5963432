/**
 * The framed, binary-safe protocol between pyro and its guest agent (guest/agent.c;
 * described in guest/README.md). Pure functions only, unit-tested.
 *
 * Frame: magic "PYR1" (u32 BE) | type (u8) | 3 reserved bytes | payload length (u32 BE) | payload.
 * Integers are big-endian; strings are u32 length + bytes (no NUL allowed).
 */
export const MAGIC = 0x50595231;
export const HEADER_BYTES = 12;
export const MAX_PAYLOAD = 1 << 20;
/** Host stdin frames are cut at this size (the agent buffers one frame at a time). */
export const STDIN_CHUNK = 64 * 1024;

export const T = {
  HELLO: 0x01,
  EXEC: 0x02,
  STDIN: 0x03,
  PUT: 0x04,
  KILL: 0x05,
  HELLO_OK: 0x81,
  STDOUT: 0x82,
  STDERR: 0x83,
  EXIT: 0x84,
  ERROR: 0x85,
} as const;

export const EXEC_F_STDIN = 1;
export const EXIT_F = { TIMED_OUT: 1, STDOUT_TRUNC: 2, STDERR_TRUNC: 4, KILLED: 8 } as const;

export interface Frame {
  type: number;
  payload: Buffer;
}

export function encodeFrame(type: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  if (payload.length > MAX_PAYLOAD)
    throw new Error(`frame payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`);
  const h = Buffer.alloc(HEADER_BYTES);
  h.writeUInt32BE(MAGIC, 0);
  h.writeUInt8(type, 4);
  h.writeUInt32BE(payload.length, 8);
  return Buffer.concat([h, payload]);
}

/**
 * Splits a byte stream into frames. Bytes that do not start a valid header are skipped one at
 * a time until the magic lines up again, so garbage (a stale half frame) cannot wedge it.
 */
export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);
  skipped = 0;

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Frame[] = [];
    let off = 0;
    while (this.buf.length - off >= HEADER_BYTES) {
      const len = this.buf.readUInt32BE(off + 8);
      if (this.buf.readUInt32BE(off) !== MAGIC || len > MAX_PAYLOAD) {
        off++;
        this.skipped++;
        continue;
      }
      if (this.buf.length - off < HEADER_BYTES + len) break;
      out.push({
        type: this.buf[off + 4]!,
        payload: Buffer.from(this.buf.subarray(off + HEADER_BYTES, off + HEADER_BYTES + len)),
      });
      off += HEADER_BYTES + len;
    }
    this.buf = this.buf.subarray(off);
    return out;
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

function str(s: string): Buffer {
  if (s.includes("\0")) throw new Error(`string contains a NUL byte: ${JSON.stringify(s.slice(0, 60))}`);
  const b = Buffer.from(s, "utf8");
  return Buffer.concat([u32(b.length), b]);
}

function vec(items: readonly string[]): Buffer {
  return Buffer.concat([u32(items.length), ...items.map(str)]);
}

/** HELLO flag: a one-shot VM, which shuts itself down when its host goes away for good. */
export const HELLO_F_ONESHOT = 1;

/**
 * HELLO: nonce (8 bytes) | unix seconds (u64) | nanoseconds (u32) | entropy (u32 length +
 * bytes) | flags (u32).
 */
export function encodeHello(nonce: Buffer, now: Date, entropy: Buffer, flags = 0): Buffer {
  if (nonce.length !== 8) throw new Error("nonce must be 8 bytes");
  const ms = now.getTime();
  const sec = BigInt(Math.floor(ms / 1000));
  const t = Buffer.alloc(12);
  t.writeBigUInt64BE(sec, 0);
  t.writeUInt32BE((ms % 1000) * 1_000_000, 8);
  return encodeFrame(T.HELLO, Buffer.concat([nonce, t, u32(entropy.length), entropy, u32(flags)]));
}

export function parseHelloOk(payload: Buffer): { nonce: Buffer; version: string } {
  return { nonce: payload.subarray(0, 8), version: payload.subarray(8).toString("utf8") };
}

export interface ExecFrameRequest {
  argv: readonly string[];
  env?: Readonly<Record<string, string>>;
  cwd?: string;
  timeoutMs: number;
  maxOutputBytes: number;
  stdin: boolean;
}

/** EXEC: timeout ms | output cap | flags | argv | env ("K=V") | cwd. */
export function encodeExec(r: ExecFrameRequest): Buffer {
  if (r.argv.length === 0) throw new Error("empty argv");
  const env = Object.entries(r.env ?? {}).map(([k, v]) => {
    if (!k || k.includes("=")) throw new Error(`invalid environment variable name ${JSON.stringify(k)}`);
    return `${k}=${v}`;
  });
  return encodeFrame(
    T.EXEC,
    Buffer.concat([
      u32(Math.min(Math.max(0, Math.round(r.timeoutMs)), 0xffffffff)),
      u32(Math.min(r.maxOutputBytes, 0xffffffff)),
      u32(r.stdin ? EXEC_F_STDIN : 0),
      vec(r.argv),
      vec(env),
      str(r.cwd ?? "/"),
    ]),
  );
}

/** PUT: timeout ms | destination directory; a tar stream follows as STDIN frames. */
export function encodePut(dest: string, timeoutMs: number): Buffer {
  if (!dest.startsWith("/")) throw new Error(`put-archive destination must be absolute: ${dest}`);
  return encodeFrame(T.PUT, Buffer.concat([u32(Math.min(timeoutMs, 0xffffffff)), str(dest)]));
}

export function encodeStdin(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < data.length; off += STDIN_CHUNK)
    out.push(encodeFrame(T.STDIN, data.subarray(off, off + STDIN_CHUNK)));
  return out;
}

export const STDIN_EOF = (): Buffer => encodeFrame(T.STDIN);
export const KILL = (): Buffer => encodeFrame(T.KILL);

export interface ExitInfo {
  exitCode: number;
  signal: number;
  timedOut: boolean;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  killed: boolean;
  durationMs: number;
}

export function parseExit(p: Buffer): ExitInfo {
  if (p.length < 16) throw new Error(`short EXIT frame (${p.length} bytes)`);
  const flags = p.readUInt32BE(8);
  return {
    exitCode: p.readInt32BE(0),
    signal: p.readInt32BE(4),
    timedOut: (flags & EXIT_F.TIMED_OUT) !== 0,
    stdoutTruncated: (flags & EXIT_F.STDOUT_TRUNC) !== 0,
    stderrTruncated: (flags & EXIT_F.STDERR_TRUNC) !== 0,
    killed: (flags & EXIT_F.KILLED) !== 0,
    durationMs: p.readUInt32BE(12),
  };
}
