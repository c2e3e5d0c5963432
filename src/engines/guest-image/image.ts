import { createHash } from "node:crypto";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { PyroError } from "../../core/errors.js";
import { ignore } from "../../util/best-effort.js";
import { readJson, withLock } from "../../util/json-store.js";
import { runCapture, which } from "../../util/proc.js";

/** Bumped when the way images are made changes (size policy, mkfs options). */
export const IMAGE_VERSION = 1;

const E2FS_HINT = "install e2fsprogs (`sudo scripts/setup-host.sh`)";

export interface RootImage {
  path: string;
  digest: string;
}

/**
 * The identity of an environment rootfs: the environment cache's manifest (recipe digest +
 * build time) when there is one, else the path and its modification time.
 */
async function rootfsIdentity(rootfs: string): Promise<{ id: string; sizeBytes?: number }> {
  const m = await readJson<{ digest?: string; built_at?: string; size_bytes?: number }>(
    join(dirname(rootfs), "manifest.json"),
  ).catch(ignore("no readable environment manifest: the rootfs is identified by its mtime"));
  if (m?.digest)
    return { id: `${m.digest}@${m.built_at ?? ""}`, ...(m.size_bytes ? { sizeBytes: m.size_bytes } : {}) };
  const st = await stat(rootfs).catch(ignore("rootfs missing: reported as missing"));
  if (!st?.isDirectory()) throw new PyroError("invalid_state", `environment rootfs ${rootfs} is missing`);
  return { id: `${rootfs}@${st.mtimeMs}` };
}

/** Size of the (sparse) image: room for the rootfs plus workspace data; ext4 cannot grow later. */
export function imageSizeBytes(rootfsBytes: number): number {
  const mib = 1024 * 1024;
  const want = Math.max(4096 * mib, rootfsBytes * 2 + 2048 * mib);
  return Math.ceil(want / mib) * mib;
}

export function rootImageDigest(identity: string): string {
  return createHash("sha256").update(`v${IMAGE_VERSION}\0${identity}`).digest("hex").slice(0, 24);
}

/**
 * The read-only base disk of an environment: an ext4 image made from its rootfs with
 * `mkfs.ext4 -d` (no loop mount, no root needed beyond reading the rootfs), cached by
 * digest under <cache>/guest-images/ and shared by every VM (each gets a qcow2 overlay).
 */
export async function ensureRootImage(
  cacheDir: string,
  rootfs: string,
  env: NodeJS.ProcessEnv = process.env,
  onProgress?: (message: string) => void,
): Promise<RootImage> {
  const ident = await rootfsIdentity(rootfs);
  const digest = rootImageDigest(ident.id);
  const dir = join(cacheDir, "guest-images");
  const path = join(dir, `root-${digest}.ext4`);
  if (await stat(path).catch(ignore("no cached guest image: it is built"))) return { path, digest };
  const mkfs = await which("mkfs.ext4", env);
  if (!mkfs)
    throw new PyroError(
      "host_dependency_missing",
      "mkfs.ext4 is needed to build the guest disk image",
      E2FS_HINT,
    );
  await mkdir(dir, { recursive: true });
  return withLock(path, async () => {
    if (await stat(path).catch(ignore("no cached guest image: it is built"))) return { path, digest };
    onProgress?.(`building the guest disk image from ${basename(dirname(rootfs))}`);
    let bytes = ident.sizeBytes;
    if (!bytes) {
      const du = await runCapture("du", ["-sb", rootfs], { timeoutMs: 120_000 });
      bytes = Number.parseInt(du.stdout, 10) || 1024 ** 3;
    }
    const tmp = `${path}.tmp-${process.pid}`;
    await rm(tmp, { force: true });
    const r = await runCapture(
      mkfs,
      [
        "-q",
        "-F",
        "-t",
        "ext4",
        "-L",
        "pyro-root",
        "-d",
        rootfs,
        // Initialise inode tables and journal now: lazy init would make every guest write
        // them into its own overlay in the background.
        "-E",
        "lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0",
        "-m",
        "0",
        tmp,
        `${Math.floor(imageSizeBytes(bytes) / 1024)}k`,
      ],
      { timeoutMs: 600_000, env },
    );
    if (r.exitCode !== 0) {
      await rm(tmp, { force: true });
      throw new PyroError(
        "engine_failure",
        `mkfs.ext4 -d ${rootfs} failed: ${(r.stderr || r.stdout).trim().slice(-500)}`,
        E2FS_HINT,
      );
    }
    // mkfs wrote the inode tables and journal as zeros: punch them out (~130 MB for debian:12).
    const fallocate = await which("fallocate", env);
    if (fallocate) await runCapture(fallocate, ["--dig-holes", tmp], { timeoutMs: 120_000, env });
    await rename(tmp, path);
    return { path, digest };
  });
}
