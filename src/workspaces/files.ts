import { createHash } from "node:crypto";
import { posix } from "node:path";
import { FILE_LIMITS } from "../contract/defaults.js";
import { PyroError } from "../core/errors.js";
import { ignore } from "../util/best-effort.js";
import {
  GUEST_EXIT,
  type Guest,
  guestRefusal,
  relToWorkspace,
  stdoutBytes,
  WORKSPACE,
  workspacePath,
} from "./guest.js";

/**
 * workspace file list/read/write/edit: each one exec of a small script in the guest
 * (see guest.ts for why inside). Contents travel as raw bytes: stdin in, stdout out.
 */

export interface FileEntry {
  path: string;
  type: "file" | "directory" | "symlink" | "other";
  size: number;
  mode: string;
  mtime: string;
  link_target: string | null;
}

const TYPE: Record<string, FileEntry["type"]> = { f: "file", d: "directory", l: "symlink" };

/** Parses `find -printf '%y\0%m\0%s\0%T@\0%P\0%l\0'` output (fields are NUL-separated). */
export function parseFindEntries(buf: Buffer, prefix: string): FileEntry[] {
  const parts = buf.toString("utf8").split("\0");
  const out: FileEntry[] = [];
  for (let i = 0; i + 5 < parts.length; i += 6) {
    const [y, m, s, t, p, l] = parts.slice(i, i + 6) as [string, string, string, string, string, string];
    const secs = Number(t);
    out.push({
      path: prefix === "." ? p : p === "" ? prefix : posix.join(prefix, p),
      type: TYPE[y] ?? "other",
      size: Number(s) || 0,
      mode: m.padStart(4, "0"),
      mtime: Number.isFinite(secs) ? new Date(Math.round(secs * 1000)).toISOString() : "",
      link_target: y === "l" ? l : null,
    });
  }
  return out;
}

const FIND_FMT = "%y\\0%m\\0%s\\0%T@\\0%P\\0%l\\0";

const LIST_SCRIPT = `rec=$2 max=$3
resolve_in "$1"
if [ -d "$r" ]; then
  cd -- "$r" || exit 1
  printf 'D%s\\0' "$r"
  if [ "$rec" = 1 ]; then find . -mindepth 1 -printf '${FIND_FMT}'; else find . -mindepth 1 -maxdepth 1 -printf '${FIND_FMT}'; fi | head -z -n $(( (max + 1) * 6 ))
else
  cd -- "\${r%/*}/" || exit 1
  printf 'F%s\\0' "$r"
  find "./\${r##*/}" -maxdepth 0 -printf '${FIND_FMT}'
fi`;

export async function listFiles(
  g: Guest,
  input: { path: string; recursive: boolean; max_entries: number },
  signal?: AbortSignal,
) {
  const path = workspacePath(input.path);
  const out = await g.sh(LIST_SCRIPT, [path, input.recursive ? "1" : "0", String(input.max_entries)], {
    maxOutputBytes: 64 * 1024 * 1024,
    ...(signal ? { signal } : {}),
  });
  if (out.exitCode !== 0) throw guestRefusal(out, input.path);
  const buf = stdoutBytes(out);
  const nul = buf.indexOf(0);
  const head = buf.subarray(0, nul).toString("utf8");
  const real = head.slice(1);
  let entries = parseFindEntries(buf.subarray(nul + 1), ".");
  if (head[0] === "F") entries = entries.map((e) => ({ ...e, path: relToWorkspace(real) }));
  else {
    const base = relToWorkspace(real);
    entries = entries.map((e) => ({ ...e, path: base === "." ? e.path : posix.join(base, e.path) }));
  }
  const truncated = entries.length > input.max_entries || out.stdoutTruncated;
  entries = entries
    .slice(0, input.max_entries)
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return {
    workspace_id: g.workspaceId,
    path: relToWorkspace(path),
    entries,
    count: entries.length,
    truncated,
  };
}

