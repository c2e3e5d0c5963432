import { createReadStream } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { basename, join, posix } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { c as tarCreate, x as tarExtract, t as tarList } from "tar";
import { PyroError } from "../errors.js";
import { runChecked } from "../util/proc.js";

/** Limits on what one seed or sync may bring in. */
export const ARCHIVE_LIMITS = { maxEntries: 200_000, maxBytes: 4 * 1024 ** 3 };

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

/**
 * Problems that only show across entries, given every entry of an (already per-entry
 * checked) archive: an entry unpacked through a symlink the archive itself created, a
 * hardlink whose target goes through one, or a chain of individually harmless relative
 * symlinks (`a/up -> ..`, `a/up2 -> up/..`) that resolves outside the destination. Pure,
 * unit-tested. Returns the first offending entry and why.
 */
export function archiveProblem(entries: readonly ArchiveEntry[]): { path: string; why: string } | undefined {
  const links = new Map<string, string>();
  for (const e of entries) {
    const key = components(e.path).join("/");
    if (e.type === "SymbolicLink") links.set(key, e.linkpath ?? "");
    else links.delete(key);
  }
  if (links.size === 0) return undefined;
  const linkPrefix = (parts: string[]): string | undefined => {
    for (let i = 1; i < parts.length; i++) {
      const p = parts.slice(0, i).join("/");
      if (links.has(p)) return p;
    }
    return undefined;
  };
  /** Resolves a symlink's target as the guest would, following the archive's own links. */
  const resolve = (base: string[], target: string, budget: { n: number }): string[] | "escapes" | "loops" => {
    if (target.startsWith("/")) return "escapes";
    const stack = [...base];
    for (const c of components(target)) {
      if (c === "..") {
        if (stack.length === 0) return "escapes";
        stack.pop();
        continue;
      }
      stack.push(c);
      const next = links.get(stack.join("/"));
      if (next !== undefined) {
        if (--budget.n < 0) return "loops";
        const r = resolve(stack.slice(0, -1), next, budget);
        if (typeof r === "string") return r;
        stack.splice(0, stack.length, ...r);
      }
    }
    return stack;
  };
  for (const e of entries) {
    const parts = components(e.path);
    const via = linkPrefix(parts);
    if (via) return { path: e.path, why: `would be written through the symlink ${via} in the same archive` };
    if (e.type === "Link") {
      const tvia = linkPrefix(components(e.linkpath ?? ""));
      if (tvia) return { path: e.path, why: `is a hardlink whose target goes through the symlink ${tvia}` };
    }
    if (e.type === "SymbolicLink") {
      const r = resolve(parts.slice(0, -1), e.linkpath ?? "", { n: 64 });
      if (r === "escapes")
        return {
          path: e.path,
          why: `is a symlink that resolves outside the destination through other symlinks (${e.linkpath})`,
        };
      if (r === "loops") return { path: e.path, why: `is part of a symlink loop (${e.linkpath})` };
    }
  }
  return undefined;
}

/**
 * Reads the whole archive once without writing anything and refuses it if any entry is
 * unsafe, naming the entry. Returns the entry count and total file bytes.
 */
export async function validateArchive(src: SourceInfo): Promise<ImportStats> {
  let entries = 0;
  let bytes = 0;
  let problem: PyroError | undefined;
  const seen: ArchiveEntry[] = [];
  const refuse = (path: string, why: string) =>
    new PyroError(
      "seed_rejected",
      `archive ${src.path}: entry ${JSON.stringify(path)} ${why}; nothing was written`,
    );
  const parser = tarList({
    strict: true,
    onReadEntry: (entry) => {
      if (problem) return;
      entries++;
      bytes += entry.size ?? 0;
      const why = entryProblem({ path: entry.path, type: entry.type, linkpath: entry.linkpath });
      if (why) problem = refuse(entry.path, why);
      else if (entries > ARCHIVE_LIMITS.maxEntries)
        problem = new PyroError(
          "seed_rejected",
          `archive ${src.path} has more than ${ARCHIVE_LIMITS.maxEntries} entries`,
        );
      else if (bytes > ARCHIVE_LIMITS.maxBytes)
        problem = new PyroError(
          "seed_rejected",
          `archive ${src.path} holds more than ${ARCHIVE_LIMITS.maxBytes} bytes`,
        );
      else
        seen.push({
          path: entry.path,
          type: entry.type,
          ...(entry.linkpath ? { linkpath: entry.linkpath } : {}),
        });
      entry.resume();
    },
  });
  try {
    await pipeline(createReadStream(src.path), parser as unknown as NodeJS.WritableStream);
  } catch (e) {
    if (problem) throw problem;
    throw new PyroError(
      "seed_rejected",
      `archive ${src.path} is not a readable tar${src.gzip ? ".gz" : ""} file: ${(e as Error).message}`,
    );
  }
  if (problem) throw problem;
  const cross = archiveProblem(seen);
  if (cross) throw refuse(cross.path, cross.why);
  return { entry_count: entries, bytes_written: bytes };
}

/**
 * Counts what a directory import will carry. Symlinks are counted (and later copied) as
 * links, never followed; sockets and devices are refused by name.
 */
export async function scanDirectory(root: string): Promise<ImportStats> {
  let entries = 0;
  let bytes = 0;
  const walk = async (dir: string): Promise<void> => {
    const dirents = await readdir(dir, { withFileTypes: true });
    entries += dirents.length;
    if (entries > ARCHIVE_LIMITS.maxEntries)
      throw new PyroError("seed_rejected", `${root} has more than ${ARCHIVE_LIMITS.maxEntries} entries`);
    // Siblings are stat'ed in parallel: a 1000-file seed is scanned in a few ms, not a few hundred.
    await Promise.all(
      dirents.map(async (d) => {
        const p = join(dir, d.name);
        if (d.isDirectory()) await walk(p);
        else if (d.isFile()) {
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
  await walk(root);
  return { entry_count: entries, bytes_written: bytes };
}

/** Checks a seed or sync source without writing anything; returns what it will bring in. */
export function inspectSource(src: SourceInfo): Promise<ImportStats> {
  return src.kind === "directory" ? scanDirectory(src.path) : validateArchive(src);
}

/**
 * Host-side import into a fresh, empty directory that no sandbox sees yet (workspace
 * create), so no guest can race it. Archives were validated first; node-tar's strict mode
 * is a second line of defence.
 */
export async function importIntoFreshDir(src: SourceInfo, dest: string): Promise<void> {
  if (src.kind === "directory") {
    // GNU cp -a copies symlinks as links (never following them) and is ~20x faster than fs.cp.
    await runChecked("cp", ["-a", "--no-preserve=ownership", "--", `${src.path}/.`, `${dest}/`], {
      timeoutMs: 600_000,
    });
    return;
  }
  await pipeline(
    createReadStream(src.path),
    tarExtract({
      cwd: dest,
      strict: true,
      preservePaths: false,
      preserveOwner: false,
    }) as unknown as NodeJS.WritableStream,
  );
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
