import { createReadStream } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { basename, join, posix } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { c as tarCreate, t as tarList } from "tar";
import { PyroError } from "../core/errors.js";
import { runCapture } from "../util/proc.js";
import { clearSetIdArgs } from "../util/set-id.js";

/**
 * Limits on what one seed or sync may bring in. Each bounds the time or memory of some pass:
 * the validation pass keeps only the archive's symlinks (at most `maxLinkBytes` of names),
 * and the depth and path length bound every tool that later walks the tree (extraction,
 * the guest's own tools, `rm -r` at delete). Real trees, node_modules included, stay far
 * below them; a 1,500-level archive is refused in a fraction of a second.
 */
export const ARCHIVE_LIMITS = {
  maxEntries: 200_000,
  maxBytes: 4 * 1024 ** 3,
  /** Directory levels of one entry's path (`a/b/c` is 3). */
  maxDepth: 256,
  /** Bytes of one entry's path or link target: Linux's PATH_MAX less the terminating NUL. */
  maxPathBytes: 4095,
  /** Total bytes of the symlink names and targets the cross-entry check keeps in memory. */
  maxLinkBytes: 64 * 1024 ** 2,
};

export type SourceKind = "directory" | "tar_archive";

export interface SourceInfo {
  kind: SourceKind;
  path: string;
  gzip: boolean;
}

export interface ImportStats {
  entry_count: number;
  bytes_written: number;
}

/** Classifies a host path as a seed/sync source, or says clearly why it cannot be one. */
export async function classifySource(path: string, what: "seed path" | "source path"): Promise<SourceInfo> {
  const st = await lstat(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT")
      throw new PyroError(
        "invalid_argument",
        `${what} does not exist: ${path}`,
        "pass an existing directory or a .tar/.tar.gz/.tgz file",
      );
    throw new PyroError("invalid_argument", `cannot read ${what} ${path}: ${e.message}`);
  });
  if (st.isDirectory()) return { kind: "directory", path, gzip: false };
  const name = basename(path).toLowerCase();
  if (st.isFile() && name.endsWith(".tar")) return { kind: "tar_archive", path, gzip: false };
  if (st.isFile() && (name.endsWith(".tar.gz") || name.endsWith(".tgz")))
    return { kind: "tar_archive", path, gzip: true };
  const kind = st.isSymbolicLink()
    ? "a symlink"
    : st.isFile()
      ? "a file of an unsupported type"
      : "not a regular file or directory";
  throw new PyroError(
    "invalid_argument",
    `${what} ${path} is ${kind}`,
    "pass a directory or a .tar / .tar.gz / .tgz archive (a symlinked path must be resolved first)",
  );
}

/** Why an archive entry is refused, or undefined when it is fine. Pure, unit-tested. */
export function entryProblem(entry: { path: string; type: string; linkpath?: string }): string | undefined {
  const p = entry.path;
  if (p.includes("\0")) return "has a NUL byte in its name";
  if (p.startsWith("/") || /^[A-Za-z]:[\\/]/.test(p)) return "has an absolute path";
  const norm = posix.normalize(p);
  if (norm === ".." || norm.startsWith("../") || p.split("/").includes(".."))
    return "escapes the destination (contains ..)";
  switch (entry.type) {
    case "File":
    case "OldFile":
    case "ContiguousFile":
    case "Directory":
      return undefined;
    case "SymbolicLink": {
      const target = entry.linkpath ?? "";
      if (target.startsWith("/")) return `is a symlink to an absolute path (${target})`;
      const resolved = posix.normalize(posix.join(posix.dirname(norm), target));
      if (resolved === ".." || resolved.startsWith("../"))
        return `is a symlink pointing outside the destination (${target})`;
      return undefined;
    }
    case "Link": {
      const target = entry.linkpath ?? "";
      const resolved = posix.normalize(target);
      if (
        target.startsWith("/") ||
        resolved === ".." ||
        resolved.startsWith("../") ||
        target.split("/").includes("..")
      ) {
        return `is a hardlink to a path outside the destination (${target})`;
      }
      return undefined;
    }
    case "CharacterDevice":
    case "BlockDevice":
      return "is a device file";
    case "FIFO":
      return "is a FIFO";
    default:
      return `has an unsupported type (${entry.type})`;
  }
}

