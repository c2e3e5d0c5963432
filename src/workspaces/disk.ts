import { mkdir, readFile, rm, rmdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { PyroError } from "../errors.js";
import { runCapture, which } from "../util/proc.js";

/**
 * A workspace's disk: the host side of its /workspace. Where pyro may mount (it runs as
 * root), `files/` is an ext4 file system in a sparse image (`disk.img`) of the requested
 * size, loop-mounted `nosuid,nodev`: the guest sees that size in `df`, a write past it fails
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
 * Makes `filesDir` the workspace's disk of `mib` MiB: a mounted image when possible
 * (root, mkfs.ext4 and mount present), else a plain directory. `filesDir` must not exist.
 */
export async function createDisk(
  workspaceDir: string,
  filesDir: string,
  mib: number,
  mountable = true,
): Promise<DiskInfo> {
  await mkdir(filesDir, { recursive: true });
  if (!mountable) return { disk_mib: mib, disk_enforced: false };
  const mkfs = await which("mkfs.ext4");
  const mount = await which("mount");
  const truncate = await which("truncate");
  if (!isRoot() || !mkfs || !mount || !truncate) return { disk_mib: mib, disk_enforced: false };
  const image = join(workspaceDir, DISK_IMAGE);
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const steps: [string, string[]][] = [
    [truncate, ["-s", `${mib}M`, image]],
    // No reserved blocks (the guest gets all it asked for); lazy init keeps mkfs at ~50 ms.
    [
      mkfs,
      ["-q", "-F", "-m", "0", "-E", `root_owner=${uid}:${gid},lazy_itable_init=1,lazy_journal_init=1`, image],
    ],
    [mount, ["-o", "loop,nosuid,nodev,noatime", image, filesDir]],
  ];
  for (const [file, args] of steps) {
    const r = await runCapture(file, args, { timeoutMs: 60_000 });
    if (r.exitCode !== 0) {
      await removeDisk(workspaceDir, filesDir).catch(() => undefined);
      throw new PyroError(
        "engine_failure",
        `cannot make the workspace disk (${file.split("/").pop()}: ${(r.stderr || r.stdout).trim().slice(0, 300)})`,
        "check that loop devices work on this host (`losetup -f`), or see docs/host-requirements.md",
      );
    }
  }
  // An empty /workspace, as without an image.
  await rmdir(join(filesDir, "lost+found")).catch(() => undefined);
  return { disk_mib: mib, disk_enforced: true };
}

/**
 * A stopped workspace's disk image mounted again where it is not (the host rebooted, or
 * someone unmounted it), so a restarted sandbox sees /workspace as it was.
 */
export async function ensureDiskMounted(workspaceDir: string, filesDir: string): Promise<void> {
  const image = join(workspaceDir, DISK_IMAGE);
  if (!(await stat(image).catch(() => undefined)) || (await isMounted(filesDir))) return;
  await mkdir(filesDir, { recursive: true });
  const mount = (await which("mount")) ?? "mount";
  const r = await runCapture(mount, ["-o", "loop,nosuid,nodev,noatime", image, filesDir], {
    timeoutMs: 60_000,
  });
  if (r.exitCode !== 0)
    throw new PyroError(
      "engine_failure",
      `cannot mount the workspace disk ${image}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`,
      "check that loop devices work on this host (`losetup -f`)",
    );
}

/** Unmounts `filesDir` if it is mounted (lazily when busy), then removes it and the image. */
export async function removeDisk(workspaceDir: string, filesDir: string): Promise<void> {
  if (await isMounted(filesDir)) {
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
  await rm(filesDir, { recursive: true, force: true });
  await rm(join(workspaceDir, DISK_IMAGE), { force: true });
}

/** Removes a whole workspace directory, its disk unmounted first. */
export async function removeWorkspaceDir(workspaceDir: string): Promise<void> {
  await removeDisk(workspaceDir, join(workspaceDir, "files"));
  await rm(workspaceDir, { recursive: true, force: true });
}
