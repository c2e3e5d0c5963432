import { readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { ignore } from "../../util/best-effort.js";
import { readJson } from "../../util/json-store.js";
import { rootImageDigest } from "../guest-image/image.js";
import { type SnapshotMeta, snapshotsRoot } from "./snapshot.js";

/** What `env prune` removes from the microVM caches, and how many bytes that frees. */
export interface MicrovmPrune {
  removed: string[];
  bytes_freed: number;
}

/** The guest image digest an installed environment maps to (see guest-image/image.ts). */
export function imageDigestFor(manifest: { digest: string; built_at: string }): string {
  return rootImageDigest(`${manifest.digest}@${manifest.built_at}`);
}

async function diskBytes(path: string): Promise<number> {
  const st = await stat(path).catch(ignore("path missing: takes no space"));
  if (!st) return 0;
  if (!st.isDirectory()) return st.blocks * 512; // images are sparse: count what is allocated
  let sum = 0;
  for (const n of await readdir(path).catch(() => [] as string[])) sum += await diskBytes(join(path, n));
  return sum;
}

/**
 * Guest disk images and snapshots built from environments that are gone (or all of them,
 * with `all`). Initramfs files not used by a kept snapshot go too, except the newest, which
 * the next boot would rebuild anyway.
 */
export async function pruneMicrovmCache(
  cacheDir: string,
  keepImages: Set<string>,
  opts: { all: boolean },
  env: NodeJS.ProcessEnv = process.env,
): Promise<MicrovmPrune> {
  const out: MicrovmPrune = { removed: [], bytes_freed: 0 };
  const drop = async (path: string, label: string) => {
    out.bytes_freed += await diskBytes(path);
    await rm(path, { recursive: true, force: true });
    out.removed.push(label);
  };
  const keptInitramfs = new Set<string>();
  const snaps = snapshotsRoot(cacheDir, env);
  for (const key of await readdir(snaps).catch(() => [] as string[])) {
    const meta = await readJson<SnapshotMeta>(join(snaps, key, "meta.json")).catch(
      ignore("unreadable snapshot meta: the snapshot is dropped"),
    );
    if (!opts.all && meta && keepImages.has(meta.parts.image)) {
      keptInitramfs.add(meta.parts.initramfs);
      continue;
    }
    await drop(join(snaps, key), `qemu-snapshots/${key}`);
  }
  const images = join(cacheDir, "guest-images");
  const names = await readdir(images).catch(() => [] as string[]);
  const initramfs = names.filter((n) => /^initramfs-[0-9a-f]+\.cpio$/.test(n));
  const newest = (
    await Promise.all(
      initramfs.map(async (n) => ({
        n,
        t:
          (
            await stat(join(images, n)).catch(ignore("initramfs gone meanwhile: counts as oldest"))
          )?.mtimeMs ?? 0,
      })),
    )
  ).sort((a, b) => b.t - a.t)[0]?.n;
  for (const n of names) {
    const root = /^root-([0-9a-f]+)\.ext4$/.exec(n);
    const init = /^initramfs-([0-9a-f]+)\.cpio$/.exec(n);
    if (root && (opts.all || !keepImages.has(root[1]!))) await drop(join(images, n), `guest-images/${n}`);
    else if (init && (opts.all || (n !== newest && !keptInitramfs.has(init[1]!))))
      await drop(join(images, n), `guest-images/${n}`);
  }
  return out;
}
