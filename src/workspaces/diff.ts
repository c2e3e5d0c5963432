import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { lstat, open, readdir, readlink } from "node:fs/promises";
import { join, posix } from "node:path";
import { Parser } from "tar";
import { DIFF_LIMITS } from "../contract/defaults.js";
import { PyroError } from "../core/errors.js";
import { ignore } from "../util/best-effort.js";
import { IgnoreRules } from "../util/gitignore.js";
import { runCapture } from "../util/proc.js";
import { baselineRecordedAt } from "./baseline.js";
import { isText, parseFindEntries } from "./files.js";
import { type Guest, relToWorkspace, stdoutBytes, workspacePath } from "./guest.js";

/**
 * `workspace diff`: /workspace now against the baseline (the seeded tree, kept on the host
 * in the workspace's `baseline/` directory where no guest can reach it).
 *
 * 1. The guest lists /workspace once (`find -printf`: type, mode, size, mtime, link target).
 * 2. The host walks the baseline (lstat, never following a link).
 * 3. Same type, mode, size and mtime (whole seconds: what a tar copy keeps) means unchanged,
 *    rsync's quick check, for files last modified before the second the baseline was
 *    recorded (later ones could have changed within the same second); anything else is a candidate, and candidates that are regular
 *    files come back from the guest in one `tar -c` to be compared byte for byte and
 *    diffed with the host's `diff -u` against the baseline copy.
 * So a diff costs two execs whatever the tree's size, plus one host `diff` per changed text file.
 */

export type Kind = "file" | "directory" | "symlink" | "other";

export interface TreeEntry {
  kind: Kind;
  mode: number;
  size: number;
  mtimeSec: number;
  link: string | null;
}

/** The baseline's entries (relative paths), walked without following symlinks. */
export async function walkBaseline(root: string): Promise<Map<string, TreeEntry>> {
  const out = new Map<string, TreeEntry>();
  const walk = async (dir: string, rel: string): Promise<void> => {
    const names = await readdir(dir).catch((e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT" && rel === "") return [] as string[];
      throw e;
    });
    for (const n of names) {
      const p = join(dir, n);
      const r = rel ? `${rel}/${n}` : n;
      const st = await lstat(p);
      const kind: Kind = st.isFile()
        ? "file"
        : st.isDirectory()
          ? "directory"
          : st.isSymbolicLink()
            ? "symlink"
            : "other";
      out.set(r, {
        kind,
        mode: st.mode & 0o7777,
        size: st.size,
        mtimeSec: Math.floor(st.mtimeMs / 1000),
        link: kind === "symlink" ? await readlink(p) : null,
      });
      if (kind === "directory") await walk(p, r);
    }
  };
  await walk(root, "");
  return out;
}

const MANIFEST_SCRIPT = `cd "$W" || exit 1; find . -mindepth 1 ! -name '.pyro-write.*' -printf '%y\\0%m\\0%s\\0%T@\\0%P\\0%l\\0'`;

export async function guestManifest(g: Guest, signal?: AbortSignal): Promise<Map<string, TreeEntry>> {
  const out = await g.sh(MANIFEST_SCRIPT, [], {
    maxOutputBytes: 256 * 1024 * 1024,
    ...(signal ? { signal } : {}),
  });
  if (out.exitCode !== 0 || out.stdoutTruncated)
    throw new PyroError(
      "engine_failure",
      `listing /workspace failed in the guest: ${out.stderr.trim().slice(0, 300)}`,
    );
  const m = new Map<string, TreeEntry>();
  for (const e of parseFindEntries(stdoutBytes(out), ".")) {
    m.set(e.path, {
      kind: e.type,
      mode: Number.parseInt(e.mode, 8),
      size: e.size,
      mtimeSec: Math.floor(Date.parse(e.mtime) / 1000),
      link: e.link_target,
    });
  }
  return m;
}

export interface TarItem {
  path: string;
  type: string;
  mode: number;
  size: number;
  linkpath: string;
  data: Buffer;
}

