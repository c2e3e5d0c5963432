import { constants } from "node:fs";
import { appendFile, chmod, lstat, mkdir, open, readdir, rename, rm, symlink } from "node:fs/promises";
import { dirname, join, posix, resolve } from "node:path";
import { gunzipSync } from "node:zlib";
import { c as tarCreate } from "tar";
import { PyroError } from "../core/errors.js";
import { type HostPathContext, resolveHostPath } from "../core/host-paths.js";
import { type ExportPolicy, resolveExportTarget } from "../project/export-policy.js";
import { ignore } from "../util/best-effort.js";
import { computeDiff, fetchFiles, parseTar, type TarItem } from "./diff.js";
import { exportNames, recordIntent, recoverExports } from "./export-journal.js";
import { GUEST_EXIT, type Guest, guestRefusal, relToWorkspace, stdoutBytes, workspacePath } from "./guest.js";

/**
 * `workspace export`: a file or tree of /workspace copied back to the host.
 *
 * The guest's own `tar -c` produces the archive (inside the sandbox, where a symlink leads
 * only to guest files); the host never opens a path in /workspace. The host parses the
 * archive itself and writes each entry into a staging directory it has just created, next
 * to the target: files with O_CREAT|O_EXCL|O_NOFOLLOW in directories it made, symlinks only
 * at the end and only when they stay inside the export (others are listed as skipped,
 * never followed or created), set-uid/set-gid bits dropped. The counts are checked against
 * what the guest said it sent; only then is the staging directory renamed onto the target.
 * A partial copy is an error and leaves nothing behind; a killed export is finished or rolled
 * back by the next one or the reaper (export-journal.ts). Over MCP the target is the
 * model's choice within the operator's export policy (export-policy.ts).
 */

export const EXPORT_LIMITS = {
  /** Bytes of archive one export holds in memory. */
  maxBytes: 512 * 1024 * 1024,
  /** Entries listed in `skipped` / `deleted` (the counts are always complete). */
  listMax: 1000,
};

type Format = "directory" | "tar" | "tar.gz";

function formatOf(p: string): Format {
  const n = p.toLowerCase();
  if (n.endsWith(".tar")) return "tar";
  if (n.endsWith(".tar.gz") || n.endsWith(".tgz")) return "tar.gz";
  return "directory";
}

const EXPORT_SCRIPT = `resolve_in "$1"
if [ -d "$r" ]; then
  cd -- "$r" || exit 1
  find . -type f -printf '%s\\n' | awk '{n++; b+=$1} END {printf "PYRO_COUNT %d %d\\n", n, b}' >&2
  exec tar -c --hard-dereference -f - .
elif [ -f "$r" ]; then
  cd -- "\${r%/*}/" || exit 1
  find "./\${r##*/}" -maxdepth 0 -printf 'PYRO_COUNT 1 %s\\n' >&2
  exec tar -c -f - "./\${r##*/}"
else
  fail ${GUEST_EXIT.notRegular} "not a regular file or directory"
fi`;

export interface ExportRecord {
  at: string;
  path: string;
  output: string;
  format: Format;
  changed_only: boolean;
  files: number;
  bytes: number;
}

