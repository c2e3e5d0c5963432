import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, openSync, readFileSync } from "node:fs";
import { mkdir, readdir, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { niced, setAutogroupNice } from "../../util/priority.js";
import { pidAlive, sandboxProcessEnv } from "../../util/proc.js";

/** Re-exported: the VM engines take their process helpers from here. */
export { pidAlive };

/** Unix socket paths must fit sun_path (108 bytes with the NUL). */
const MAX_SOCKET_PATH = 100;

export interface VmFiles {
  disk: string;
  consoleLog: string;
  qemuLog: string;
  agentSocket: string;
  qmpSocket: string;
  /** Where the sockets live (the sandbox dir, or a short directory under /tmp). */
  socketDir: string;
}

/** The files of one VM; sockets move to a short /tmp path when the sandbox path is too long. */
export async function vmFiles(sandboxDir: string): Promise<VmFiles> {
  const socketDir = await socketDirFor(sandboxDir);
  return {
    disk: join(sandboxDir, "disk.qcow2"),
    consoleLog: join(sandboxDir, "console.log"),
    qemuLog: join(sandboxDir, "qemu.log"),
    agentSocket: join(socketDir, "agent.sock"),
    qmpSocket: join(socketDir, "qmp.sock"),
    socketDir,
  };
}

/** The sandbox dir, or a short private directory under /tmp when socket paths would not fit. */
export async function socketDirFor(sandboxDir: string): Promise<string> {
  if (join(sandboxDir, "agent.sock").length <= MAX_SOCKET_PATH) return sandboxDir;
  const dir = join(tmpdir(), `pyro-vm-${createHash("sha256").update(sandboxDir).digest("hex").slice(0, 16)}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/**
 * Starts QEMU so that it outlives this process: its own session (detached), stdio to a log
 * file, not waited on. Returns its pid. At niceness `nice` (util/priority.ts), and so is its
 * session's autogroup: being a session of its own, it would otherwise weigh as much as all of
 * pyro's processes together on a host with autogroups.
 */
export function spawnDetached(
  binary: string,
  args: readonly string[],
  logPath: string,
  nice = 0,
): Promise<number> {
  const [file, argv] = niced(nice, binary, args);
  return new Promise((resolve, reject) => {
    const fd = openSync(logPath, "a");
    try {
      const child = spawn(file, argv, {
        detached: true,
        stdio: ["ignore", fd, fd],
        env: sandboxProcessEnv(),
      });
      child.once("error", reject);
      child.once("spawn", () => {
        child.unref();
        if (child.pid) void setAutogroupNice(child.pid, nice).then(() => resolve(child.pid as number));
        else reject(new Error(`could not start ${binary}`));
      });
    } finally {
      closeSync(fd);
    }
  });
}

/** True when `pid` is a live process whose command line contains `marker` (guards pid reuse). */
export function isOurProcess(pid: number | undefined, marker: string): boolean {
  if (!pidAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(marker);
  } catch {
    return false;
  }
}

/**
 * Live processes whose command line contains `marker`: how a VM is found when its pid was
 * never recorded (its creator was killed mid-create, or its record is damaged).
 */
export async function findProcesses(marker: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    if (isOurProcess(Number(name), marker)) pids.push(Number(name));
  }
  return pids;
}

/** Kills the VM process (SIGKILL: the VM is disposable) and waits until it is gone. */
export async function killVm(pid: number | undefined, marker: string, waitMs = 5000): Promise<boolean> {
  if (!isOurProcess(pid, marker)) return true;
  try {
    process.kill(pid!, "SIGKILL");
  } catch {
    return true;
  }
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline) {
    if (!pidAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return !pidAlive(pid);
}

const NOTABLE = /Kernel panic|pyro-init|pyro-agent|FAILED|not syncing|Oops|BUG:/;

/**
 * The last `n` non-empty lines of a log file for error messages, preceded by the last few
 * notable ones (a kernel panic line is followed by a register dump that would push it out).
 */
export async function tailLines(path: string, n = 12): Promise<string> {
  const text = await readFile(path, "utf8").catch(() => "");
  const lines = text
    .replace(/\r/g, "")
    .split("\n")
    .filter((l) => l.trim() !== "");
  const tail = lines.slice(-n);
  const notable = lines
    .slice(0, -n)
    .filter((l) => NOTABLE.test(l))
    .slice(-4);
  return [...notable, ...(notable.length ? ["…"] : []), ...tail].join("\n");
}
