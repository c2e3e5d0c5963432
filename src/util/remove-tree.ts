import { readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { ignore } from "./best-effort.js";

/** The prefix of a record directory being removed (never a valid id: lists skip it). */
export const REMOVING_PREFIX = ".removing-";

/**
 * Removes a record directory: first renamed out of its id (atomic), then removed. Views and
 * lock attempts of other processes meet the id either whole or gone, never half-removed, and
 * none can create a lock file inside it meanwhile (which made `rm -r` fail with ENOTEMPTY
 * under load). What a process killed mid-removal leaves is swept by `sweepRemoving`.
 */
export async function removeTree(dir: string): Promise<void> {
  const doomed = join(dirname(dir), `${REMOVING_PREFIX}${basename(dir)}-${process.pid}-${Date.now()}`);
  try {
    await rename(dir, doomed);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw e;
  }
  await rm(doomed, { recursive: true, force: true });
}

/** Removes what `removeTree` left in `root`, except directories `keep` says must stay. */
export async function sweepRemoving(root: string, keep?: (dir: string) => Promise<boolean>): Promise<void> {
  for (const n of await readdir(root).catch(() => [] as string[])) {
    if (!n.startsWith(REMOVING_PREFIX)) continue;
    const d = join(root, n);
    if (await keep?.(d)) continue;
    await rm(d, { recursive: true, force: true }).catch(
      ignore("sweeping a half-removed tree: what is left goes next sweep"),
    );
  }
}