export async function exportWorkspace(
  g: Guest,
  baselineDir: string,
  exportsLog: string,
  input: {
    path: string;
    output: string;
    force: boolean;
    changed_only: boolean;
    include_ignored?: boolean | undefined;
    exclude?: string[] | undefined;
  },
  ctx: HostPathContext & { signal?: AbortSignal; exportPolicy?: ExportPolicy },
  /** Where intents are recorded (`<state>/export-intents`); none: no crash recovery. */
  journal?: string,
) {
  const path = workspacePath(input.path);
  const scope = relToWorkspace(path);
  const format = formatOf(input.output);
  // An earlier export killed half-way (maybe of this very target) is finished first.
  if (journal) await recoverExports(journal);
  const { target, lexical } = ctx.exportPolicy
    ? await resolveExportTarget(input.output, input.force, ctx.exportPolicy)
    : {
        target: await resolveHostPath(input.output, "output", ctx, { mustExist: false }),
        lexical: resolve(ctx.cwd ?? process.cwd(), input.output),
      };
  await checkTarget(input.output, lexical, target, input.force);

  // 1. The archive, from the guest.
  let items: TarItem[];
  let expected: { files: number; bytes: number } | undefined;
  let deleted: string[] = [];
  let single = false;
  if (input.changed_only) {
    const d = await computeDiff(g, baselineDir, {
      path: input.path,
      text: false,
      maxBytes: 0,
      cursor: 0,
      signal: ctx.signal,
      // What the workspace's .gitignore ignores is not part of the change (diff.ts).
      ignore: { include_ignored: input.include_ignored === true, exclude: input.exclude ?? [] },
    });
    const wanted = d.changes
      .filter((c) => c.status !== "deleted" && c.kind !== "directory")
      .map((c) => c.path);
    deleted = d.changes.filter((c) => c.status === "deleted").map((c) => c.path);
    items = (await fetchFiles(g, wanted, EXPORT_LIMITS.maxBytes, ctx.signal)).map((i) => ({
      ...i,
      path: scope === "." ? i.path : i.path.slice(scope.length + 1),
    }));
    const got = new Set(items.map((i) => i.path));
    const missing = wanted
      .map((w) => (scope === "." ? w : w.slice(scope.length + 1)))
      .filter((w) => !got.has(w));
    if (missing.length)
      throw new PyroError(
        "invalid_state",
        `${missing.length} changed file(s) vanished while exporting (first: ${missing[0]}); nothing was written`,
        "try again once the workspace is quiet",
      );
  } else {
    const out = await g.sh(EXPORT_SCRIPT, [path], {
      maxOutputBytes: EXPORT_LIMITS.maxBytes,
      timeoutMs: 600_000,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    });
    if (out.exitCode !== 0 && out.exitCode !== 1) throw guestRefusal(out, input.path);
    if (out.stdoutTruncated)
      throw new PyroError(
        "invalid_argument",
        `${JSON.stringify(input.path)} is over ${EXPORT_LIMITS.maxBytes} bytes as an archive; nothing was written`,
        "export smaller parts (a subdirectory), or use changed_only",
      );
    const m = /PYRO_COUNT (\d+) (\d+)/.exec(out.stderr);
    if (m) expected = { files: Number(m[1]), bytes: Number(m[2]) };
    items = await parseTar(stdoutBytes(out)).catch((e: Error) => {
      throw new PyroError(
        "engine_failure",
        `the archive from the guest is damaged (${e.message}); nothing was written`,
      );
    });
    single = items.length === 1 && items[0]!.type !== "Directory" && items[0]!.path !== "";
  }

  // 2. Written into a fresh staging directory beside the target, then into place.
  const w = await stageAndPlace(target, items, {
    format,
    single,
    force: input.force,
    keepExec: ctx.exportPolicy ? ctx.exportPolicy.allowExec : true,
    ...(journal ? { journal } : {}),
    check: (w) => {
      if (expected && (expected.files !== w.files || expected.bytes !== w.bytes))
        throw new PyroError(
          "engine_failure",
          `export incomplete: the guest reported ${expected.files} files / ${expected.bytes} bytes, ${w.files} / ${w.bytes} arrived; nothing was written`,
          "try again (files may have changed while exporting)",
        );
    },
  });
  const rec: ExportRecord = {
    at: new Date().toISOString(),
    path: scope,
    output: target,
    format: single && format === "directory" ? "directory" : format,
    changed_only: input.changed_only,
    files: w.files,
    bytes: w.bytes,
  };
  await appendFile(exportsLog, `${JSON.stringify(rec)}\n`).catch(
    ignore("appending to the exports log, which is informational: the export itself succeeded"),
  );
  return {
    workspace_id: g.workspaceId,
    path: scope,
    output: target,
    format: single && format === "directory" ? ("file" as const) : format,
    changed_only: input.changed_only,
    files: w.files,
    bytes: w.bytes,
    directories: w.dirs,
    symlinks: w.links,
    verified: input.changed_only || expected !== undefined,
    skipped: w.skipped.slice(0, EXPORT_LIMITS.listMax),
    skipped_count: w.skipped.length,
    deleted: deleted.slice(0, EXPORT_LIMITS.listMax),
    deleted_count: deleted.length,
    exec_bits_dropped: w.execDropped,
  };
}

/**
 * Writes `items` into a staging directory beside `target` and renames it (or the single
 * file in it, or an archive built from it) onto the target. With a journal, the temporary
 * names are recorded before they exist, so a kill at any moment is repaired later.
 */
async function stageAndPlace(
  target: string,
  items: TarItem[],
  o: {
    format: Format;
    single: boolean;
    force: boolean;
    keepExec: boolean;
    journal?: string;
    check?: (w: Written) => void;
  },
): Promise<Written> {
  await mkdir(dirname(target), { recursive: true });
  const names = exportNames(target);
  const clear = o.journal ? await recordIntent(o.journal, { target, ...names }) : undefined;
  await mkdir(names.staging, { mode: 0o700 });
  try {
    const w = await writeTree(names.staging, items, o.keepExec);
    o.check?.(w);
    if (o.format === "directory") {
      const src = o.single ? join(names.staging, items[0]!.path) : names.staging;
      await replaceTarget(src, target, o.force, names.aside);
    } else {
      const entries = await readdir(names.staging);
      await tarCreate(
        // Not `portable`: that would reset the modes export promises to keep.
        {
          cwd: names.staging,
          file: names.tar,
          gzip: o.format === "tar.gz",
          portable: false,
          follow: false,
        },
        entries,
      );
      await replaceTarget(names.tar, target, o.force, names.aside);
    }
    return w;
  } finally {
    await rm(names.staging, { recursive: true, force: true });
    await rm(names.tar, { force: true });
    // Only once everything is gone: a kill before this leaves the record for recovery.
    await clear?.();
  }
}