/** Parses a tar the guest produced, strictly: a truncated or malformed stream is an error. */
export function parseTar(buf: Buffer): Promise<TarItem[]> {
  return new Promise((resolve, reject) => {
    const items: TarItem[] = [];
    let failed = false;
    const p = new Parser({
      strict: true,
      onwarn: (_code: string, msg: string | Error) => {
        failed = true;
        reject(new Error(typeof msg === "string" ? msg : msg.message));
      },
    });
    p.on("entry", (e) => {
      const chunks: Buffer[] = [];
      e.on("data", (c: Buffer) => chunks.push(c));
      e.on("end", () =>
        items.push({
          path: e.path.replace(/^\.\//, "").replace(/\/$/, ""),
          type: e.type,
          mode: e.mode ?? 0o644,
          size: e.size ?? 0,
          linkpath: e.linkpath ?? "",
          data: Buffer.concat(chunks),
        }),
      );
    });
    p.on("error", (e: Error) => {
      failed = true;
      reject(e);
    });
    p.on("end", () => {
      if (!failed) resolve(items);
    });
    p.end(buf);
  });
}

/** tar of the named paths (relative to /workspace, no recursion), NUL-separated on stdin. */
const TAR_LIST_SCRIPT = `cd "$W" || exit 1; tar -c --null --no-recursion --hard-dereference --no-wildcards -T - -f -`;

export async function fetchFiles(
  g: Guest,
  rels: string[],
  maxBytes: number,
  signal?: AbortSignal,
): Promise<TarItem[]> {
  if (rels.length === 0) return [];
  const out = await g.sh(TAR_LIST_SCRIPT, [], {
    stdin: Buffer.from(rels.map((r) => `./${r}\0`).join("")),
    maxOutputBytes: maxBytes,
    timeoutMs: 300_000,
    ...(signal ? { signal } : {}),
  });
  if (out.stdoutTruncated)
    throw new PyroError(
      "invalid_argument",
      `the files to copy out are over ${maxBytes} bytes`,
      "name a smaller path",
    );
  // tar exits 1 when a file changed while it was read, 2 on a real failure
  if (out.exitCode !== 0 && out.exitCode !== 1)
    throw new PyroError(
      "engine_failure",
      `reading files from the guest failed: ${out.stderr.trim().slice(-300)}`,
    );
  return parseTar(stdoutBytes(out));
}

export type Status = "added" | "modified" | "deleted" | "type_changed";

export interface Change {
  path: string;
  status: Status;
  kind: Kind;
  old_kind: Kind | null;
  binary: boolean;
  old_mode: string | null;
  new_mode: string | null;
  link_target: string | null;
  lines_added: number;
  lines_removed: number;
}

const octal = (m: number) => (m & 0o7777).toString(8).padStart(3, "0");
const gitMode = (k: Kind, m: number) => (k === "symlink" ? "120000" : `100${octal(m & 0o777)}`);

/** A change worth showing: directories only count when they appear, vanish or change type. */
function compare(
  racySec: number,
  a: TreeEntry | undefined,
  b: TreeEntry | undefined,
): { status: Status; candidate: boolean } | undefined {
  if (!a && b) return b.kind === "directory" ? undefined : { status: "added", candidate: false };
  if (a && !b) return a.kind === "directory" ? undefined : { status: "deleted", candidate: false };
  if (!a || !b) return undefined;
  if (a.kind !== b.kind) return { status: "type_changed", candidate: false };
  if (a.kind === "directory") return undefined;
  if (a.kind === "symlink") return a.link !== b.link ? { status: "modified", candidate: false } : undefined;
  if (a.kind !== "file") return undefined;
  const modeChanged = (a.mode & 0o777) !== (b.mode & 0o777);
  if (a.size !== b.size) return { status: "modified", candidate: false };
  if (a.mtimeSec === b.mtimeSec && a.mtimeSec < racySec)
    return modeChanged ? { status: "modified", candidate: false } : undefined;
  return { status: "modified", candidate: !modeChanged };
}

async function readBaselineFile(root: string, rel: string, max: number): Promise<Buffer> {
  // The walk saw every parent as a directory and the baseline is pyro's own: O_NOFOLLOW
  // guards the last component anyway.
  const fh = await open(join(root, rel), constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const st = await fh.stat();
    const buf = Buffer.alloc(Math.min(st.size, max));
    await fh.read(buf, 0, buf.length, 0);
    return buf;
  } finally {
    await fh.close();
  }
}

async function unifiedDiff(
  oldLabel: string,
  newLabel: string,
  oldFile: string,
  newData: Buffer | null,
): Promise<string> {
  const r = await runCapture(
    "diff",
    ["-u", "--label", oldLabel, "--label", newLabel, "--", oldFile, newData ? "-" : "/dev/null"],
    { ...(newData ? { stdin: newData } : {}), maxOutputBytes: 64 * 1024 * 1024, timeoutMs: 60_000 },
  ).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT")
      throw new PyroError(
        "host_dependency_missing",
        "the host has no `diff` program",
        "install diffutils on the host",
      );
    throw e;
  });
  if (r.exitCode !== 0 && r.exitCode !== 1)
    throw new PyroError("engine_failure", `diff failed: ${r.stderr.trim()}`);
  return r.stdout;
}

