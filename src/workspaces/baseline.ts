import { lstat, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { x as tarExtract } from "tar";
import { PyroError } from "../core/errors.js";
import type { Engine } from "../engines/types.js";
import { stripSetIdBits } from "../project/archive.js";
import { ignore } from "../util/best-effort.js";
import { runCapture } from "../util/proc.js";

/**
 * The baseline: the tree /workspace was seeded with, which `workspace diff` and
 * `export --changed-only` compare against. It lives in the workspace's `baseline/`
 * directory on the host, where no guest can reach it (it is never mounted).
 *
 * Cost. When the engine keeps /workspace on the host (gVisor's bind mount of `files/`,
 * host-compat), the seed must exist twice, since the guest writes `files/` in place; it is
 * copied with `cp -a --reflink=auto`, a copy-on-write clone on btrfs/XFS and a plain copy
 * elsewhere (ext4 here: 0.65-0.75 s of cp for the 10 MB / 1000-file bench seed on the loaded
 * 2-core dev VM, per-file cost; 0.12 s for 200 MB in 10 files), overlapped with the sandbox's
 * start (manager.create). Hardlinks would be free
 * but wrong: a guest writing a file in place would change the baseline with it. When the
 * engine copies the seed into its own disk (QEMU), `files/` is not used after create, so
 * it is renamed to `baseline/`: no copy at all.
 */
export function baselineDir(wsDir: string): string {
  return join(wsDir, "baseline");
}

/**
 * When the baseline was last recorded (ms). diff's quick check (same size and mtime second
 * means unchanged) cannot be trusted for a baseline file whose mtime is not strictly before
 * that second: the guest could have changed it within the same second ("racy git"). Such
 * files are compared by content. A workspace without the stamp compares every one so.
 */
export async function baselineRecordedAt(baseline: string): Promise<number> {
  const v = Number((await readFile(`${baseline}.at`, "utf8").catch(() => "")).trim());
  return Number.isFinite(v) && v > 0 ? v : Number.POSITIVE_INFINITY;
}

async function stamp(baseline: string): Promise<void> {
  await writeFile(`${baseline}.at`, `${Date.now()}\n`);
}

/** Before the sandbox starts: engines whose /workspace IS `files/` get a copy. */
export async function baselineBeforeStart(
  wsDir: string,
  engine: Pick<Engine, "traits">,
  signal?: AbortSignal,
): Promise<void> {
  if (!engine.traits.sharedWorkspaceDir) return;
  const files = join(wsDir, "files");
  const dest = baselineDir(wsDir);
  await mkdir(dest, { mode: 0o700 });
  const r = await runCapture(
    "cp",
    ["-a", "--reflink=auto", "--no-preserve=ownership", "--", `${files}/.`, `${dest}/`],
    {
      timeoutMs: 3_600_000,
      ...(signal ? { signal } : {}),
    },
  );
  if (r.exitCode !== 0)
    throw new PyroError("engine_failure", `recording the baseline failed: ${r.stderr.trim().slice(-300)}`);
  await stamp(dest);
}

/** After the sandbox started: engines that copied `files/` into their own disk hand it over. */
export async function baselineAfterStart(wsDir: string, engine: Pick<Engine, "traits">): Promise<void> {
  if (engine.traits.sharedWorkspaceDir) return;
  await rename(join(wsDir, "files"), baselineDir(wsDir));
  await mkdir(join(wsDir, "files"));
  await stamp(baselineDir(wsDir));
}

/**
 * `sync push --update-baseline`: the same validated source unpacked into the baseline too,
 * at the same place, so what was pushed is not reported as a change. The baseline may hold
 * symlinks from the seed: every existing component of the destination must be a real
 * directory, and node-tar refuses to extract through a symlink below it.
 */
export async function updateBaseline(wsDir: string, relDest: string, tar: Readable): Promise<void> {
  const root = baselineDir(wsDir);
  let cur = root;
  for (const part of relDest === "." ? [] : relDest.split("/")) {
    cur = join(cur, part);
    const st = await lstat(cur).catch(ignore("path does not exist in the baseline: it is made"));
    if (!st) await mkdir(cur);
    else if (!st.isDirectory())
      throw new PyroError(
        "invalid_argument",
        `cannot update the baseline at ${relDest}: ${cur.slice(root.length + 1)} is not a directory in the baseline`,
        "push without --update-baseline, or to another destination",
      );
  }
  await new Promise<void>((resolve, reject) => {
    // unlink: replace files, never write into them: a fork's baseline shares inodes with its
    // parent's (hardlinks, see snapshots.ts).
    const sink = tarExtract({ cwd: cur, strict: true, preservePaths: false, noChmod: false, unlink: true });
    sink.on("error", reject);
    sink.on("finish", () => resolve());
    tar.on("error", reject);
    tar.pipe(sink);
  });
  await stripSetIdBits(root);
  await stamp(root);
}
