import { lstatSync, type Stats } from "node:fs";
import { chmod, lstat, mkdir, readlink } from "node:fs/promises";
import { PyroError } from "../core/errors.js";
import { ignore } from "../util/best-effort.js";

const HINT =
  "point PYRO_STATE_DIR (or PYRO_HOME) at a directory you own, or unset it for the default ~/.local/state/pyro-mcp";

/**
 * Makes `dir` a directory only its owner can enter: created 0700 when missing, tightened to
 * 0700 when it exists with wider modes, refused when it is a symlink or belongs to someone
 * else (a directory planted under /tmp by another user). Everything a guest can write (the
 * host side of /workspace) lives below pyro's state dir, so no other host user can reach a
 * file a guest made, whatever its mode bits say.
 *
 * The refusals are `invalid_argument` (the setting is wrong, exit 2) naming the directory and
 * why, never a bare EACCES from whichever file pyro happened to touch first in it.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  let st = await lstat(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") return undefined;
    throw unreachable(dir, e);
  });
  if (!st) {
    await mkdir(dir, { recursive: true, mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
      throw unreachable(dir, e);
    });
    st = await lstat(dir);
  }
  const why = problem(st);
  if (why === "symlink") {
    const to = await readlink(dir).catch(
      ignore("reading the symlink's target for the message: the error is given without it"),
    );
    throw new PyroError(
      "invalid_argument",
      `pyro's state dir ${dir} is a symlink${to ? ` (to ${to})` : ""}; pyro keeps its state only in a real directory`,
      `${HINT} (the directory itself, not a link to it)`,
    );
  }
  if (why === "not a directory")
    throw new PyroError("invalid_argument", `pyro's state dir ${dir} is not a directory`, HINT);
  if (why)
    throw new PyroError(
      "invalid_argument",
      `pyro's state dir ${dir} belongs to someone else (uid ${st.uid}; you are uid ${process.getuid?.()})`,
      HINT,
    );
  if ((st.mode & 0o077) !== 0) await chmod(dir, 0o700);
}

function problem(st: Stats): "symlink" | "not a directory" | "owner" | undefined {
  if (st.isSymbolicLink()) return "symlink";
  if (!st.isDirectory()) return "not a directory";
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) return "owner";
  return undefined;
}

/** A directory above `dir` that this user may not search or write (another user's home). */
function unreachable(dir: string, e: NodeJS.ErrnoException): Error {
  if (e.code !== "EACCES" && e.code !== "EPERM" && e.code !== "ENOTDIR") return e;
  return new PyroError(
    "invalid_argument",
    `pyro's state dir ${dir} cannot be ${e.code === "ENOTDIR" ? "made: a part of its path is not a directory" : `made or reached: permission denied${e.path && e.path !== dir ? ` on ${e.path}` : ""} (it lies in someone else's directory)`}`,
    HINT,
  );
}

/**
 * The fast paths' check (sync, read-only): whether `dir` is usable as it stands. When not
 * (missing, a symlink, another user's), they leave the call to the full CLI, which makes it
 * or says what is wrong.
 */
export function isOwnPlainDir(dir: string): boolean {
  try {
    return problem(lstatSync(dir)) === undefined;
  } catch {
    return false;
  }
}
