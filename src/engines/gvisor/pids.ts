import { readFile } from "node:fs/promises";
import { PyroError } from "../../core/errors.js";

/**
 * The process limit of a gVisor sandbox (a fork bomb's bound). Two layers, measured on this
 * host (runsc 20240729, systrap, cgroup v1, PID 1 not systemd):
 *
 * - In the guest: the sandbox init gives every command RLIMIT_NPROC = the limit (soft and
 *   hard; no command holds CAP_SYS_RESOURCE to raise it), which gVisor enforces: a fork past
 *   it fails with EAGAIN and the sandbox lives on. The init and its exec handlers keep no
 *   limit, so pyro still reaches a sandbox whose commands took every slot.
 * - On the host, as a backstop: `linux.resources.pids.limit` in the OCI spec, which runsc
 *   writes to the sandbox's pids cgroup (rootful only: rootless runsc sets up no cgroups).
 *   It counts host tasks: the sentry's threads and one systrap stub process or more per guest
 *   process, so it sits well above the guest limit. When it is hit the sentry cannot make a
 *   stub and the sandbox dies (measured), reported as "too many processes" from the cgroup's
 *   pids.events. Without any limit, a fork bomb grew the host by ~60 processes a second
 *   until the host's pid_max (32768 here) would be spent.
 */
export const DEFAULT_PIDS_LIMIT = 1024;
export const MIN_PIDS_LIMIT = 64;
export const MAX_PIDS_LIMIT = 65_536;

/** The guest limit from `PYRO_PIDS_LIMIT` (default DEFAULT_PIDS_LIMIT); `0`/`off` for none. */
export function pidsLimit(env: NodeJS.ProcessEnv): number {
  const raw = env.PYRO_PIDS_LIMIT?.trim();
  if (raw === undefined || raw === "") return DEFAULT_PIDS_LIMIT;
  if (raw === "0" || raw === "off") return 0;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < MIN_PIDS_LIMIT || n > MAX_PIDS_LIMIT)
    throw new PyroError(
      "invalid_argument",
      `PYRO_PIDS_LIMIT=${raw} is not a process limit`,
      `set it to a whole number from ${MIN_PIDS_LIMIT} to ${MAX_PIDS_LIMIT} (default ${DEFAULT_PIDS_LIMIT}), or 0 for no limit`,
    );
  return n;
}

/**
 * The host cgroup's limit for a guest limit: room for the sentry's own threads (~40 idle here,
 * more under load) and for the stub processes and threads of `guest` processes (measured:
 * 2.3 host tasks per guest process with a bomb held at a guest limit of 256, pooled stubs kept after it was killed).
 */
export function hostPidsLimit(guest: number): number {
  return guest * 3 + 512;
}

/** Whether the sandbox's host pids cgroup refused a task (v1 or v2 layout): it hit the backstop. */
export async function pidsLimitHit(cid: string): Promise<boolean> {
  for (const file of [`/sys/fs/cgroup/pids/${cid}/pids.events`, `/sys/fs/cgroup/${cid}/pids.events`]) {
    const text = await readFile(file, "utf8").catch(() => "");
    const m = /^max (\d+)/m.exec(text);
    if (m && Number(m[1]) > 0) return true;
  }
  return false;
}
