import { mkdir, readFile, rm, rmdir, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { isDiskFullErrno, PyroError } from "../core/errors.js";
import { ignore } from "../util/best-effort.js";
import { runCapture, which } from "../util/proc.js";
import { removeTree } from "../util/remove-tree.js";
import { ensureHostSpace, hostSpace, overcommitAllowed } from "./host-space.js";

/**
 * A workspace's disk: the host side of its /workspace. Where pyro may mount (it runs as
 * root), `files/` is an ext4 file system in a preallocated image (`disk.img`) of the
 * requested size (sparse only with the operator's PYRO_DISK_OVERCOMMIT=1, host-space.ts), loop-mounted `nosuid,nodev`: the guest sees that size in `df`, a write past it fails
 * with ENOSPC inside the sandbox instead of filling the host, and nothing a guest plants
 * there can act as a set-id program or a device on the host. Elsewhere `files/` is a plain
 * directory and the result says the quota is not enforced.
 *
 * Every removal of a workspace's files goes through `removeDisk`, which unmounts first:
 * `rm -r` on a still-mounted `files/` would empty the image and then fail on the mountpoint.
 */
export const DISK_IMAGE = "disk.img";

export interface DiskInfo {
  disk_mib: number;
  /** Whether the size is enforced (a mounted image) or only recorded. */
  disk_enforced: boolean;
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** Mount points as /proc/self/mountinfo lists them (octal escapes decoded). */
async function mountPoints(): Promise<Set<string>> {
  const text = await readFile("/proc/self/mountinfo", "utf8").catch(() => "");
  const out = new Set<string>();
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    if (f[4])
      out.add(f[4].replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(Number.parseInt(o, 8))));
  }
  return out;
}

export async function isMounted(path: string): Promise<boolean> {
  return (await mountPoints()).has(path);
}

/**
 * Mount options of every workspace disk. `errors=remount-ro` makes a file system error
 * (above all a journal the host could not write back, see host-space.ts) determinate: the
 * disk goes read-only at once and `diskFault` sees it, instead of whatever the image's
 * default error behaviour says. `noinit_itable`: the kernel never zeroes inode tables in
 * the background (through the loop device that punches holes in a preallocated image; see
 * createDisk).
 */
const MOUNT_OPTIONS = "loop,nosuid,nodev,noatime,errors=remount-ro,noinit_itable";

/**
 * Makes `filesDir` the workspace's disk of `mib` MiB: a mounted image when possible
 * (root, mkfs.ext4 and mount present), else a plain directory. `filesDir` must not exist.
 *
 * The image is preallocated (`fallocate`): the host's blocks are the guest's from the start,
 * so writeback never needs a block a full host cannot give, and a write the guest saw succeed
 * is not lost (host-space.ts). mkfs must not discard them again (`nodiscard`). Only with the
 * operator's PYRO_DISK_OVERCOMMIT=1 is it sparse. Either way a create the host cannot back
 * (its size, or the floor) is refused with `disk_full` before anything is made.
 */