const READ_SCRIPT = `max=$2 off=$3 lim=$4
resolve_in "$1"
[ -d "$r" ] && fail ${GUEST_EXIT.isDir} "is a directory"
[ -f "$r" ] || fail ${GUEST_EXIT.notRegular} "$(stat -c %F -- "$r" 2>/dev/null)"
if [ "$off" -gt 1 ] || [ "$lim" -gt 0 ]; then
  if [ "$lim" -gt 0 ]; then tail -n +"$off" -- "$r" | head -n $(( lim + 1 )) | head -c $(( max + 1 ))
  else tail -n +"$off" -- "$r" | head -c $(( max + 1 )); fi
else
  exec head -c $(( max + 1 )) -- "$r"
fi`;

const SIZE_SCRIPT = `resolve_in "$1"; stat -c %s -- "$r"`;

/** Whether bytes are text we can return as a string: valid UTF-8 without NUL bytes. */
export function isText(b: Buffer): boolean {
  if (b.includes(0)) return false;
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
}

export async function readFileBytes(
  g: Guest,
  path: string,
  max: number,
  field = "path",
  shown = path,
  signal?: AbortSignal,
): Promise<Buffer> {
  const out =
    (await g.readPlain(path, max, signal)) ??
    (await g.sh(READ_SCRIPT, [path, String(max), "1", "0"], {
      maxOutputBytes: max + 1,
      ...(signal ? { signal } : {}),
    }));
  if (out.exitCode !== 0) throw guestRefusal(out, shown, field);
  const b = stdoutBytes(out);
  if (b.length > max) throw await tooLarge(g, path, shown, max, field);
  return b;
}

async function tooLarge(
  g: Guest,
  path: string,
  shown: string,
  max: number,
  field: string,
): Promise<PyroError> {
  const s = await g
    .sh(SIZE_SCRIPT, [path])
    .catch(ignore("sizing a too-large file for the error message: the error is given without the size"));
  const size = s && s.exitCode === 0 ? Number(s.stdout.trim()) : undefined;
  return new PyroError(
    "invalid_argument",
    `${field} ${JSON.stringify(shown)} is ${size !== undefined ? `${size} bytes` : "larger than the budget"}, over the read budget of ${max} bytes`,
    [
      "read part of it with ",
      { option: "offset", value: 1 },
      " and ",
      { option: "limit", value: 200 },
      ` (lines), or raise max_bytes (up to ${FILE_LIMITS.readMax})`,
    ],
  );
}

export async function readFile(
  g: Guest,
  input: {
    path: string;
    max_bytes: number;
    offset?: number | undefined;
    limit?: number | undefined;
    encoding: "utf-8" | "base64";
  },
  signal?: AbortSignal,
) {
  const path = workspacePath(input.path);
  const offset = input.offset ?? 1;
  const limit = input.limit ?? 0;
  const partial = input.offset !== undefined || input.limit !== undefined;
  const out =
    (!partial ? await g.readPlain(path, input.max_bytes, signal) : undefined) ??
    (await g.sh(READ_SCRIPT, [path, String(input.max_bytes), String(offset), String(limit)], {
      maxOutputBytes: input.max_bytes + 1,
      ...(signal ? { signal } : {}),
    }));
  if (out.exitCode !== 0) throw guestRefusal(out, input.path);
  let b = stdoutBytes(out);
  let truncated = false;
  let more = false;
  if (b.length > input.max_bytes) {
    if (!partial) throw await tooLarge(g, path, input.path, input.max_bytes, "path");
    // Cut at the last whole line that fits; the next read starts after it.
    const cut = b.subarray(0, input.max_bytes).lastIndexOf(0x0a);
    b = b.subarray(0, cut >= 0 ? cut + 1 : input.max_bytes);
    truncated = true;
    more = true;
  }
  let lines = countLines(b);
  if (limit > 0 && !truncated && lines > limit) {
    // The script asked for one line more than the limit, to tell whether more follow.
    b = b.subarray(0, nthNewline(b, limit) + 1);
    lines = limit;
    more = true;
  }
  const text = isText(b);
  if (!text && input.encoding !== "base64") {
    throw new PyroError("invalid_argument", `${JSON.stringify(input.path)} is binary (not UTF-8 text)`, [
      "read it as base64 with ",
      { option: "encoding", value: "base64" },
    ]);
  }
  return {
    workspace_id: g.workspaceId,
    path: relToWorkspace(path),
    encoding: input.encoding,
    content: input.encoding === "base64" ? b.toString("base64") : b.toString("utf8"),
    bytes: b.length,
    binary: !text,
    offset,
    lines,
    truncated,
    next_offset: more ? offset + lines : null,
  };
}

