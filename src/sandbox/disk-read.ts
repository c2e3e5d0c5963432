import { spawn } from "node:child_process";
import { PyroError } from "../core/errors.js";
import { runCapture, which } from "../util/proc.js";
import { isMounted } from "./disk.js";

/**
 * A workspace's disk image (disk.ts) read offline, without mounting it: `debugfs -R` from
 * e2fsprogs opens the ext4 image read-only and walks it itself, so nothing in the image is
 * ever a host path (a symlink in it resolves inside the image, a device node is only an
 * inode). Used by the disk tools on a stopped workspace (workspaces/disk-tools.ts).
 *
 * A stopped workspace's image stays loop-mounted at files/, and ext4 keeps recent metadata
 * in its journal until a checkpoint: debugfs does not replay the journal, so the image is
 * first frozen and thawed (`fsfreeze`), which flushes and checkpoints everything. Paths are
 * image paths (`/` is /workspace).
 */

export type ImageEntryType = "file" | "directory" | "symlink" | "other";

export interface ImageEntry {
  name: string;
  type: ImageEntryType;
  size: number;
  /** Permission bits, octal (`644`). */
  mode: string;
}

/** Flushes and checkpoints a mounted image so an offline reader sees all of it. */
export async function settleImage(filesDir: string): Promise<void> {
  if (!(await isMounted(filesDir))) return;
  const fsfreeze = await which("fsfreeze");
  if (!fsfreeze) {
    await runCapture((await which("sync")) ?? "sync", ["-f", filesDir], { timeoutMs: 60_000 });
    return;
  }
  const frozen = await runCapture(fsfreeze, ["--freeze", filesDir], { timeoutMs: 60_000 });
  // Thawed whatever the freeze said: a disk left frozen would hang the next start's writes.
  const thawed = await runCapture(fsfreeze, ["--unfreeze", filesDir], { timeoutMs: 60_000 });
  if (frozen.exitCode !== 0 || thawed.exitCode !== 0)
    throw new PyroError(
      "engine_failure",
      `cannot flush the workspace disk at ${filesDir} before reading it: ${(frozen.stderr || thawed.stderr).trim().slice(0, 300)}`,
    );
}

async function debugfsPath(): Promise<string> {
  const p = await which("debugfs");
  if (!p)
    throw new PyroError(
      "host_dependency_missing",
      "debugfs is not installed: the disk tools read the workspace's ext4 image with it",
      "install e2fsprogs (apt-get install e2fsprogs), or use the file tools on a started workspace",
    );
  return p;
}

/** debugfs's request parser splits on spaces and quotes; such names cannot be passed safely. */
function quoted(p: string): string {
  if (/["\u0000-\u001f\\]/.test(p))
    throw new PyroError(
      "invalid_argument",
      `path ${JSON.stringify(p)} has a quote, backslash or control character, which the disk tools cannot name`,
      "start the workspace and use the file tools (workspace file list/read) for such names",
    );
  return `"${p}"`;
}

/** debugfs's own messages, without its version banner. */
function messages(stderr: string): string {
  return stderr
    .split("\n")
    .filter((l) => l.trim() && !/^debugfs \d/.test(l))
    .join("; ")
    .trim();
}

async function request(image: string, req: string): Promise<{ out: string; err: string }> {
  const r = await runCapture(await debugfsPath(), ["-R", req, image], {
    timeoutMs: 120_000,
    maxOutputBytes: 64 * 1024 * 1024,
  });
  const err = messages(r.stderr);
  if (r.exitCode !== 0 || /while (trying to )?open/i.test(err))
    throw new PyroError(
      "engine_failure",
      `debugfs cannot read the workspace disk image: ${err.slice(0, 300)}`,
    );
  return { out: r.stdout, err };
}

function notFound(p: string, err: string): PyroError {
  return new PyroError(
    "not_found",
    `${p === "/" ? "/workspace" : `/workspace${p}`} is not on the disk (${err.replace(/^[^:]*: /, "").trim() || "not found"})`,
  );
}

function typeOf(octalMode: string): ImageEntryType {
  const fmt = Number.parseInt(octalMode, 8) & 0o170000;
  return fmt === 0o040000 ? "directory" : fmt === 0o100000 ? "file" : fmt === 0o120000 ? "symlink" : "other";
}

const perm = (octalMode: string) => (Number.parseInt(octalMode, 8) & 0o7777).toString(8);

/** One inode's type, size and mode; not_found when the path is not in the image. */
export async function imageStat(
  image: string,
  p: string,
): Promise<{ type: ImageEntryType; size: number; mode: string }> {
  const { out, err } = await request(image, `stat ${quoted(p)}`);
  const type = /Type:\s+(\S+)/.exec(out)?.[1];
  const mode = /Mode:\s+([0-7]+)/.exec(out)?.[1];
  const size = /\bSize:\s+(\d+)/.exec(out)?.[1];
  if (!type || !mode || size === undefined) throw notFound(p, err);
  const t: ImageEntryType =
    type === "regular"
      ? "file"
      : type === "directory"
        ? "directory"
        : type === "symlink"
          ? "symlink"
          : "other";
  return { type: t, size: Number(size), mode: (Number.parseInt(mode, 8) & 0o7777).toString(8) };
}

/** The entries of one directory of the image (`.` and `..` left out). */
export async function imageList(image: string, dir: string): Promise<ImageEntry[]> {
  const { out, err } = await request(image, `ls -p ${quoted(dir)}`);
  if (!out.trim() && err) {
    if (/not a directory/i.test(err))
      throw new PyroError(
        "invalid_argument",
        `/workspace${dir === "/" ? "" : dir} is not a directory`,
        "read a file with workspace disk read",
      );
    throw notFound(dir, err);
  }
  const entries: ImageEntry[] = [];
  // `/inode/mode/uid/gid/name/size/`; a name with a newline in it cannot be told apart and is left out.
  for (const line of out.split("\n")) {
    const m = /^\/(\d+)\/([0-7]+)\/(\d+)\/(\d+)\/(.*)\/(\d*)\/$/.exec(line);
    if (!m || m[5] === "." || m[5] === ".." || Number(m[1]) === 0) continue;
    entries.push({ name: m[5]!, type: typeOf(m[2]!), size: Number(m[6] || 0), mode: perm(m[2]!) });
  }
  return entries;
}

/** The first `max` bytes of a regular file of the image. */
export async function imageRead(image: string, p: string, max: number): Promise<Buffer> {
  const bin = await debugfsPath();
  const req = `cat ${quoted(p)}`;
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ["-R", req, image], { stdio: ["ignore", "pipe", "pipe"] });
    const chunks: Buffer[] = [];
    let size = 0;
    let err = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.stdout.on("data", (c: Buffer) => {
      if (size >= max) return;
      chunks.push(c);
      size += c.length;
      // Enough read: the rest of a large file is not streamed through for nothing.
      if (size >= max) child.kill("SIGKILL");
    });
    child.stderr.on("data", (c: Buffer) => {
      if (err.length < 64 * 1024) err += c.toString("utf8");
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", () => {
      clearTimeout(timer);
      const e = messages(err);
      if (size === 0 && e) reject(notFound(p, e));
      else resolve(Buffer.concat(chunks).subarray(0, max));
    });
  });
}
