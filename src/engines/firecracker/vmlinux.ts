import { gunzipSync } from "node:zlib";
import { noted } from "../../util/best-effort.js";

/**
 * Firecracker boots an uncompressed ELF vmlinux on x86_64; Debian ships only a bzImage
 * (vmlinuz). The payload inside is compressed with the kernel's configured compressor:
 * LZ4 (legacy frame) for Debian 12's kernels, gzip for many others. This finds the payload
 * and decompresses it; the result must start with the ELF magic.
 */

const LZ4_LEGACY_MAGIC = 0x184c2102;
const LZ4_LEGACY_BLOCK = 8 * 1024 * 1024;
/** LZ4_compressBound(8 MiB): no legitimate block is larger. */
const LZ4_MAX_COMPRESSED = LZ4_LEGACY_BLOCK + Math.floor(LZ4_LEGACY_BLOCK / 255) + 16;

/** Decodes one raw LZ4 block into `out` starting at `op`; returns the new output offset. */
export function lz4DecodeBlock(src: Buffer, start: number, end: number, out: Buffer, op: number): number {
  let ip = start;
  while (ip < end) {
    const token = src[ip++]!;
    let lit = token >> 4;
    if (lit === 15) {
      let b: number;
      do {
        if (ip >= end) throw new Error("lz4: truncated literal length");
        b = src[ip++]!;
        lit += b;
      } while (b === 255);
    }
    if (ip + lit > end || op + lit > out.length) throw new Error("lz4: literal run out of bounds");
    src.copy(out, op, ip, ip + lit);
    ip += lit;
    op += lit;
    if (ip >= end) break; // the last sequence has literals only
    if (ip + 2 > end) throw new Error("lz4: truncated match offset");
    const offset = src[ip]! | (src[ip + 1]! << 8);
    ip += 2;
    if (offset === 0 || offset > op) throw new Error("lz4: invalid match offset");
    let len = token & 15;
    if (len === 15) {
      let b: number;
      do {
        if (ip >= end) throw new Error("lz4: truncated match length");
        b = src[ip++]!;
        len += b;
      } while (b === 255);
    }
    len += 4;
    if (op + len > out.length) throw new Error("lz4: match out of bounds");
    for (let i = 0; i < len; i++) out[op + i] = out[op - offset + i]!;
    op += len;
  }
  return op;
}

/** Decodes an LZ4 legacy stream (the kernel's format) starting at its magic number. */
export function lz4LegacyDecode(buf: Buffer, at = 0): Buffer {
  if (buf.readUInt32LE(at) !== LZ4_LEGACY_MAGIC) throw new Error("lz4: no legacy magic");
  let ip = at + 4;
  const parts: Buffer[] = [];
  while (ip + 4 <= buf.length) {
    const size = buf.readUInt32LE(ip);
    if (size === LZ4_LEGACY_MAGIC) {
      ip += 4; // concatenated stream
      continue;
    }
    // The size word after the last block is the kernel's appended uncompressed length,
    // or whatever follows the payload: anything not a plausible block ends the stream.
    if (size === 0 || size > LZ4_MAX_COMPRESSED || ip + 4 + size > buf.length) break;
    const out = Buffer.alloc(LZ4_LEGACY_BLOCK);
    let n: number;
    try {
      n = lz4DecodeBlock(buf, ip + 4, ip + 4 + size, out, 0);
    } catch (e) {
      if (parts.length) break; // garbage after a good stream
      throw e;
    }
    parts.push(out.subarray(0, n));
    ip += 4 + size;
    if (n < LZ4_LEGACY_BLOCK) break; // only the last block is short
  }
  return Buffer.concat(parts);
}

const isElf = (b: Buffer) => b.length > 4 && b.readUInt32BE(0) === 0x7f454c46;

function* indexesOf(buf: Buffer, needle: Buffer): Generator<number> {
  let i = buf.indexOf(needle);
  while (i >= 0) {
    yield i;
    i = buf.indexOf(needle, i + 1);
  }
}

/** Extracts the ELF vmlinux from a bzImage, or throws saying which compressors were tried. */
export function extractVmlinux(bzImage: Buffer): Buffer {
  if (isElf(bzImage)) return bzImage;
  const magic = Buffer.alloc(4);
  magic.writeUInt32LE(LZ4_LEGACY_MAGIC, 0);
  for (const at of indexesOf(bzImage, magic)) {
    try {
      const out = lz4LegacyDecode(bzImage, at);
      if (isElf(out)) return out;
    } catch (err) {
      // not the payload; keep looking
      noted("not the lz4 payload: the next candidate is tried", err);
    }
  }
  for (const at of indexesOf(bzImage, Buffer.from([0x1f, 0x8b, 0x08]))) {
    try {
      const out = gunzipSync(bzImage.subarray(at), {
        finishFlush: 2 /* Z_SYNC_FLUSH: tolerate trailing data */,
      });
      if (isElf(out)) return out;
    } catch (err) {
      // not the payload
      noted("not the gzip payload: the next candidate is tried", err);
    }
  }
  throw new Error("no LZ4 or gzip payload holding an ELF vmlinux found in the kernel image");
}