export interface ArchiveEntry {
  path: string;
  type: string;
  linkpath?: string;
}

/** Splits an archive path into its components ("./a//b/" → ["a", "b"]). */
function components(p: string): string[] {
  return p.split("/").filter((c) => c !== "" && c !== ".");
}

/** Why one entry's name is beyond the limits, or undefined. Pure, unit-tested. */
export function entryLimitProblem(entry: ArchiveEntry): string | undefined {
  const { maxDepth, maxPathBytes } = ARCHIVE_LIMITS;
  if (Buffer.byteLength(entry.path) > maxPathBytes)
    return `has a path longer than the limit of ${maxPathBytes} bytes`;
  if (entry.linkpath !== undefined && Buffer.byteLength(entry.linkpath) > maxPathBytes)
    return `has a link target longer than the limit of ${maxPathBytes} bytes`;
  const depth = components(entry.path).length;
  if (depth > maxDepth) return `is nested ${depth} directories deep, beyond the limit of ${maxDepth}`;
  return undefined;
}

/**
 * The archive's symlinks as a tree of path components, so that "does this path go through
 * a symlink?" costs one map lookup per component instead of joining every prefix (which
 * made the check quadratic in depth). Holds symlinks only: a plain file tree costs nothing.
 */
class LinkTree {
  private readonly root: LinkNode = { children: new Map() };
  size = 0;
  bytes = 0;

  /** Records one entry, in archive order: a later entry of the same path replaces a link. */
  add(e: ArchiveEntry): void {
    const parts = components(e.path);
    if (e.type === "SymbolicLink") {
      let n = this.root;
      for (const c of parts) {
        let next = n.children.get(c);
        if (!next) {
          next = { children: new Map() };
          n.children.set(c, next);
        }
        n = next;
      }
      if (n.target === undefined) this.size++;
      n.target = e.linkpath ?? "";
      this.bytes += e.path.length + n.target.length;
    } else if (this.size > 0) {
      const n = this.nodes(parts).at(-1);
      if (n?.target !== undefined) {
        n.target = undefined;
        this.size--;
      }
    }
  }

  /** The tree node of each prefix of `parts` (undefined once the path leaves the tree). */
  nodes(parts: readonly string[]): (LinkNode | undefined)[] {
    const out: (LinkNode | undefined)[] = [];
    let n: LinkNode | undefined = this.root;
    for (const c of parts) {
      n = n?.children.get(c);
      out.push(n);
      if (!n) break;
    }
    while (out.length < parts.length) out.push(undefined);
    return out;
  }

  /** The first proper prefix of `parts` that is a symlink, joined, or undefined. */
  linkPrefix(parts: readonly string[]): string | undefined {
    let n: LinkNode | undefined = this.root;
    for (let i = 0; i < parts.length - 1; i++) {
      n = n.children.get(parts[i]!);
      if (!n) return undefined;
      if (n.target !== undefined) return parts.slice(0, i + 1).join("/");
    }
    return undefined;
  }

  /** Resolves a symlink's target as the guest would, following the archive's own links. */
  resolve(base: readonly string[], target: string, budget: { n: number }): string[] | "escapes" | "loops" {
    if (target.startsWith("/")) return "escapes";
    const stack = [...base];
    let nodes = this.nodes(stack);
    for (const c of components(target)) {
      if (c === "..") {
        if (stack.length === 0) return "escapes";
        stack.pop();
        nodes.pop();
        continue;
      }
      const parent = nodes.length === 0 ? this.root : nodes[nodes.length - 1];
      const node = parent?.children.get(c);
      stack.push(c);
      nodes.push(node);
      if (node?.target !== undefined) {
        if (--budget.n < 0) return "loops";
        const r = this.resolve(stack.slice(0, -1), node.target, budget);
        if (typeof r === "string") return r;
        stack.splice(0, stack.length, ...r);
        nodes = this.nodes(stack);
      }
    }
    return stack;
  }

