import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { access, mkdir, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { PyroError } from "../../core/errors.js";
import { ignore } from "../../util/best-effort.js";
import { buildErofsImage, findMkfsErofs, MKFS_EROFS_HINT, rootfsImagePath } from "../../util/erofs.js";

/** What a sandbox boots from: the environment's EROFS image when there is one, else its directory. */
export interface RootfsSource {
  dir: string;
  image?: string;
}

async function readable(p: string): Promise<boolean> {
  try {
    await access(p, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

async function writableDir(p: string): Promise<boolean> {
  try {
    await access(p, constants.W_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds (or makes) the EROFS image of an environment's rootfs:
 * 1. `rootfs.erofs` beside the rootfs (environment builds and `setup-host.sh` write it);
 * 2. one this user made earlier in their own cache, keyed by the rootfs directory's identity
 *    (device, inode, birth time: cache entries are sealed by rename, so a rebuilt entry is a
 *    new directory);
 * 3. made now, when every file is readable to us: we are root, or the tree is ours (an
 *    unprivileged user's own build or unpack; its files are recorded as root's). Beside the
 *    rootfs when we may write there, so other readers of that entry share it.
 * Otherwise a rootful sandbox boots the directory as before; a rootless one cannot (the tree
 * belongs to another user, so parts of it are unreadable and the rest looks owned by
 * `nobody`), and the error says how to get the image.
 */
export async function rootfsSource(
  rootfsDir: string,
  opts: { cacheDir: string; rootless: boolean; env?: NodeJS.ProcessEnv; uid?: number },
): Promise<RootfsSource> {
  // An operator's way out, as root, should a runsc release mishandle EROFS roots (one 2026
  // release did in chroot mode: google/gvisor#13529). Without root the image is the only way.
  if (opts.env?.PYRO_GVISOR_EROFS === "0" && !opts.rootless) return { dir: rootfsDir };
  const beside = rootfsImagePath(rootfsDir);
  if (await readable(beside)) return { dir: rootfsDir, image: beside };
  const st = await stat(rootfsDir).catch(ignore("rootfs missing: reported as missing"));
  if (!st?.isDirectory())
    throw new PyroError("invalid_state", `environment rootfs ${rootfsDir} is missing`, "pull it again");
  const key = createHash("sha256")
    .update(`${rootfsDir}\0${st.dev}\0${st.ino}\0${st.birthtimeMs}`)
    .digest("hex");
  const own = join(opts.cacheDir, "gvisor", "images", `${key.slice(0, 24)}.erofs`);
  if (await readable(own)) return { dir: rootfsDir, image: own };
  const uid = opts.uid ?? process.getuid?.() ?? 0;
  const ours = uid === 0 || st.uid === uid;
  if (ours && (await findMkfsErofs(opts.env))) {
    const out = (await writableDir(dirname(rootfsDir))) ? beside : own;
    await mkdir(dirname(out), { recursive: true });
    await buildErofsImage(rootfsDir, out, { allRoot: uid !== 0, ...(opts.env ? { env: opts.env } : {}) });
    return { dir: rootfsDir, image: out };
  }
  if (!opts.rootless) return { dir: rootfsDir };
  throw new PyroError(
    "engine_unavailable",
    ours
      ? `the environment at ${rootfsDir} has no EROFS image and mkfs.erofs is not installed to make one; a sandbox run without root needs it`
      : `the environment at ${rootfsDir} belongs to uid ${st.uid} and has no EROFS image (${beside}); without root, gVisor can boot another user's environment only from that image`,
    ours
      ? MKFS_EROFS_HINT
      : "run `sudo scripts/setup-host.sh` (it packs the shared environments), or `pyro env pull` into your own cache (PYRO_SHARED_CACHE= disables the shared one)",
  );
}
