import { createHash } from "node:crypto";
import { readdir, rm, stat, utimes } from "node:fs/promises";
import { join } from "node:path";
import { ignore } from "../../util/best-effort.js";
import { readJson } from "../../util/json-store.js";

/** Bumped when anything about how a snapshot is taken or what it assumes changes. */
export const SNAPSHOT_VERSION = 1;

export interface SnapshotKeyParts {
  qemu: string;
  accel: string;
  kernel: string;
  initramfs: string;
  image: string;
  vcpuCount: number;
  memMib: number;
  network: boolean;
}

export interface SnapshotMeta {
  key: string;
  parts: SnapshotKeyParts;
  created_at: string;
  state_bytes: number;
  disk_bytes: number;
  save_ms: number;
}

export interface SnapshotPaths {
  dir: string;
  state: string;
  disk: string;
  meta: string;
}

/** A snapshot is only valid for the exact machine it was taken on: every part is in the key. */
export function snapshotKey(p: SnapshotKeyParts): string {
  const canonical = JSON.stringify({
    v: SNAPSHOT_VERSION,
    qemu: p.qemu,
    accel: p.accel,
    kernel: p.kernel,
    initramfs: p.initramfs,
    image: p.image,
    vcpu: p.vcpuCount,
    mem: p.memMib,
    net: p.network,
  });
  return createHash("sha256").update(canonical).digest("hex").slice(0, 24);
}

/** Where snapshots live: <cache>/qemu-snapshots, or PYRO_QEMU_SNAPSHOT_DIR. */
export function snapshotsRoot(cacheDir: string, env: NodeJS.ProcessEnv = process.env): string {
  return env.PYRO_QEMU_SNAPSHOT_DIR || join(cacheDir, "qemu-snapshots");
}

export function snapshotPaths(root: string, key: string): SnapshotPaths {
  const dir = join(root, key);
  return { dir, state: join(dir, "state"), disk: join(dir, "disk.qcow2"), meta: join(dir, "meta.json") };
}

/**
 * The snapshot for `key` when it looks complete (meta written last, files of the recorded
 * sizes); "corrupt" when something is there but wrong; undefined when there is none.
 */
export async function findSnapshot(
  cacheDir: string,
  key: string,
): Promise<{ paths: SnapshotPaths; meta: SnapshotMeta } | "corrupt" | undefined> {
  const paths = snapshotPaths(cacheDir, key);
  if (!(await stat(paths.dir).catch(ignore("no snapshot dir: no snapshot")))) return undefined;
  const meta = await readJson<SnapshotMeta>(paths.meta).catch(
    ignore("unreadable meta.json: the snapshot is corrupt"),
  );
  if (!meta || meta.key !== key) return "corrupt";
  const st = await stat(paths.state).catch(ignore("state file missing: the snapshot is corrupt"));
  const sd = await stat(paths.disk).catch(ignore("disk file missing: the snapshot is corrupt"));
  if (!st || st.size !== meta.state_bytes || !sd || sd.size !== meta.disk_bytes) return "corrupt";
  return { paths, meta };
}

export async function removeSnapshot(root: string, key: string): Promise<void> {
  await rm(snapshotPaths(root, key).dir, { recursive: true, force: true });
}

/** Interrupted snapshot writes (.tmp-*) older than a minute. */
export async function removeStaleTemps(root: string): Promise<void> {
  for (const n of await readdir(root).catch(() => [] as string[])) {
    if (!n.startsWith(".tmp-")) continue;
    const st = await stat(join(root, n)).catch(ignore("temp gone meanwhile: nothing to remove"));
    if (st && Date.now() - st.mtimeMs > 60_000) await rm(join(root, n), { recursive: true, force: true });
  }
}

/** Marks a snapshot as just used (its meta.json mtime), for pruning by recency. */
export async function touchSnapshot(root: string, key: string): Promise<void> {
  const now = new Date();
  await utimes(snapshotPaths(root, key).meta, now, now).catch(
    ignore("touching meta.json for pruning by recency: a missed touch only makes it look older"),
  );
}

/**
 * Keeps the `keep` most recently used snapshots (each is ~100 MB for a 1 GiB guest): keys
 * go stale whenever the kernel, agent, image or QEMU changes, and every distinct
 * vCPU/memory/network combination has its own.
 */
export async function pruneSnapshots(root: string, keep = 8): Promise<string[]> {
  const entries: { name: string; used: number }[] = [];
  for (const n of await readdir(root).catch(() => [] as string[])) {
    if (n.startsWith(".")) continue;
    const st = await stat(join(root, n, "meta.json")).catch(
      ignore("no meta.json: the snapshot counts as least recently used"),
    );
    entries.push({ name: n, used: st?.mtimeMs ?? 0 });
  }
  entries.sort((a, b) => b.used - a.used);
  const removed = entries.slice(keep).map((e) => e.name);
  for (const n of removed) await rm(join(root, n), { recursive: true, force: true });
  return removed;
}