  /** Why this entry is refused given the archive's final set of symlinks, or undefined. */
  problem(e: ArchiveEntry): string | undefined {
    if (this.size === 0) return undefined;
    const parts = components(e.path);
    const via = this.linkPrefix(parts);
    if (via) return `would be written through the symlink ${via} in the same archive`;
    if (e.type === "Link") {
      const tvia = this.linkPrefix(components(e.linkpath ?? ""));
      if (tvia) return `is a hardlink whose target goes through the symlink ${tvia}`;
    }
    if (e.type === "SymbolicLink") {
      const r = this.resolve(parts.slice(0, -1), e.linkpath ?? "", { n: 64 });
      if (r === "escapes")
        return `is a symlink that resolves outside the destination through other symlinks (${e.linkpath})`;
      if (r === "loops") return `is part of a symlink loop (${e.linkpath})`;
    }
    return undefined;
  }
}

interface LinkNode {
  children: Map<string, LinkNode>;
  /** Set when this path is (finally) a symlink. */
  target?: string;
}

/**
 * Problems that only show across entries, given every entry of an (already per-entry
 * checked) archive: an entry unpacked through a symlink the archive itself created, a
 * hardlink whose target goes through one, or a chain of individually harmless relative
 * symlinks (`a/up -> ..`, `a/up2 -> up/..`) that resolves outside the destination. Pure,
 * unit-tested. Returns the first offending entry and why. Linear in entries × depth.
 */
export function archiveProblem(entries: readonly ArchiveEntry[]): { path: string; why: string } | undefined {
  const links = new LinkTree();
  for (const e of entries) links.add(e);
  for (const e of entries) {
    const why = links.problem(e);
    if (why) return { path: e.path, why };
  }
  return undefined;
}

/** An entry's name for a message: quoted, and shortened in the middle when very long. */
export function entryName(path: string): string {
  if (path.length <= 200) return JSON.stringify(path);
  return `${JSON.stringify(`${path.slice(0, 80)}…${path.slice(-80)}`)} (${path.length} characters)`;
}

function cancelled(what: string): PyroError {
  return new PyroError("cancelled", `${what} cancelled; nothing was written`);
}

/** Streams every entry of a tar (gzip detected by node-tar) through `onEntry`, honouring `signal`. */
async function eachEntry(
  src: SourceInfo,
  onEntry: (e: ArchiveEntry & { size: number }) => void,
  signal: AbortSignal | undefined,
): Promise<void> {
  const parser = tarList({
    strict: true,
    onReadEntry: (entry) => {
      onEntry({
        path: entry.path,
        type: entry.type,
        size: entry.size ?? 0,
        ...(entry.linkpath ? { linkpath: entry.linkpath } : {}),
      });
      entry.resume();
    },
  });
  const sink = parser as unknown as NodeJS.WritableStream;
  await (signal
    ? pipeline(createReadStream(src.path), sink, { signal })
    : pipeline(createReadStream(src.path), sink));
}

/**
 * Reads the whole archive without writing anything and refuses it if any entry is unsafe
 * or beyond ARCHIVE_LIMITS, naming the entry and the limit. Returns the entry count and
 * total file bytes. Time is linear in the archive's size (node-tar's parser: 0.1 s for a
 * 4 MB, 1,500-level archive) and memory holds only the archive's symlinks: a second pass
 * checks entries against them, and only archives that contain symlinks need it.
 */