async function checkTarget(shown: string, lexical: string, target: string, force: boolean): Promise<void> {
  for (const p of new Set([lexical, target])) {
    const st = await lstat(p).catch(ignore("target does not exist: nothing to check"));
    if (!st) continue;
    if (st.isSymbolicLink())
      throw new PyroError(
        "invalid_argument",
        `output ${shown} is a symlink; pyro never exports through one`,
        "name the real directory or a new path",
      );
    if (st.isDirectory()) {
      if ((await readdir(p)).length === 0) continue;
      if (!force)
        throw new PyroError("invalid_argument", `output ${shown} exists and is not empty`, [
          "name a new path, or replace it with ",
          { option: "force", value: true },
        ]);
    } else if (!force) {
      throw new PyroError("invalid_argument", `output ${shown} already exists`, [
        "name a new path, or replace it with ",
        { option: "force", value: true },
      ]);
    } else if (!st.isFile()) {
      throw new PyroError(
        "invalid_argument",
        `output ${shown} exists and is not a regular file or directory`,
      );
    }
  }
}

/**
 * Renames `src` onto `target`, moving an existing target to `aside` first (force) and
 * removing it after. The aside name is in the export's intent record, so a kill between the
 * two renames is rolled back by recovery: the old output is never left only under it.
 */
async function replaceTarget(src: string, target: string, force: boolean, aside: string): Promise<void> {
  const st = await lstat(target).catch(ignore("target does not exist: the new output is renamed into place"));
  if (!st) {
    await rename(src, target);
    return;
  }
  if (st.isSymbolicLink())
    throw new PyroError("invalid_argument", `output ${target} became a symlink; nothing was written`);
  if (!force && !(st.isDirectory() && (await readdir(target)).length === 0))
    throw new PyroError("invalid_argument", `output ${target} appeared while exporting; nothing was written`);
  await rename(target, aside);
  try {
    await rename(src, target);
  } catch (e) {
    await rename(aside, target).catch(
      ignore("putting the old output back failed: recovery rolls the aside name back from the intent record"),
    );
    throw e;
  }
  await rm(aside, { recursive: true, force: true });
}

/** Why an archive path may not be written, or undefined. */
function unsafePath(p: string): string | undefined {
  if (p === "" || p === ".") return undefined;
  if (p.includes("\0")) return "has a NUL byte";
  if (p.startsWith("/")) return "is absolute";
  if (p.split("/").includes("..")) return "contains ..";
  return undefined;
}

/** A symlink target that stays inside the exported tree (relative, never above its root). */
export function linkStaysInside(linkPath: string, target: string): boolean {
  if (target === "" || target.startsWith("/") || target.includes("\0")) return false;
  const joined = posix.normalize(posix.join(posix.dirname(linkPath), target));
  return joined !== ".." && !joined.startsWith("../");
}

interface Written {
  files: number;
  bytes: number;
  dirs: number;
  links: number;
  skipped: { path: string; reason: string }[];
  /** Files written without the execute bits they had (`keepExec` false). */
  execDropped: number;
}

