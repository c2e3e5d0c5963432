import { chmod, lstat, mkdir } from "node:fs/promises";
import { PyroError } from "../errors.js";

/**
 * Makes `dir` a directory only its owner can enter: created 0700 when missing, tightened to
 * 0700 when it exists with wider modes, refused when it is a symlink or belongs to someone
 * else (a directory planted under /tmp by another user). Everything a guest can write (the
 * host side of /workspace) lives below pyro's state dir, so no other host user can reach a
 * file a guest made, whatever its mode bits say.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  const uid = process.getuid?.();
  if (st.isSymbolicLink() || !st.isDirectory())
    throw new PyroError(
      "invalid_state",
      `pyro's state dir ${dir} is not a plain directory`,
      "point PYRO_STATE_DIR (or PYRO_HOME) at a directory you own",
    );
  if (uid !== undefined && st.uid !== uid)
    throw new PyroError(
      "invalid_state",
      `pyro's state dir ${dir} belongs to uid ${st.uid}, not to you (uid ${uid})`,
      "point PYRO_STATE_DIR (or PYRO_HOME) at a directory you own",
    );
  if ((st.mode & 0o077) !== 0) await chmod(dir, 0o700);
}