export async function validateArchive(src: SourceInfo, signal?: AbortSignal): Promise<ImportStats> {
  let entries = 0;
  let bytes = 0;
  let problem: PyroError | undefined;
  const links = new LinkTree();
  const refuse = (
    path: string,
    why: string,
    hint = "repack the archive without that entry, or seed from a directory",
  ) =>
    new PyroError(
      "seed_rejected",
      `archive ${src.path}: entry ${entryName(path)} ${why}; nothing was written`,
      hint,
    );
  const run = async (onEntry: (e: ArchiveEntry & { size: number }) => void) => {
    try {
      await eachEntry(src, onEntry, signal);
    } catch (e) {
      if (signal?.aborted) throw cancelled(`checking ${src.path}`);
      if (problem) throw problem;
      throw new PyroError(
        "seed_rejected",
        `archive ${src.path} is not a readable tar${src.gzip ? ".gz" : ""} file: ${(e as Error).message}`,
      );
    }
    if (problem) throw problem;
  };
  await run((entry) => {
    if (problem) return;
    entries++;
    bytes += entry.size;
    const unsafe = entryProblem(entry);
    const tooBig = unsafe ? undefined : entryLimitProblem(entry);
    if (unsafe) problem = refuse(entry.path, unsafe);
    else if (tooBig)
      problem = refuse(
        entry.path,
        tooBig,
        `seeds are limited to ${ARCHIVE_LIMITS.maxDepth} directory levels and ${ARCHIVE_LIMITS.maxPathBytes}-byte paths; leave that part of the tree out`,
      );
    else if (entries > ARCHIVE_LIMITS.maxEntries)
      problem = new PyroError(
        "seed_rejected",
        `archive ${src.path} has more than the limit of ${ARCHIVE_LIMITS.maxEntries} entries (at ${entryName(entry.path)})`,
      );
    else if (bytes > ARCHIVE_LIMITS.maxBytes)
      problem = new PyroError(
        "seed_rejected",
        `archive ${src.path} holds more than the limit of ${ARCHIVE_LIMITS.maxBytes} bytes (at ${entryName(entry.path)})`,
      );
    else {
      links.add(entry);
      if (links.bytes > ARCHIVE_LIMITS.maxLinkBytes)
        problem = refuse(
          entry.path,
          `takes the archive's symlinks past the limit of ${ARCHIVE_LIMITS.maxLinkBytes} bytes of names`,
        );
    }
  });
  if (links.size > 0) {
    await run((entry) => {
      if (problem) return;
      const why = links.problem(entry);
      if (why) problem = refuse(entry.path, why);
    });
  }
  return { entry_count: entries, bytes_written: bytes };
}

/**
 * Counts what a directory import will carry. Symlinks are counted (and later copied) as
 * links, never followed; sockets and devices are refused by name, and so is a tree deeper
 * than ARCHIVE_LIMITS.maxDepth.
 */
export async function scanDirectory(root: string, signal?: AbortSignal): Promise<ImportStats> {
  let entries = 0;
  let bytes = 0;
  const walk = async (dir: string, depth: number): Promise<void> => {
    if (signal?.aborted) throw cancelled(`checking ${root}`);
    const dirents = await readdir(dir, { withFileTypes: true });
    entries += dirents.length;
    if (entries > ARCHIVE_LIMITS.maxEntries)
      throw new PyroError(
        "seed_rejected",
        `${root} has more than the limit of ${ARCHIVE_LIMITS.maxEntries} entries (at ${dir})`,
      );
    // Siblings are stat'ed in parallel: a 1000-file seed is scanned in a few ms, not a few hundred.
    await Promise.all(
      dirents.map(async (d) => {
        const p = join(dir, d.name);
        if (d.isDirectory()) {
          if (depth + 1 >= ARCHIVE_LIMITS.maxDepth)
            throw new PyroError(
              "seed_rejected",
              `${p} is nested more than the limit of ${ARCHIVE_LIMITS.maxDepth} directories deep below ${root}; nothing was written`,
              "leave that part of the tree out (seed from a copy without it)",
            );
          await walk(p, depth + 1);
        } else if (d.isFile()) {
          // Not `bytes += (await …)`: that reads `bytes` before the await and loses the
          // sizes its siblings added meanwhile.
          const { size } = await lstat(p);
          bytes += size;
        } else if (!d.isSymbolicLink()) {
          throw new PyroError(
            "seed_rejected",
            `${p} is not a regular file, directory or symlink (device, socket or FIFO); nothing was written`,
          );
        }
      }),
    );
  };
  await walk(root, 0);
  return { entry_count: entries, bytes_written: bytes };
}

/** Checks a seed or sync source without writing anything; returns what it will bring in. */
export function inspectSource(src: SourceInfo, signal?: AbortSignal): Promise<ImportStats> {
  return src.kind === "directory" ? scanDirectory(src.path, signal) : validateArchive(src, signal);
}