export async function createDisk(
  workspaceDir: string,
  filesDir: string,
  mib: number,
  mountable = true,
  env: NodeJS.ProcessEnv = process.env,
): Promise<DiskInfo> {
  const mkfs = mountable ? await which("mkfs.ext4") : undefined;
  const mount = mountable ? await which("mount") : undefined;
  const truncate = mountable ? await which("truncate") : undefined;
  const fallocate = mountable ? await which("fallocate") : undefined;
  const image = isRoot() && mkfs && mount && truncate;
  const sparse = overcommitAllowed(env) || !fallocate;
  await ensureHostSpace(
    workspaceDir,
    image && !sparse ? mib : 0,
    `a workspace disk of ${mib} MiB`,
    env,
    !!image && !sparse,
  );
  await mkdir(filesDir, { recursive: true });
  if (!image) return { disk_mib: mib, disk_enforced: false };
  const img = join(workspaceDir, DISK_IMAGE);
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const steps: [string, string[]][] = [
    sparse ? [truncate, ["-s", `${mib}M`, img]] : [fallocate, ["-l", `${mib}MiB`, img]],
    // No reserved blocks (the guest gets all it asked for); nodiscard keeps the preallocated
    // blocks allocated. A preallocated image has its inode tables zeroed now (fallocate's
    // ZERO_RANGE: metadata only, mkfs stays at ~25 ms for 4 GiB): left lazy, the kernel's
    // ext4lazyinit thread zeroes them after mount through the loop device, which punches
    // holes in the image (64 MiB of a 4 GiB one within seconds), undoing the reservation.
    // A sparse image stays lazy: zeroing would reserve those blocks after all.
    [
      mkfs,
      [
        "-q",
        "-F",
        "-m",
        "0",
        "-E",
        `root_owner=${uid}:${gid},lazy_itable_init=${sparse ? 1 : 0},lazy_journal_init=1,nodiscard`,
        img,
      ],
    ],
    [mount, ["-o", MOUNT_OPTIONS, img, filesDir]],
  ];
  for (const [file, args] of steps) {
    let r = await runCapture(file, args, { timeoutMs: 60_000 });
    // A file system that cannot preallocate (EOPNOTSUPP): sparse, as docs/host-requirements.md says.
    if (r.exitCode !== 0 && file === fallocate && /not supported/i.test(r.stderr))
      r = await runCapture(truncate, ["-s", `${mib}M`, img], { timeoutMs: 60_000 });
    if (r.exitCode !== 0) {
      await removeDisk(workspaceDir, filesDir).catch(
        ignore(
          "removing a half-made disk after a failed allocation: the allocation error is the one reported",
        ),
      );
      const out = (r.stderr || r.stdout).trim().slice(0, 300);
      if (isDiskFullErrno(out))
        throw new PyroError(
          "disk_full",
          `no space on the host for a workspace disk of ${mib} MiB in ${workspaceDir} (${file.split("/").pop()}: ${out})`,
          "ask for a smaller disk_mib, or free space on the host (delete workspaces or snapshots)",
        );
      throw new PyroError(
        "engine_failure",
        `cannot make the workspace disk (${file.split("/").pop()}: ${out})`,
        "check that loop devices work on this host (`losetup -f`), or see docs/host-requirements.md",
      );
    }
  }
  // An empty /workspace, as without an image.
  await rmdir(join(filesDir, "lost+found")).catch(
    ignore("an empty /workspace: a lost+found that cannot be removed stays"),
  );
  return { disk_mib: mib, disk_enforced: true };
}

/**
 * The mount table for views, one read shared by every caller that asks while it is being read:
 * a list asks for each running workspace at once, and on a host with many mounts each read
 * is a thread-pool job that queues behind a busy server's other work. Only diskFault uses it
 * (a fault seen a moment late is seen by the next view); mounting code reads its own.
 */
let sharedMountTable: Promise<string> | undefined;
function mountTableForViews(): Promise<string> {
  sharedMountTable ??= readFile("/proc/self/mountinfo", "utf8")
    .catch(() => "")
    .finally(() => {
      sharedMountTable = undefined;
    });
  return sharedMountTable;
}

/** The mountinfo line of `path` (the last: the one on top), split into fields. */
async function mountEntry(path: string): Promise<string[] | undefined> {
  const text = await mountTableForViews();
  let found: string[] | undefined;
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    if (f[4] && decode(f[4]) === path) found = f;
  }
  return found;
}

