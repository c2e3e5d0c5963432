import { isUtf8 } from "node:buffer";
import { utf8CompleteLength } from "../util/proc.js";
import type { StreamSnapshot } from "./recorder.js";

/**
 * The bounded view of a command's output that results carry. One budget covers stdout and
 * stderr together; a stream over its share keeps its head and tail and the middle is
 * counted (`*_omitted_bytes`) and marked in the text. A stream that is not valid UTF-8 is
 * sent base64 (`*_encoding`), so no byte is ever turned into U+FFFD.
 */

// The budget's default and range (max_output_bytes) are the contract's: contract/defaults.ts OUTPUT_BUDGET.

export type OutputEncoding = "utf-8" | "base64";

export interface StreamView {
  text: string;
  encoding: OutputEncoding;
  bytes: number;
  omitted: number;
  /** The view is not the whole stream (bytes omitted, or past the log cap). */
  truncated: boolean;
}

/** How a budget is shared: a stream that needs less than half leaves the rest to the other. */
export function splitBudget(budget: number, outBytes: number, errBytes: number): [number, number] {
  if (outBytes + errBytes <= budget) return [outBytes, errBytes];
  const half = Math.floor(budget / 2);
  if (outBytes <= half) return [outBytes, budget - outBytes];
  if (errBytes <= half) return [budget - errBytes, errBytes];
  return [budget - half, half];
}

/** The marker line that stands for the omitted middle of a stream. */
export function omissionMarker(omitted: number, stream: string, outputId: string | null, offset: number) {
  const where = outputId
    ? `; read it with output_read {"output_id":"${outputId}","stream":"${stream}","offset":${offset}}`
    : "";
  return `\n[pyro: ${omitted} bytes omitted${where}]\n`;
}

/** The marker's shape, for code that wants the head and tail apart. */
export const OMISSION_MARKER_RE = /\n\[pyro: (\d+) bytes omitted[^\]\n]*\]\n/;

function encodingOf(parts: Buffer[]): OutputEncoding {
  return parts.every((p) => isUtf8(p)) ? "utf-8" : "base64";
}

/** Start of `buf` skipping the continuation bytes of a character cut at the front. */
function utf8StartOffset(buf: Buffer): number {
  let i = 0;
  while (i < Math.min(3, buf.length) && (buf[i]! & 0xc0) === 0x80) i++;
  return i;
}

export function streamView(
  s: StreamSnapshot,
  allotted: number,
  stream: "stdout" | "stderr",
  outputId: string | null,
): StreamView {
  const capped = s.logged < s.bytes;
  if (s.bytes <= allotted && s.head.length === s.bytes) {
    const enc = encodingOf([s.head]);
    return {
      text: enc === "utf-8" ? s.head.toString("utf8") : s.head.toString("base64"),
      encoding: enc,
      bytes: s.bytes,
      omitted: 0,
      truncated: capped,
    };
  }
  const headWant = Math.ceil(allotted / 2);
  const tailWant = allotted - headWant;
  let head = s.head.subarray(0, Math.min(headWant, s.head.length));
  let tail = s.tail.subarray(Math.max(0, s.tail.length - tailWant));
  // Cut at character boundaries when the text is UTF-8, so a cut never makes it invalid.
  const headCut = head.subarray(0, utf8CompleteLength(head));
  const tailCut = tail.subarray(utf8StartOffset(tail));
  if (isUtf8(headCut) && isUtf8(tailCut)) {
    head = headCut;
    tail = tailCut;
  }
  const omitted = s.bytes - head.length - tail.length;
  const enc = encodingOf([head, tail]);
  const marker = omissionMarker(omitted, stream, outputId, head.length);
  const text =
    enc === "utf-8"
      ? `${head.toString("utf8")}${marker}${tail.toString("utf8")}`
      : `${head.toString("base64")}${marker}${tail.toString("base64")}`;
  return { text, encoding: enc, bytes: s.bytes, omitted, truncated: true };
}

/** The result fields for both streams under one budget, in contract order. */
export function outputFields(
  out: StreamSnapshot,
  err: StreamSnapshot,
  budget: number,
  outputId: string | null,
) {
  const [a, b] = splitBudget(budget, out.bytes, err.bytes);
  const o = streamView(out, a, "stdout", outputId);
  const e = streamView(err, b, "stderr", outputId);
  return {
    stdout: o.text,
    stderr: e.text,
    stdout_truncated: o.truncated,
    stderr_truncated: e.truncated,
    stdout_encoding: o.encoding,
    stderr_encoding: e.encoding,
    stdout_bytes: o.bytes,
    stderr_bytes: e.bytes,
    stdout_omitted_bytes: o.omitted,
    stderr_omitted_bytes: e.omitted,
  };
}

/** A snapshot of a whole buffer (log entries written before output went to files). */
export function snapshotOf(buf: Buffer): StreamSnapshot {
  return { bytes: buf.length, logged: buf.length, head: buf, tail: buf };
}
