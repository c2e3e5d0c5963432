import { stat, statfs } from "node:fs/promises";
import { dirname } from "node:path";
import { diskFullFrom, PyroError } from "../core/errors.js";
import { ignore } from "../util/best-effort.js";

/**
 * The host's free space, as pyro promises it. A workspace's /workspace is an image on the
 * host's file system; when that file system fills, the loop device cannot write back the
 * guest's dirty pages, the guest's ext4 aborts its journal, and a write that reported success
 * is lost. So pyro reserves what it hands out (a preallocated image, see disk.ts) and keeps a
 * floor of free space under everything it writes: creates, seeds, snapshots and runs are
 * refused below it with `disk_full`, before anything is written.
 *
 * Both knobs are the operator's, read from the environment of the pyro process (never from an
 * operation's input, so a model over MCP cannot set them):
 * - `PYRO_DISK_OVERCOMMIT=1`: sparse images as before (the host backs them only as the guest
 *   writes); a full host then makes workspaces read-only, which `list` shows as `failed`.
 * - `PYRO_DISK_FLOOR_MIB`: the free space kept on the file system holding the state dir
 *   (default min(1 GiB, 5 % of that file system); 0 turns the floor off).
 */
export const OVERCOMMIT_ENV = "PYRO_DISK_OVERCOMMIT";
export const FLOOR_ENV = "PYRO_DISK_FLOOR_MIB";

const MIB = 1024 * 1024;

export interface HostSpace {
  /** Free to an unprivileged writer (what `df` calls Avail), in MiB. */
  free_mib: number;
  total_mib: number;
}

export async function hostSpace(path: string): Promise<HostSpace | undefined> {
  const s = await statfs(path).catch(ignore("statfs failed: the host's free space is unknown"));
  if (!s) return undefined;
  return {
    free_mib: Math.floor((Number(s.bavail) * Number(s.bsize)) / MIB),
    total_mib: Math.floor((Number(s.blocks) * Number(s.bsize)) / MIB),
  };
}

export function overcommitAllowed(env: NodeJS.ProcessEnv = process.env): boolean {
  return env[OVERCOMMIT_ENV] === "1";
}

/** The floor in MiB for a file system of `totalMib` (the env value, else min(1 GiB, 5 %)). */
export function floorMib(totalMib: number, env: NodeJS.ProcessEnv = process.env): number {
  const v = env[FLOOR_ENV];
  if (v !== undefined && v !== "") {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0)
      throw new PyroError(
        "invalid_argument",
        `${FLOOR_ENV}=${JSON.stringify(v)} is not a whole number of MiB`,
        `set ${FLOOR_ENV} to a number of MiB (0 turns the floor off), or unset it for min(1 GiB, 5 %)`,
      );
    return n;
  }
  return Math.min(1024, Math.floor(totalMib * 0.05));
}

/**
 * Refuses with `disk_full` unless the file system holding `path` has `needMib` free above the
 * floor. `what` names the thing refused ("a workspace disk of 4096 MiB"); `reserving`: the
 * space is a disk's size pyro reserves (the hint then names disk_mib and overcommit). A file system whose
 * space cannot be read is not refused (nothing to go on; the write itself will say).
 */
export async function ensureHostSpace(
  path: string,
  needMib: number,
  what: string,
  env: NodeJS.ProcessEnv = process.env,
  reserving = false,
): Promise<void> {
  const s = await hostSpace(path);
  if (!s) return;
  const floor = floorMib(s.total_mib, env);
  if (s.free_mib - needMib >= floor) return;
  const need = needMib > 0 ? `${needMib} MiB for ${what} plus` : `for ${what}:`;
  throw new PyroError(
    "disk_full",
    `not enough free space on the host for ${what}: the file system holding ${path} has ${s.free_mib} MiB free; pyro needs ${need} the ${floor} MiB it keeps free (${FLOOR_ENV})`,
    reserving
      ? `ask for a smaller disk_mib, or free space on the host (delete workspaces, snapshots or old outputs); the operator can lower the floor (${FLOOR_ENV}) or allow disks the host does not reserve (${OVERCOMMIT_ENV}=1: a full host then makes workspaces read-only and loses their unsynced writes)`
      : `free space on the host (delete workspaces, snapshots or old outputs), or the operator can lower the floor with ${FLOOR_ENV}`,
  );
}

/**
 * The check of a workspace create, before its record or any file exists: the disk it will
 * reserve (a preallocated image: root, gVisor, no overcommit) plus the floor, or the floor
 * alone. Under the state dir, which holds the workspaces.
 */
export async function ensureCreateSpace(
  d: { paths: { stateDir: string }; env: NodeJS.ProcessEnv },
  diskMib: number,
  imageEngine: boolean,
): Promise<void> {
  const reserves = imageEngine && process.getuid?.() === 0 && !overcommitAllowed(d.env);
  await ensureHostSpace(
    d.paths.stateDir,
    reserves ? diskMib : 0,
    `a workspace disk of ${diskMib} MiB`,
    d.env,
    reserves,
  );
}

/** The floor alone, before an operation that writes host state (a seed, a snapshot, a run). */
export function ensureFloor(
  d: { paths: { stateDir: string }; env: NodeJS.ProcessEnv },
  what: string,
): Promise<void> {
  return ensureHostSpace(d.paths.stateDir, 0, what, d.env);
}

/**
 * Node's recursive `mkdir` reports a full disk as ENOENT (the parent it just failed to make is
 * missing when it retries the child): that is how create and run said `ENOENT` on a full host.
 * Such an error, on a file system with (next to) no free blocks, is given back as the ENOSPC
 * it was, for the disk_full mapping; anything else is returned as it is.
 */
export async function unmaskDiskFull(e: unknown): Promise<unknown> {
  // Also once wrapped (toPyroError keeps what it wrapped as the cause).
  const err = (e instanceof PyroError && e.code === "engine_failure" ? e.cause : e) as
    | NodeJS.ErrnoException
    | undefined;
  if (err?.code !== "ENOENT" || err.syscall !== "mkdir" || !err.path) return e;
  let p = dirname(err.path);
  while (p !== dirname(p) && !(await stat(p).catch(ignore("path does not exist: its parent is tried"))))
    p = dirname(p);
  const s = await statfs(p).catch(ignore("statfs failed: the original error stands"));
  if (!s || Number(s.bavail) > 16) return e;
  return diskFullFrom(
    Object.assign(new Error(`ENOSPC: no space left on device, mkdir '${err.path}'`), {
      code: "ENOSPC",
      syscall: "mkdir",
      path: err.path,
    }),
  );
}
