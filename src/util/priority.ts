import { writeFile } from "node:fs/promises";
import { PyroError } from "../core/errors.js";

/**
 * The CPU priority of sandbox processes (gVisor's sandbox and gofer and what they fork, QEMU
 * and Firecracker), below pyro's own: a guest that burns every core must not make the
 * control plane (`workspace list`, `delete`, the server answering other clients) crawl.
 *
 * Three kernel mechanisms decide who gets a busy core, and a niceness alone reaches only one:
 * - the niceness (`nice -n N` before exec, inherited by everything the process forks) weighs
 *   tasks against others in the same scheduling group;
 * - a cgroup with the cpu controller is a group of its own: rootful runsc puts each sandbox in
 *   one (`/pyro-<id>`), which competes with the rest of the host at its `cpu.shares` (1024 by
 *   default, as much as all of pyro's own processes together), whatever its tasks' niceness:
 *   so gVisor sandboxes also get the shares of their niceness (OCI `linux.resources.cpu.shares`);
 * - with autogroups on (`kernel.sched_autogroup_enabled`, Debian's default), each session of
 *   a task in the root cgroup is a group: a detached process (QEMU, rootless runsc's sandbox,
 *   which make sessions of their own) gets its autogroup's niceness set too.
 *
 * Raising a niceness needs no privilege, so all of it works rootless.
 */
export const DEFAULT_SANDBOX_NICE = 10;
export const MAX_SANDBOX_NICE = 19;

/** `PYRO_SANDBOX_NICE` (default DEFAULT_SANDBOX_NICE); `0` leaves sandboxes at pyro's own priority. */
export function sandboxNice(env: NodeJS.ProcessEnv): number {
  const raw = env.PYRO_SANDBOX_NICE?.trim();
  if (raw === undefined || raw === "") return DEFAULT_SANDBOX_NICE;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > MAX_SANDBOX_NICE)
    throw new PyroError(
      "invalid_argument",
      `PYRO_SANDBOX_NICE=${raw} is not a niceness`,
      `set it to a whole number from 0 (sandboxes at pyro's own CPU priority) to ${MAX_SANDBOX_NICE} (default ${DEFAULT_SANDBOX_NICE})`,
    );
  return n;
}

/** argv that runs `file args` at niceness `nice` (coreutils `nice`), or unchanged at 0. */
export function niced(nice: number, file: string, args: readonly string[]): [string, string[]] {
  return nice > 0 ? ["nice", ["-n", String(nice), file, ...args]] : [file, [...args]];
}

/** The kernel's weight of a niceness (sched_prio_to_weight, nice 0 = 1024): each step is ~1.25×. */
const WEIGHT = [1024, 820, 655, 526, 423, 335, 272, 215, 172, 137, 110, 87, 70, 56, 45, 36, 29, 23, 18, 15];

/** cgroup cpu.shares that weigh a group like one task of this niceness (undefined at 0: the default). */
export function cpuSharesForNice(nice: number): number | undefined {
  if (nice <= 0) return undefined;
  return WEIGHT[Math.min(nice, MAX_SANDBOX_NICE)];
}

/**
 * Gives the autogroup (session) of `pid` this niceness; false when it cannot (no autogroups,
 * the process is gone). Only matters for a process in the root cgroup; harmless otherwise.
 */
export async function setAutogroupNice(pid: number | undefined, nice: number): Promise<boolean> {
  if (!pid || nice <= 0) return false;
  return writeFile(`/proc/${pid}/autogroup`, String(nice)).then(
    () => true,
    () => false,
  );
}

/** One line for `pyro doctor`. */
export function sandboxPriorityDetail(nice: number): string {
  return nice > 0
    ? `sandbox processes run at nice ${nice} (gVisor cgroup cpu.shares ${cpuSharesForNice(nice)}), below pyro's own (PYRO_SANDBOX_NICE)`
    : "sandbox processes run at pyro's own CPU priority (PYRO_SANDBOX_NICE=0): a guest burning CPU slows pyro's commands";
}