function countLines(b: Buffer): number {
  let n = 0;
  for (let i = b.indexOf(0x0a); i >= 0; i = b.indexOf(0x0a, i + 1)) n++;
  return b.length > 0 && b[b.length - 1] !== 0x0a ? n + 1 : n;
}

function nthNewline(b: Buffer, n: number): number {
  let i = -1;
  for (let k = 0; k < n; k++) {
    i = b.indexOf(0x0a, i + 1);
    if (i < 0) return b.length - 1;
  }
  return i;
}

/**
 * Writes stdin to PATH atomically: a temporary file in the same directory, then rename
 * (which replaces a symlink at PATH rather than following it). Parents are created only
 * after the deepest existing one was found to be inside /workspace, so a symlink cannot
 * steer `mkdir -p` out of it. $2 mode ('' = keep the old file's, else 644), $3 create
 * parents, $4 the sha256 the current content must have ('' = any), $5 stage only (print
 * the temporary and final paths, rename later: patch apply).
 */
const WRITE_SCRIPT = `p=$1 d=\${1%/*} b=\${1##*/} mode=$2 mk=$3 want=$4 stage=$5
[ -n "$b" ] && [ "$b" != . ] && [ "$b" != .. ] || fail ${GUEST_EXIT.isDir} "names a directory"
enter_dir "$d" "$mk"
[ -d "$b" ] && [ ! -L "$b" ] && fail ${GUEST_EXIT.isDir} "is a directory"
if [ -n "$want" ]; then
  [ -f "$b" ] || fail ${GUEST_EXIT.changed} "it is gone"
  s=$(sha256sum < "$b"); [ "\${s%% *}" = "$want" ] || fail ${GUEST_EXIT.changed} "its content differs"
fi
t=.pyro-write.$$
rm -f -- "$t"
(umask 077; cat > "$t") || { rm -f -- "$t"; fail 1 "writing failed"; }
if [ -z "$mode" ]; then if [ -f "$b" ] && [ ! -L "$b" ]; then mode=$(stat -c %a -- "$b"); else mode=644; fi; fi
chmod "$mode" -- "$t" || { rm -f -- "$t"; fail 1 "chmod failed"; }
if [ "$stage" = 1 ]; then printf '%s/%s\\0%s/%s\\0' "$here" "$t" "$here" "$b"; exit 0; fi
mv -fT -- "$t" "$b" || { rm -f -- "$t"; fail 1 "rename failed"; }`;

export interface WriteOptions {
  mode?: string | undefined;
  createParents?: boolean;
  expectSha256?: string;
  signal?: AbortSignal | undefined;
}

export async function writeFileBytes(
  g: Guest,
  path: string,
  data: Buffer,
  opts: WriteOptions & { stage?: boolean },
  shown = path,
): Promise<{ tmp: string; target: string } | undefined> {
  const out = await g.sh(
    WRITE_SCRIPT,
    [
      path,
      opts.mode ?? "",
      opts.createParents === false ? "0" : "1",
      opts.expectSha256 ?? "",
      opts.stage ? "1" : "0",
    ],
    { stdin: data, ...(opts.signal ? { signal: opts.signal } : {}) },
  );
  if (out.exitCode !== 0) throw guestRefusal(out, shown);
  if (!opts.stage) return undefined;
  const [tmp, target] = stdoutBytes(out).toString("utf8").split("\0");
  return { tmp: tmp ?? "", target: target ?? "" };
}

