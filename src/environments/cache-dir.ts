import { constants } from "node:fs";
import { access, mkdir, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { PyroError } from "../core/errors.js";
import { ignore } from "../util/best-effort.js";

/**
 * Makes the user's environments dir (`<cache>/environments`) before a build or pull writes
 * into it, or says plainly why it cannot: a PYRO_CACHE_DIR that belongs to someone else (or
 * lies in someone else's directory) is one `invalid_argument` naming it, not an EACCES from
 * the first mkdir. Unlike the state dir, the cache is not private, so a symlink is fine (a
 * cache on a bigger disk) and reading someone else's cache is what the shared one is for.
 */
export async function ensureWritableCache(environmentsDir: string): Promise<void> {
  try {
    await mkdir(environmentsDir, { recursive: true });
    await access(environmentsDir, constants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "";
    if (!["EACCES", "EPERM", "ENOTDIR", "EROFS"].includes(code)) throw e;
    const cacheDir = dirname(environmentsDir);
    const st = await stat(cacheDir).catch(
      ignore("cache dir cannot be stat-ed: the error below cannot name its owner"),
    );
    const uid = process.getuid?.();
    const why =
      st && uid !== undefined && st.uid !== uid
        ? `belongs to someone else (uid ${st.uid}; you are uid ${uid})`
        : code === "ENOTDIR"
          ? "cannot be made: a part of its path is not a directory"
          : `cannot be written (${code === "EROFS" ? "read-only file system" : "permission denied"})`;
    throw new PyroError(
      "invalid_argument",
      `pyro's cache dir ${cacheDir} ${why}`,
      "point PYRO_CACHE_DIR (or PYRO_HOME) at a directory you own, or unset it for the default ~/.cache/pyro-mcp",
    );
  }
}
