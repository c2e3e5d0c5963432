import { posix } from "node:path";
import { PyroError, toPyroError } from "../core/errors.js";
import { INIT_IN_GUEST } from "../engines/gvisor/bundle.js";
import type { Engine, ExecOutcome, SandboxHandle } from "../engines/types.js";

/**
 * File operations run INSIDE the sandbox, with the guest's own shell and coreutils, through
 * the engine's exec primitive (stdin in, binary stdout out). Why not on the host side of
 * `/workspace` (gVisor's bind mount)? A guest can plant or swap a symlink there at any
 * moment; inside the sandbox the same symlink can only lead to the guest's own files. One
 * code path also serves every engine (QEMU's /workspace exists only in the guest disk).
 * The host only ever writes what it parsed from the guest's output into directories it
 * created itself (export.ts).
 *
 * Guest scripts report refusals with these exit codes (and a detail on stderr); everything
 * else is an engine or tool failure.
 */
export const GUEST_EXIT = {
  outside: 10,
  missing: 11,
  isDir: 12,
  notDir: 13,
  tooLarge: 14,
  notRegular: 15,
  changed: 16,
} as const;

export const WORKSPACE = "/workspace";

/** The shell functions every script starts with. `$W` is /workspace. */
const PRELUDE = `set -u
# coreutils first: under gVisor every PATH miss is a round trip to the gofer (~3 ms each)
PATH=/usr/bin:/bin:$PATH
W=${WORKSPACE}
fail() { c=$1; shift; printf '%s\\n' "$*" >&2; exit "$c"; }
inws() { case "$1" in "$W"|"$W"/*) return 0;; esac; return 1; }
# An existing path's real location in $r, refused when it is outside /workspace. Builtins
# only (cd -P resolves the directory's symlinks) unless the last component is a symlink:
# each process started in the sandbox costs milliseconds.
resolve_in() {
  case "$1" in "$W") r=$W; return 0;; esac
  cd -P -- "\${1%/*}/" 2>/dev/null || fail ${GUEST_EXIT.missing} "no such directory: \${1%/*}"
  inws "$PWD" || fail ${GUEST_EXIT.outside} "resolves to $PWD/\${1##*/}, outside $W"
  if [ -L "\${1##*/}" ]; then
    r=$(realpath -e -- "\${1##*/}" 2>/dev/null) || fail ${GUEST_EXIT.missing} "a dangling symlink"
  else
    [ -e "\${1##*/}" ] || fail ${GUEST_EXIT.missing} "no such file or directory"
    r=$PWD/\${1##*/}
  fi
  inws "$r" || fail ${GUEST_EXIT.outside} "resolves to $r, outside $W"
}
# cd into directory $1, creating what is missing of it when $2 is 1, and leave its real
# location in $here. Only after the deepest existing ancestor was found to be inside
# /workspace (a dangling symlink there is refused by name) does mkdir -p run, so a symlink
# cannot steer it out. Used by file writes (their parent) and sync push (its destination).
enter_dir() {
  e=$1
  while [ -n "$e" ] && [ ! -e "$e" ] && [ ! -L "$e" ]; do e=\${e%/*}; done
  [ -n "$e" ] || e=/
  re=$(realpath -e -- "$e" 2>/dev/null) || fail ${GUEST_EXIT.missing} "$e is a dangling symlink (to $(readlink -- "$e"))"
  inws "$re" || fail ${GUEST_EXIT.outside} "$e resolves to $re, outside $W"
  [ -d "$re" ] || fail ${GUEST_EXIT.notDir} "$e is not a directory"
  rest=\${1#"$e"}; rest=\${rest#/}
  cd -- "$re" || exit 1
  if [ -n "$rest" ]; then
    [ "$2" = 1 ] || fail ${GUEST_EXIT.missing} "parent directory $1 does not exist"
    mkdir -p -- "$rest" || fail ${GUEST_EXIT.notDir} "cannot create $1"
    cd -- "$rest" || exit 1
  fi
  here=$(pwd -P); inws "$here" || fail ${GUEST_EXIT.outside} "$1 resolves to $here, outside $W"
}
`;

/**
 * Maps a caller's path onto a normalised guest path inside /workspace (lexically: `..` and
 * absolute paths elsewhere are refused here; symlinks are checked by the guest scripts).
 */
export function workspacePath(value: string, field = "path"): string {
  if (value.includes("\0")) throw new PyroError("invalid_argument", `${field} contains a NUL byte`);
  const raw = value === "" ? "." : value;
  const abs = raw.startsWith("/") ? posix.normalize(raw) : posix.normalize(posix.join(WORKSPACE, raw));
  const clean = abs.length > 1 ? abs.replace(/\/+$/, "") : abs;
  if (clean !== WORKSPACE && !clean.startsWith(`${WORKSPACE}/`)) {
    throw new PyroError(
      "invalid_argument",
      `${field} ${JSON.stringify(value)} is outside ${WORKSPACE}`,
      `use a path under ${WORKSPACE} (relative paths are relative to ${WORKSPACE}); ${WORKSPACE} is all the file tools can reach`,
    );
  }
  return clean;
}