/**
 * sync push's destination directory, made inside the sandbox the way a write makes its
 * parent (enter_dir): a guest symlink that leads out of /workspace (`out -> /etc`) is
 * refused like the file tools refuse it, and a dangling one is named, rather than the
 * archive landing in the guest's /etc while the result says /workspace/out. Returns the
 * directory's real location, which the engine then unpacks into.
 */
const PUSH_DEST_SCRIPT = `enter_dir "$1" 1; printf '%s' "$here"`;

export async function pushDestination(g: Guest, dest: string, signal?: AbortSignal): Promise<string> {
  const out = await g.sh(PUSH_DEST_SCRIPT, [dest], signal ? { signal } : {});
  if (out.exitCode === GUEST_EXIT.missing) {
    const detail = out.stderr.trim().split("\n").slice(-1)[0] ?? "";
    throw new PyroError(
      "invalid_argument",
      `dest ${JSON.stringify(dest)} cannot be created: ${detail}`,
      "remove or replace that symlink in the workspace, or push to another --dest",
    );
  }
  if (out.exitCode !== 0) throw guestRefusal(out, dest, "dest");
  const real = stdoutBytes(out).toString("utf8");
  if (real !== WORKSPACE && !real.startsWith(`${WORKSPACE}/`))
    throw new PyroError(
      "engine_failure",
      `resolving dest ${JSON.stringify(dest)} gave ${JSON.stringify(real)}`,
    );
  return real;
}

/** A file mode as the CLI and tools take it: octal digits, no set-id or sticky bits. */
export function checkMode(mode: string | undefined): string | undefined {
  if (mode === undefined) return undefined;
  if (/^[1-7][0-7]{3}$/.test(mode))
    throw new PyroError(
      "invalid_argument",
      `mode ${JSON.stringify(mode)} has set-uid, set-gid or sticky bits, which pyro never sets`,
      `pass the permission bits only, e.g. ${mode.slice(1)}`,
    );
  if (!/^0?[0-7]{3}$/.test(mode))
    throw new PyroError(
      "invalid_argument",
      `mode ${JSON.stringify(mode)} is not an octal file mode like 644 or 0755`,
      "set-uid, set-gid and sticky bits are not accepted",
    );
  return mode.replace(/^0(?=[0-7]{3}$)/, "");
}

export async function writeFile(
  g: Guest,
  input: {
    path: string;
    content: string;
    encoding: "utf-8" | "base64";
    mode?: string | undefined;
    create_parents: boolean;
  },
  signal?: AbortSignal,
) {
  const path = workspacePath(input.path);
  const data =
    input.encoding === "base64" ? Buffer.from(input.content, "base64") : Buffer.from(input.content, "utf8");
  if (data.length > FILE_LIMITS.writeMax)
    throw new PyroError(
      "invalid_argument",
      `content is ${data.length} bytes, over the ${FILE_LIMITS.writeMax}-byte limit of one write`,
      ["copy large files in with ", { op: "workspace_sync_push" }],
    );
  await writeFileBytes(
    g,
    path,
    data,
    {
      mode: checkMode(input.mode),
      createParents: input.create_parents,
      signal,
    },
    input.path,
  );
  return { workspace_id: g.workspaceId, path: relToWorkspace(path), bytes_written: data.length };
}

/** How often `needle` occurs in `hay` (non-overlapping). */
export function occurrences(hay: string, needle: string): number {
  let n = 0;
  for (let i = hay.indexOf(needle); i >= 0; i = hay.indexOf(needle, i + needle.length)) n++;
  return n;
}

/**
 * Exact-string replacement, the way agents' edit tools work: old_string must occur exactly
 * once (or replace_all); the write is refused if the file changed since it was read.
 */