/**
 * What a diff leaves out: by default what the workspace's own `.gitignore` files ignore (the
 * `__pycache__/` its tests made is not a change anyone wants to review or export), plus
 * `exclude` (gitignore patterns relative to /workspace); `include_ignored` keeps only those.
 */
export interface IgnoreOptions {
  include_ignored: boolean;
  exclude: string[];
}

/** .gitignore files larger than this are not read (git itself has a 100 MiB cap). */
const GITIGNORE_MAX_BYTES = 1024 * 1024;

/**
 * The rules of the workspace's .gitignore files (those listed in `cur`) and `exclude`. The
 * files come back in one guest `tar`, and only when there are any: a workspace without one
 * pays nothing.
 */
async function ignoreRules(
  g: Guest,
  cur: Map<string, TreeEntry>,
  o: IgnoreOptions,
  signal?: AbortSignal,
): Promise<IgnoreRules> {
  const wanted = o.include_ignored
    ? []
    : [...cur]
        .filter(
          ([p, e]) =>
            e.kind === "file" &&
            e.size <= GITIGNORE_MAX_BYTES &&
            (p === ".gitignore" || p.endsWith("/.gitignore")),
        )
        .map(([p]) => p);
  const items = await fetchFiles(g, wanted, wanted.length * GITIGNORE_MAX_BYTES + 1024 * 1024, signal);
  const files = items
    .filter((i) => i.type === "File" || i.type === "OldFile")
    .map((i) => ({
      dir: posix.dirname(i.path) === "." ? "" : posix.dirname(i.path),
      text: i.data.toString("utf8"),
    }));
  return new IgnoreRules(files, o.exclude);
}

export interface DiffOptions {
  path: string;
  /** Left out of the diff; default: the workspace's .gitignore files, no excludes. */
  ignore?: IgnoreOptions | undefined;
  /** Produce patch text (false for --stat / --name-only / export). */
  text: boolean;
  maxBytes: number;
  cursor: number;
  signal?: AbortSignal | undefined;
}

export interface DiffComputation {
  changes: Change[];
  /** Patch text per change index (when text). */
  patches: string[];
  /** Current guest contents of changed regular files that were fetched. */
  contents: Map<string, TarItem>;
}