function decode(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/**
 * Why a mounted workspace disk can no longer be written, or undefined while it can: its
 * superblock went read-only (`ro`, or `emergency_ro` on newer kernels: errors=remount-ro
 * after the journal aborted) or ext4 counted an error. Cheap (one read of mountinfo, one of
 * sysfs), so `status` and `list` ask it of every running workspace with an image.
 */
export async function diskFault(filesDir: string): Promise<string | undefined> {
  const f = await mountEntry(filesDir);
  if (!f) return undefined;
  const dash = f.indexOf("-", 6);
  if (dash < 0 || f[dash + 1] !== "ext4") return undefined;
  const superOpts = (f[dash + 3] ?? "").split(",");
  const dev = (f[dash + 2] ?? "").split("/").pop() ?? "";
  const errors = Number((await readFile(`/sys/fs/ext4/${dev}/errors_count`, "utf8").catch(() => "0")).trim());
  if (!superOpts.includes("ro") && !superOpts.includes("emergency_ro") && !(errors > 0)) return undefined;
  const space = await hostSpace(dirname(filesDir));
  const low = space && space.free_mib < 64 ? ` (the host file system has ${space.free_mib} MiB free)` : "";
  return `its /workspace disk went read-only after a file system error${low}: most likely the host ran out of space and writes the guest made were not kept`;
}

/** The way back from `diskFault`, said in the reason of a failed workspace. */
export const DISK_FAULT_WAY_OUT =
  "free space on the host, then start the workspace again (it checks and repairs the disk with e2fsck first), or delete it";

/**
 * A stopped workspace's disk image mounted again where it is not (the host rebooted, or
 * someone unmounted it), so a restarted sandbox sees /workspace as it was. A disk that went
 * read-only (`diskFault`) is unmounted, checked and repaired (`e2fsck -fy`) and mounted
 * again: the way back after the host's disk filled. Called with the sandbox ended.
 */
export async function ensureDiskMounted(workspaceDir: string, filesDir: string): Promise<void> {
  const image = join(workspaceDir, DISK_IMAGE);
  if (!(await stat(image).catch(ignore("no disk image: the workspace has no disk to mount")))) return;
  let repair = false;
  if (await isMounted(filesDir)) {
    if (!(await diskFault(filesDir))) return;
    await unmount(filesDir);
    repair = true;
  }
  await mkdir(filesDir, { recursive: true });
  if (repair) await repairImage(image);
  const mount = (await which("mount")) ?? "mount";
  const r = await runCapture(mount, ["-o", MOUNT_OPTIONS, image, filesDir], {
    timeoutMs: 60_000,
  });
  if (r.exitCode !== 0)
    throw new PyroError(
      "engine_failure",
      `cannot mount the workspace disk ${image}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`,
      "check that loop devices work on this host (`losetup -f`)",
    );
  // e2fsck makes lost+found; kept only when it put something there (rmdir fails then).
  if (repair)
    await rmdir(join(filesDir, "lost+found")).catch(
      ignore("lost+found not empty (e2fsck put something there): it is kept"),
    );
}

/**
 * `e2fsck -fy` on the unmounted image of a disk that went read-only: replays what the journal
 * holds and fixes what the lost writeback left (data the host never got is gone; what was
 * synced before is there). Exit 0/1 are clean/fixed; anything else is said. A host still full
 * is refused first: the repair itself needs to write.
 */
async function repairImage(image: string): Promise<void> {
  const e2fsck = await which("e2fsck");
  if (!e2fsck) return;
  const space = await hostSpace(dirname(image));
  if (space && space.free_mib < 16)
    throw new PyroError(
      "disk_full",
      `cannot repair the workspace disk ${image}: the host file system holding it has ${space.free_mib} MiB free`,
      "free space on the host (delete workspaces, snapshots or old outputs), then start the workspace again",
    );
  const r = await runCapture(e2fsck, ["-fy", image], { timeoutMs: 600_000 });
  if (r.exitCode === null || r.exitCode > 1)
    throw new PyroError(
      "engine_failure",
      `e2fsck could not fully repair the workspace disk ${image} (exit ${r.exitCode}): ${(r.stdout + r.stderr).trim().split("\n").slice(-3).join("; ").slice(0, 300)}`,
      "export what you need from a snapshot, then delete the workspace",
    );
}

async function unmount(filesDir: string): Promise<void> {
  const umount = (await which("umount")) ?? "umount";
  let r = await runCapture(umount, [filesDir], { timeoutMs: 30_000 });
  // Busy (a process still has it open): detach it from the tree now; the kernel frees it
  // when the last user goes. Either way nothing below filesDir is the image any more.
  if (r.exitCode !== 0) r = await runCapture(umount, ["-l", filesDir], { timeoutMs: 30_000 });
  if (r.exitCode !== 0 && (await isMounted(filesDir)))
    throw new PyroError(
      "engine_failure",
      `cannot unmount the workspace disk at ${filesDir}: ${r.stderr.trim().slice(0, 300)}`,
    );
}

/** Unmounts `filesDir` if it is mounted (lazily when busy), then removes it and the image. */
export async function removeDisk(workspaceDir: string, filesDir: string): Promise<void> {
  if (await isMounted(filesDir)) await unmount(filesDir);
  await rm(filesDir, { recursive: true, force: true });
  await rm(join(workspaceDir, DISK_IMAGE), { force: true });
}

/** Removes a whole workspace directory, its disk unmounted first. */
export async function removeWorkspaceDir(workspaceDir: string): Promise<void> {
  await removeDisk(workspaceDir, join(workspaceDir, "files"));
  await removeTree(workspaceDir);
}