export async function editFile(
  g: Guest,
  input: { path: string; old_string: string; new_string: string; replace_all: boolean },
  signal?: AbortSignal,
) {
  const path = workspacePath(input.path);
  if (input.old_string === "")
    throw new PyroError("invalid_argument", "old_string is empty", [
      "to create or overwrite a file use ",
      { op: "workspace_file_write" },
    ]);
  if (input.old_string === input.new_string)
    throw new PyroError("invalid_argument", "old_string and new_string are the same", "nothing to change");
  const before = await readFileBytes(g, path, FILE_LIMITS.writeMax, "path", input.path, signal);
  if (!isText(before))
    throw new PyroError(
      "invalid_argument",
      `${JSON.stringify(input.path)} is binary; edit works on text files`,
      ["replace it with ", { op: "workspace_file_write" }],
    );
  const text = before.toString("utf8");
  const n = occurrences(text, input.old_string);
  if (n === 0)
    throw new PyroError(
      "invalid_argument",
      `old_string was not found in ${JSON.stringify(input.path)}`,
      "read the file and copy the exact text, whitespace and indentation included",
    );
  if (n > 1 && !input.replace_all)
    throw new PyroError(
      "invalid_argument",
      `old_string occurs ${n} times in ${JSON.stringify(input.path)}; it must be unique`,
      ["add surrounding lines to make it unique, or pass ", { option: "replace_all", value: true }],
    );
  const after = input.replace_all
    ? text.split(input.old_string).join(input.new_string)
    : text.replace(input.old_string, () => input.new_string);
  await writeFileBytes(
    g,
    path,
    Buffer.from(after, "utf8"),
    {
      expectSha256: createHash("sha256").update(before).digest("hex"),
      createParents: false,
      signal,
    },
    input.path,
  );
  return { workspace_id: g.workspaceId, path: relToWorkspace(path), replacements: input.replace_all ? n : 1 };
}

/** Whether anything (a dangling symlink included) is at a path. */
export async function pathExists(g: Guest, path: string, signal?: AbortSignal): Promise<boolean> {
  const out = await g.sh(`if [ -e "$1" ] || [ -L "$1" ]; then echo yes; else echo no; fi`, [path], {
    ...(signal ? { signal } : {}),
  });
  return out.stdout.trim() === "yes";
}

/** Renames staged files into place and removes deleted ones: the commit of a patch. */
const COMMIT_SCRIPT = `while [ $# -ge 2 ]; do
  op=$1 a=$2; shift 2
  case $op in
    mv) t=$1; shift; mv -fT -- "$a" "$t" || fail 1 "renaming onto $t failed" ;;
    rm) pd=$(realpath -e -- "\${a%/*}" 2>/dev/null) || fail ${GUEST_EXIT.missing} "\${a%/*} is gone"
        inws "$pd" || fail ${GUEST_EXIT.outside} "$a resolves outside $W"
        rm -f -- "$pd/\${a##*/}" || fail 1 "removing $a failed" ;;
    rmtmp) rm -f -- "$a" ;;
  esac
done`;

export async function commitStaged(
  g: Guest,
  ops: ({ op: "mv"; tmp: string; target: string } | { op: "rm"; path: string })[],
): Promise<void> {
  const args: string[] = [];
  for (const o of ops) {
    if (o.op === "mv") args.push("mv", o.tmp, o.target);
    else args.push("rm", o.path);
  }
  const out = await g.sh(COMMIT_SCRIPT, args);
  if (out.exitCode !== 0) throw guestRefusal(out, "(patch)", "patch");
}

export async function discardStaged(g: Guest, tmps: string[]): Promise<void> {
  if (tmps.length === 0) return;
  await g
    .sh(
      COMMIT_SCRIPT,
      tmps.flatMap((t) => ["rmtmp", t]),
    )
    .catch(
      ignore("removing staged temp files: a left temp file is harmless and the caller's outcome stands"),
    );
}