/** Compares /workspace (or PATH under it) with the baseline. */
export async function computeDiff(
  g: Guest,
  baselineDir: string,
  opts: DiffOptions,
): Promise<DiffComputation> {
  const scope = relToWorkspace(workspacePath(opts.path));
  const within = (p: string) => scope === "." || p === scope || p.startsWith(`${scope}/`);
  const [base, cur, recordedAt] = await Promise.all([
    walkBaseline(baselineDir),
    guestManifest(g, opts.signal),
    baselineRecordedAt(baselineDir),
  ]);
  const racySec = Math.floor(recordedAt / 1000);
  const rules = await ignoreRules(
    g,
    cur,
    opts.ignore ?? { include_ignored: false, exclude: [] },
    opts.signal,
  );
  const kept = (p: string) => {
    if (rules.empty) return true;
    const e = cur.get(p) ?? base.get(p);
    return !rules.ignores(p, e?.kind === "directory");
  };
  const paths = [...new Set([...base.keys(), ...cur.keys()])].filter((p) => within(p) && kept(p)).sort();
  const pending: { path: string; status: Status; candidate: boolean }[] = [];
  for (const p of paths) {
    const c = compare(racySec, base.get(p), cur.get(p));
    if (c) pending.push({ path: p, ...c });
  }
  // Every changed or candidate regular file (within the text limit) comes back in one tar.
  const want = pending
    .filter((c) => {
      const e = cur.get(c.path);
      return e?.kind === "file" && (c.candidate || opts.text) && e.size <= DIFF_LIMITS.textMaxBytes;
    })
    .map((c) => c.path);
  const items = await fetchFiles(g, want, DIFF_LIMITS.fetchMaxBytes, opts.signal);
  const contents = new Map(
    items.filter((i) => i.type === "File" || i.type === "OldFile").map((i) => [i.path, i]),
  );
  // Same-size candidates too large to fetch are compared by hash in the guest.
  const bigCandidates = pending.filter(
    (c) => c.candidate && (cur.get(c.path)?.size ?? 0) > DIFF_LIMITS.textMaxBytes,
  );
  const guestHashes = await hashInGuest(
    g,
    bigCandidates.map((c) => c.path),
    opts.signal,
  );

  const changes: Change[] = [];
  const patches: string[] = [];
  for (const c of pending) {
    const a = base.get(c.path);
    const b = cur.get(c.path);
    let oldData: Buffer | null = null;
    let newData: Buffer | null = null;
    const textable = (e: TreeEntry | undefined) => e?.kind === "file" && e.size <= DIFF_LIMITS.textMaxBytes;
    if (a && textable(a) && (c.candidate || opts.text))
      oldData = await readBaselineFile(baselineDir, c.path, DIFF_LIMITS.textMaxBytes);
    if (b && textable(b)) newData = contents.get(c.path)?.data ?? null;
    if (c.candidate) {
      const same =
        newData && oldData
          ? newData.equals(oldData)
          : guestHashes.get(c.path) === (await hashBaseline(baselineDir, c.path));
      if (same) continue;
    }
    const binary =
      (oldData !== null && !isText(oldData)) ||
      (newData !== null && !isText(newData)) ||
      (a?.kind === "file" && !textable(a)) ||
      (b?.kind === "file" && !textable(b));
    const ch: Change = {
      path: c.path,
      status: c.status,
      kind: b?.kind ?? a!.kind,
      old_kind: a?.kind ?? null,
      binary,
      old_mode: a && a.kind !== "directory" ? octal(a.mode) : null,
      new_mode: b && b.kind !== "directory" ? octal(b.mode) : null,
      link_target: b?.kind === "symlink" ? b.link : null,
      lines_added: 0,
      lines_removed: 0,
    };
    let text = "";
    const textual = !binary && (a?.kind ?? "file") === "file" && (b?.kind ?? "file") === "file";
    if (opts.text) {
      text = `diff --git a/${c.path} b/${c.path}\n`;
      if (!a) text += `new file mode ${gitMode(b!.kind, b!.mode)}\n`;
      else if (!b) text += `deleted file mode ${gitMode(a.kind, a.mode)}\n`;
      else if (a.kind !== b.kind || (a.mode & 0o777) !== (b.mode & 0o777))
        text += `old mode ${gitMode(a.kind, a.mode)}\nnew mode ${gitMode(b.kind, b.mode)}\n`;
      if (textual && (oldData !== null || !a) && (newData !== null || !b)) {
        const body = await unifiedDiff(
          a ? `a/${c.path}` : "/dev/null",
          b ? `b/${c.path}` : "/dev/null",
          a ? join(baselineDir, c.path) : "/dev/null",
          b ? (newData ?? Buffer.alloc(0)) : null,
        );
        for (const l of body.split("\n")) {
          if (l.startsWith("+") && !l.startsWith("+++ ")) ch.lines_added++;
          else if (l.startsWith("-") && !l.startsWith("--- ")) ch.lines_removed++;
        }
        text += body;
      } else if (a?.kind === "symlink" || b?.kind === "symlink") {
        text += `symlink: ${a?.link ?? "(none)"} -> ${b?.link ?? "(none)"}\n`;
      } else if (binary) {
        text += `Binary files ${a ? `a/${c.path}` : "/dev/null"} and ${b ? `b/${c.path}` : "/dev/null"} differ\n`;
      }
    }
    changes.push(ch);
    patches.push(text);
  }
  return { changes, patches, contents };
}

