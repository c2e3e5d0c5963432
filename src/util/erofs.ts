import { chmod, rename, rm } from "node:fs/promises";
import { PyroError } from "../core/errors.js";
import { runCapture, which } from "./proc.js";

/**
 * An environment's root filesystem as one read-only EROFS image file, beside the rootfs
 * directory (`…/rootfs` → `…/rootfs.erofs`). gVisor's sentry reads the image itself, so file
 * owners and modes come from the image, not from the host: an unprivileged user's rootless
 * sandbox sees a root-owned tree as root's (with a directory rootfs it would see `nobody`
 * and could not enter `/root` or read `/etc/shadow`), and one world-readable file is shared
 * by every user of the host.
 */
export const ROOTFS_IMAGE_SUFFIX = ".erofs";

export function rootfsImagePath(rootfsDir: string): string {
  return `${rootfsDir.replace(/\/+$/, "")}${ROOTFS_IMAGE_SUFFIX}`;
}

/**
 * mkfs.erofs options gVisor can read. Measured with runsc 20240729 and erofs-utils 1.5: with
 * tail-packed inline data (mkfs's default) the sentry logs "Unsupported data layout 0x2" and
 * exec of /bin/sh fails with EFAULT, so `-Enoinline_data`; `-x-1` leaves out xattrs (a guest
 * runs as root, file capabilities buy it nothing). No compression: gVisor reads none.
 */
export const MKFS_EROFS_OPTIONS = ["--quiet", "-x-1", "-Enoinline_data"] as const;

export const MKFS_EROFS_HINT =
  "run `sudo scripts/setup-host.sh` (installs erofs-utils), or `sudo apt-get install erofs-utils`";

export async function findMkfsErofs(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  if (env.PYRO_MKFS_EROFS) return which(env.PYRO_MKFS_EROFS, env);
  return which("mkfs.erofs", env);
}

/**
 * Writes the image of `rootfsDir` to `out` (atomically: a temp file renamed into place, so a
 * reader never sees half an image), world-readable. `allRoot` records every file as owned by
 * root: for a tree an unprivileged user unpacked, where every file is theirs on the host.
 */
export async function buildErofsImage(
  rootfsDir: string,
  out: string,
  opts: { allRoot?: boolean; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<void> {
  const binary = await findMkfsErofs(opts.env);
  if (!binary)
    throw new PyroError(
      "host_dependency_missing",
      "mkfs.erofs is not installed; it packs an environment into the image gVisor reads",
      MKFS_EROFS_HINT,
    );
  const tmp = `${out}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  try {
    const r = await runCapture(
      binary,
      [...MKFS_EROFS_OPTIONS, ...(opts.allRoot ? ["--all-root"] : []), tmp, rootfsDir],
      { timeoutMs: opts.timeoutMs ?? 600_000, ...(opts.env ? { env: opts.env } : {}) },
    );
    if (r.exitCode !== 0)
      throw new PyroError(
        "engine_failure",
        `mkfs.erofs could not pack ${rootfsDir} (exit ${r.exitCode ?? r.signal}): ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" | ").slice(0, 400)}`,
        "check that every file of the environment is readable by you (a tree owned by another user is not)",
      );
    await chmod(tmp, 0o644);
    await rename(tmp, out);
  } finally {
    await rm(tmp, { force: true });
  }
}
