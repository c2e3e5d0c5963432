import { closeSync, openSync, writeSync } from "node:fs";
import { noted } from "../util/best-effort.js";

/**
 * Command output is a stream with a budget: every byte goes to a log file on the host as it
 * arrives (so nothing is lost and it can be paged later), while memory holds only the first
 * and the last `keep` bytes of each stream (what a bounded result shows) and the latest line
 * (what progress reports show). See docs/architecture.md, "Output".
 */

/** Bytes beyond this many per stream are counted but no longer written to the log file. */
export const LOG_MAX_BYTES = 1024 ** 3;

/** What one stream produced: its size and the head and tail kept in memory. */
export interface StreamSnapshot {
  /** Bytes the command wrote to the stream. */
  bytes: number;
  /** Bytes of it in the log file (less than `bytes` only past LOG_MAX_BYTES). */
  logged: number;
  /** The first min(bytes, keep) bytes. */
  head: Buffer;
  /** The last min(bytes, keep) bytes. */
  tail: Buffer;
}

/** One stream: appended to its file synchronously (ordered, no backpressure to manage). */
export class StreamRecorder {
  private fd: number | undefined;
  private bytes = 0;
  private logged = 0;
  private readonly headChunks: Buffer[] = [];
  private headSize = 0;
  private tailChunks: Buffer[] = [];
  private tailSize = 0;
  /** Why the log file stopped before the stream did (a full disk), if it did. */
  logError: unknown;

  constructor(
    readonly path: string,
    private readonly keep: number,
    private readonly logMax = LOG_MAX_BYTES,
  ) {
    this.fd = openSync(path, "w", 0o600);
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.bytes += chunk.length;
    if (this.fd !== undefined && this.logged < this.logMax) {
      const part = chunk.subarray(0, this.logMax - this.logged);
      try {
        writeSync(this.fd, part);
        this.logged += part.length;
      } catch (e) {
        // A full host disk (ENOSPC) must not end this process from inside a pipe handler:
        // the command runs on, its head and tail are kept here, the log stops (`logged` says
        // how much it holds) and the error is there for the caller to report.
        this.logError = e;
        this.close();
      }
    }
    if (this.headSize < this.keep) {
      const part = chunk.subarray(0, this.keep - this.headSize);
      this.headChunks.push(Buffer.from(part));
      this.headSize += part.length;
    }
    // The tail: the newest chunks, trimmed from the front once they hold more than `keep`.
    const t = chunk.length > this.keep ? chunk.subarray(chunk.length - this.keep) : chunk;
    this.tailChunks.push(Buffer.from(t));
    this.tailSize += t.length;
    while (this.tailChunks.length > 1 && this.tailSize - this.tailChunks[0]!.length >= this.keep) {
      this.tailSize -= this.tailChunks.shift()!.length;
    }
  }

  close(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }

  snapshot(): StreamSnapshot {
    const tail = Buffer.concat(this.tailChunks);
    return {
      bytes: this.bytes,
      logged: this.logged,
      head: Buffer.concat(this.headChunks),
      tail: tail.length > this.keep ? tail.subarray(tail.length - this.keep) : tail,
    };
  }
}

/** The latest non-empty line of output (either stream), for progress reports. */
export class LatestLine {
  private recent = Buffer.alloc(0);

  push(chunk: Buffer): void {
    const joined = Buffer.concat([this.recent, chunk.subarray(Math.max(0, chunk.length - 512))]);
    this.recent = joined.subarray(Math.max(0, joined.length - 512));
  }

  /** Up to 200 characters of the last line that has any text, control characters removed. */
  get(): string {
    const lines = this.recent
      .toString("utf8")
      .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "")
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean);
    const last = lines[lines.length - 1] ?? "";
    return last.length > 200 ? `${last.slice(0, 199)}…` : last;
  }
}

export interface CommandRecorderOptions {
  stdoutPath: string;
  stderrPath: string;
  /** Head and tail bytes kept in memory per stream: the largest view a result may show. */
  keep: number;
  /** Also hand every chunk to these (live streaming to a terminal or an SDK caller). */
  onStdout?: ((chunk: Buffer) => void) | undefined;
  onStderr?: ((chunk: Buffer) => void) | undefined;
  logMax?: number;
}

/** Both streams of one command, plus the latest line; gives the engine its callbacks. */
export class CommandRecorder {
  readonly stdout: StreamRecorder;
  readonly stderr: StreamRecorder;
  readonly latest = new LatestLine();

  constructor(private readonly o: CommandRecorderOptions) {
    this.stdout = new StreamRecorder(o.stdoutPath, o.keep, o.logMax);
    try {
      this.stderr = new StreamRecorder(o.stderrPath, o.keep, o.logMax);
    } catch (e) {
      this.stdout.close();
      throw e;
    }
  }

  readonly onStdout = (chunk: Buffer): void => {
    this.stdout.push(chunk);
    this.latest.push(chunk);
    forward(this.o.onStdout, chunk);
  };

  readonly onStderr = (chunk: Buffer): void => {
    this.stderr.push(chunk);
    this.latest.push(chunk);
    forward(this.o.onStderr, chunk);
  };

  close(): void {
    this.stdout.close();
    this.stderr.close();
  }
}

/** A caller's callback that throws must not break the engine's pipe handling. */
function forward(cb: ((chunk: Buffer) => void) | undefined, chunk: Buffer): void {
  try {
    cb?.(chunk);
  } catch (e) {
    noted("a caller's output callback threw: the command runs on, its output still logged", e);
  }
}