const HASH_SCRIPT = `cd "$W" || exit 1; for f; do s=$(sha256sum < "$f") && printf '%s\\0%s\\0' "\${s%% *}" "$f"; done`;

async function hashInGuest(g: Guest, rels: string[], signal?: AbortSignal): Promise<Map<string, string>> {
  const m = new Map<string, string>();
  if (rels.length === 0) return m;
  const out = await g.sh(
    HASH_SCRIPT,
    rels.map((r) => `./${r}`),
    { timeoutMs: 300_000, ...(signal ? { signal } : {}) },
  );
  const parts = out.stdout.split("\0");
  for (let i = 0; i + 1 < parts.length; i += 2) m.set(parts[i + 1]!.replace(/^\.\//, ""), parts[i]!);
  return m;
}

async function hashBaseline(root: string, rel: string): Promise<string> {
  const fh = await open(join(root, rel), constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const h = createHash("sha256");
    for await (const chunk of fh.createReadStream()) h.update(chunk as Buffer);
    return h.digest("hex");
  } finally {
    await fh.close().catch(ignore("closing a read-only file after hashing: the hash stands"));
  }
}

/** The public result of `workspace diff`, bounded: patch text from `cursor`, at most maxBytes. */
export async function diffWorkspace(
  g: Guest,
  baselineDir: string,
  input: {
    path: string;
    stat: boolean;
    name_only: boolean;
    max_bytes: number;
    cursor: number;
    include_ignored?: boolean | undefined;
    exclude?: string[] | undefined;
  },
  signal?: AbortSignal,
) {
  const text = !input.stat && !input.name_only;
  const d = await computeDiff(g, baselineDir, {
    path: input.path,
    ignore: { include_ignored: input.include_ignored === true, exclude: input.exclude ?? [] },
    text: !input.name_only,
    maxBytes: input.max_bytes,
    cursor: input.cursor,
    signal,
  });
  let patch = "";
  let next: number | null = null;
  if (text) {
    for (let i = input.cursor; i < d.patches.length; i++) {
      const piece = d.patches[i]!;
      if (patch.length > 0 && Buffer.byteLength(patch) + Buffer.byteLength(piece) > input.max_bytes) {
        next = i;
        break;
      }
      if (patch.length === 0 && Buffer.byteLength(piece) > input.max_bytes) {
        // One file's diff alone is over the budget: cut it at a line and say so.
        const cut = Buffer.from(piece).subarray(0, input.max_bytes);
        patch = `${cut.subarray(0, Math.max(cut.lastIndexOf(0x0a) + 1, 0)).toString("utf8")}[pyro: the diff of ${d.changes[i]!.path} is cut at ${input.max_bytes} bytes; use workspace_file_read or raise max_bytes]\n`;
        next = i + 1 < d.patches.length ? i + 1 : null;
        break;
      }
      patch += piece;
    }
  }
  const count = (s: Status) => d.changes.filter((c) => c.status === s).length;
  const files =
    input.name_only || input.stat || d.changes.length <= DIFF_LIMITS.filesMax
      ? d.changes
      : d.changes.slice(0, DIFF_LIMITS.filesMax);
  return {
    workspace_id: g.workspaceId,
    path: relToWorkspace(workspacePath(input.path)),
    changed: d.changes.length > 0,
    counts: {
      files: d.changes.length,
      added: count("added"),
      modified: count("modified"),
      deleted: count("deleted"),
      type_changed: count("type_changed"),
      lines_added: d.changes.reduce((n, c) => n + c.lines_added, 0),
      lines_removed: d.changes.reduce((n, c) => n + c.lines_removed, 0),
    },
    files: files.slice(0, DIFF_LIMITS.filesMax),
    files_truncated: d.changes.length > DIFF_LIMITS.filesMax,
    patch: text ? patch : null,
    truncated: next !== null,
    next_cursor: next,
  };
}