/** `/workspace/a/b` → `a/b`; `/workspace` → `.` */
export function relToWorkspace(p: string): string {
  return p === WORKSPACE ? "." : p.slice(WORKSPACE.length + 1);
}

export interface GuestRunOptions {
  stdin?: Buffer;
  maxOutputBytes?: number;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** A running workspace's sandbox, as the capability modules see it. */
export class Guest {
  constructor(
    readonly engine: Engine,
    readonly handle: SandboxHandle,
    readonly workspaceId: string,
    private readonly onDead?: (reason: string) => Promise<void>,
  ) {}

  /**
   * A plain read (whole file, at most max+1 bytes) in one exec where the engine has the
   * sandbox init (gVisor): `/.pyro/init read` makes the same checks as READ_SCRIPT with the
   * same exit codes, without a shell and `head` (two execs fewer, ~20 ms under gVisor).
   * Undefined where only the script can do it.
   */
  async readPlain(path: string, max: number, signal?: AbortSignal): Promise<ExecOutcome | undefined> {
    if (!this.engine.hasInit?.(this.handle)) return undefined;
    try {
      const out = await this.engine.exec(this.handle, {
        argv: [INIT_IN_GUEST, "read", "--max", String(max), "--deadline-ms", "60000", path],
        cwd: WORKSPACE,
        timeoutMs: 60_000,
        maxOutputBytes: max + 1,
        ...(signal ? { signal } : {}),
      });
      if (out.timedOut)
        throw new PyroError("timeout", `a file operation in workspace ${this.workspaceId} timed out`);
      return out;
    } catch (e) {
      const pe = toPyroError(e);
      if (pe.code === "sandbox_dead") await this.onDead?.(pe.message);
      throw pe;
    }
  }

  /** Runs a shell script (with the prelude) and returns its outcome; args are $1… */
  async sh(script: string, args: string[], opts: GuestRunOptions = {}): Promise<ExecOutcome> {
    try {
      const out = await this.engine.exec(this.handle, {
        argv: ["/bin/sh", "-c", PRELUDE + script, "pyro-fs", ...args],
        cwd: WORKSPACE,
        timeoutMs: opts.timeoutMs ?? 60_000,
        maxOutputBytes: opts.maxOutputBytes ?? 1024 * 1024,
        ...(opts.stdin ? { stdin: opts.stdin } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      if (out.timedOut)
        throw new PyroError(
          "timeout",
          `a file operation in workspace ${this.workspaceId} timed out`,
          "try a smaller path, or check the workspace with a command",
        );
      return out;
    } catch (e) {
      const pe = toPyroError(e);
      if (pe.code === "sandbox_dead") await this.onDead?.(pe.message);
      throw pe;
    }
  }
}

/** stdout of an outcome as bytes (engines that predate the field decode to UTF-8). */
export function stdoutBytes(out: ExecOutcome): Buffer {
  return out.stdoutBytes ?? Buffer.from(out.stdout, "utf8");
}

/** Turns a guest script's refusal code into the error a caller can act on. */
export function guestRefusal(out: ExecOutcome, path: string, field = "path"): PyroError {
  const detail = out.stderr.trim().split("\n").slice(-1)[0] ?? "";
  const shown = JSON.stringify(path);
  switch (out.exitCode) {
    case GUEST_EXIT.outside:
      return new PyroError(
        "invalid_argument",
        `${field} ${shown} leaves ${WORKSPACE} through a symlink (${detail})`,
        `use a path whose real location is under ${WORKSPACE}`,
      );
    case GUEST_EXIT.missing:
      return new PyroError("not_found", `${field} ${shown} does not exist in the workspace`, [
        "list what is there with ",
        { op: "workspace_file_list" },
      ]);
    case GUEST_EXIT.isDir:
      return new PyroError("invalid_argument", `${field} ${shown} is a directory, not a file`, [
        "name a file, or list the directory's contents with ",
        { op: "workspace_file_list" },
      ]);
    case GUEST_EXIT.notDir:
      return new PyroError("invalid_argument", `${field} ${shown}: a parent is not a directory (${detail})`);
    case GUEST_EXIT.notRegular:
      return new PyroError(
        "invalid_argument",
        `${field} ${shown} is not a regular file (${detail})`,
        "name a regular file",
      );
    case GUEST_EXIT.changed:
      return new PyroError(
        "invalid_state",
        `${field} ${shown} changed while it was being edited; nothing was written`,
        "read it again and retry the edit",
      );
    default:
      return new PyroError(
        "engine_failure",
        `file operation on ${shown} failed in the guest (exit ${out.exitCode}): ${detail || "(no output)"}`,
      );
  }
}