async function writeTree(root: string, items: TarItem[], keepExec: boolean): Promise<Written> {
  const w: Written = { files: 0, bytes: 0, dirs: 0, links: 0, skipped: [], execDropped: 0 };
  const made = new Set<string>([""]);
  const dirModes: [string, number][] = [];
  const links: TarItem[] = [];
  const ensureDir = async (rel: string): Promise<void> => {
    if (made.has(rel)) return;
    await ensureDir(posix.dirname(rel) === "." ? "" : posix.dirname(rel));
    // mkdir never follows a symlink at the last component, and none exists here yet.
    await mkdir(join(root, rel), { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "EEXIST") throw e;
    });
    const st = await lstat(join(root, rel));
    if (!st.isDirectory())
      throw new PyroError(
        "engine_failure",
        `the archive from the guest puts a directory over the file ${rel}`,
      );
    made.add(rel);
  };
  for (const it of items) {
    const rel = posix.normalize(it.path || ".").replace(/\/$/, "");
    const bad = unsafePath(rel);
    if (bad)
      throw new PyroError(
        "engine_failure",
        `the archive from the guest has an unsafe entry ${JSON.stringify(it.path)} (${bad}); nothing was written`,
      );
    const r = rel === "." ? "" : rel;
    switch (it.type) {
      case "Directory":
        await ensureDir(r);
        dirModes.push([r, it.mode & 0o1777]);
        if (r !== "") w.dirs++;
        break;
      case "File":
      case "OldFile":
      case "ContiguousFile": {
        if (it.data.length !== it.size)
          throw new PyroError(
            "engine_failure",
            `${rel} arrived with ${it.data.length} of ${it.size} bytes; nothing was written`,
          );
        await ensureDir(posix.dirname(r) === "." ? "" : posix.dirname(r));
        const fh = await open(
          join(root, r),
          constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
          0o600,
        );
        try {
          const { bytesWritten } = await fh.write(it.data, 0, it.data.length, 0);
          if (bytesWritten !== it.data.length) throw new PyroError("engine_failure", `short write of ${rel}`);
          // Modes are kept, but never set-uid/set-gid (nor sticky, meaningless on files), and
          // execute bits only where the caller allows them (over MCP: the operator).
          const mode = it.mode & 0o777;
          if (!keepExec && mode & 0o111) w.execDropped++;
          await fh.chmod(keepExec ? mode : mode & 0o666);
        } finally {
          await fh.close();
        }
        w.files++;
        w.bytes += it.data.length;
        break;
      }
      case "SymbolicLink":
        links.push({ ...it, path: r });
        break;
      default:
        w.skipped.push({ path: r, reason: `${it.type} entries are not exported` });
    }
  }
  // Symlinks last, so no write above went through one; only those that stay inside.
  const paths = new Set(items.map((i) => posix.normalize(i.path)));
  for (const l of links) {
    if (!linkStaysInside(l.path, l.linkpath)) {
      w.skipped.push({
        path: l.path,
        reason: `symlink to ${JSON.stringify(l.linkpath)} leaves the export; not created`,
      });
      continue;
    }
    if ([...paths].some((p) => p.startsWith(`${l.path}/`)) || made.has(l.path)) {
      w.skipped.push({ path: l.path, reason: "symlink over a directory of the export; not created" });
      continue;
    }
    await ensureDir(posix.dirname(l.path) === "." ? "" : posix.dirname(l.path));
    await symlink(l.linkpath, join(root, l.path));
    w.links++;
  }
  // The staging directory is made 0700; without a root entry (changed_only) the export's
  // root gets the usual mode for a new directory.
  if (!dirModes.some(([rel]) => rel === "")) dirModes.push(["", 0o777 & ~process.umask()]);
  // Directory modes last (deepest first), so a read-only directory did not block its contents.
  for (const [rel, mode] of dirModes.sort((a, b) => b[0].length - a[0].length)) {
    await chmod(join(root, rel), rel === "" ? (mode | 0o700) & 0o1777 : mode);
  }
  return w;
}

/**
 * The client's half of a remote export (`new Pyro({ url })`, `pyro --remote`): the server
 * exported to an archive and sent it; this writes it to the client's `output` with the same
 * rules as a local export (target checks, strict parse, a fresh staging directory, symlinks
 * only when they stay inside, set-id bits dropped, then one rename into place).
 */
export async function writeExportArchive(
  archive: Buffer,
  output: string,
  force: boolean,
  cwd: string = process.cwd(),
  /** The export's path in the workspace (the result's `path`): a file's export is one item. */
  scope = ".",
  /** Where intents are recorded, as for a local export (export-journal.ts). */
  journal?: string,
): Promise<{ output: string; format: "directory" | "file" | "tar" | "tar.gz" }> {
  const format = formatOf(output);
  const target = resolve(cwd, output);
  await checkTarget(output, target, target, force);
  if (journal) await recoverExports(journal);
  const raw = archive[0] === 0x1f && archive[1] === 0x8b ? gunzipSync(archive) : archive;
  const items = await parseTar(raw).catch((e: Error) => {
    throw new PyroError(
      "engine_failure",
      `the archive from the server is damaged (${e.message}); nothing was written`,
    );
  });
  // The server's archive has no entry for its root, so a directory holding one file looks
  // like a file's export: only the scope's own name tells them apart.
  const single =
    scope !== "." &&
    items.length === 1 &&
    items[0]!.type !== "Directory" &&
    posix.basename(items[0]!.path) === posix.basename(scope);
  await stageAndPlace(target, items, {
    format,
    single,
    force,
    keepExec: true,
    ...(journal ? { journal } : {}),
  });
  return { output: target, format: single && format === "directory" ? "file" : format };
}

/** The local export's target checks, for a remote export to run before asking the server. */
export async function checkExportTarget(
  output: string,
  force: boolean,
  cwd: string = process.cwd(),
): Promise<void> {
  const target = resolve(cwd, output);
  await checkTarget(output, target, target, force);
}