/** Runs a helper (tar, cp, find) for an import: killed on abort, its failure named. */
async function importStep(file: string, args: string[], what: string, signal?: AbortSignal): Promise<void> {
  const r = await runCapture(file, args, {
    timeoutMs: 600_000,
    ...(signal ? { signal } : {}),
  }).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== "ENOENT") throw e;
    throw new PyroError(
      "host_dependency_missing",
      `${what} needs \`${file}\`, which is not on this host's PATH`,
      "install GNU tar, coreutils and findutils (Debian: apt-get install tar coreutils findutils)",
    );
  });
  if (r.aborted || signal?.aborted) throw new PyroError("cancelled", `${what} cancelled`);
  if (r.exitCode !== 0) {
    const detail = (r.stderr || r.stdout).trim().split("\n").slice(-5).join("\n");
    throw new PyroError(
      "seed_rejected",
      `${what} failed${r.timedOut ? " (timed out)" : ` (exit ${r.exitCode ?? r.signal})`}: ${detail}`,
    );
  }
}

/**
 * Host-side import into a fresh, empty directory that no sandbox sees yet (workspace
 * create), so no guest can race it. The caller removes `dest` when this throws, so nothing
 * half-unpacked stays behind.
 *
 * Archives were validated first (validateArchive); GNU tar then unpacks them as a child
 * process. Why not node-tar, which we use to validate: its extraction is superlinear in
 * depth (node-tar 7.5 on the 2-core dev VM: 100 levels 0.8 s, 200 levels 3.2 s/150 MB, 400
 * levels 39 s/680 MB, 1,500 levels a 4 GB heap and a crash) and runs in our process, where it starved the event loop and so
 * ignored SIGTERM. GNU tar unpacks the same 1,500-level archive in 0.2 s in 5 MB, is killed
 * on abort like any child, and has its own defences as a second line (it refuses `..`
 * members, strips leading `/`, and creates symlinks with `..` or `/` targets last).
 *
 * Nothing from a seed may carry set-uid/set-gid semantics on the host: GNU tar with
 * --no-same-permissions drops them, `cp -a` keeps them, and a final `find` pass clears
 * them for both (devices, sockets and FIFOs were refused before anything was written).
 */
export async function importIntoFreshDir(src: SourceInfo, dest: string, signal?: AbortSignal): Promise<void> {
  if (src.kind === "directory") {
    // GNU cp -a copies symlinks as links (never following them) and is ~20x faster than fs.cp.
    await importStep(
      "cp",
      ["-a", "--no-preserve=ownership", "--", `${src.path}/.`, `${dest}/`],
      `copying ${src.path}`,
      signal,
    );
  } else {
    await importStep(
      "tar",
      [
        "-x",
        ...(src.gzip ? ["-z"] : []),
        "-f",
        src.path,
        "-C",
        dest,
        "--no-same-owner",
        "--no-same-permissions",
        "--no-acls",
        "--no-xattrs",
        "--no-selinux",
        "--no-overwrite-dir",
        "--warning=no-unknown-keyword",
        "--warning=no-timestamp",
      ],
      `unpacking ${src.path}`,
      signal,
    );
  }
  await stripSetIdBits(dest, signal);
}

/** Clears set-uid and set-gid on everything under `dest`, a fresh tree no sandbox sees yet. */
export function stripSetIdBits(dest: string, signal?: AbortSignal): Promise<void> {
  return importStep("find", clearSetIdArgs(dest), `clearing set-id bits under ${dest}`, signal);
}

/** A plain (uncompressed) tar stream of the source, for unpacking inside a running sandbox. */
export function tarStreamOf(src: SourceInfo): Readable {
  if (src.kind === "directory") {
    return tarCreate({ cwd: src.path, portable: true, follow: false }, ["."]) as unknown as Readable;
  }
  const file = createReadStream(src.path);
  if (!src.gzip) return file;
  const out = new PassThrough();
  pipeline(file, createGunzip(), out).catch((e) => out.destroy(e));
  return out;
}
