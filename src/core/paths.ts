import { homedir } from "node:os";
import { join } from "node:path";

/**
 * Where pyro keeps its files. Nothing is written outside these two trees.
 * - cache: rebuildable data (environment root filesystems), `~/.cache/pyro-mcp`.
 * - state: sandboxes, workspaces and engine state, `~/.local/state/pyro-mcp`.
 * `PYRO_HOME` moves both under one directory (tests use it); `PYRO_CACHE_DIR` and
 * `PYRO_STATE_DIR` move them one at a time.
 */
export interface PyroPaths {
  cacheDir: string;
  stateDir: string;
  environmentsDir: string;
  vmsDir: string;
  workspacesDir: string;
  /** Full output logs of one-shot runs (vm_run, vm_exec), kept for a while to be paged. */
  outputsDir: string;
  runscRoot: string;
  /**
   * Read-only environment caches shared by every user of the host, searched after the
   * user's own: `PYRO_SHARED_CACHE` (empty: none), by default `/var/cache/pyro`, which
   * `scripts/setup-host.sh` fills as root. An unprivileged user cannot build in root's mode,
   * so this is how they get environments without building their own.
   */
  sharedEnvironmentsDirs?: string[];
}

export const DEFAULT_SHARED_CACHE = "/var/cache/pyro";

export function resolvePaths(env: NodeJS.ProcessEnv = process.env): PyroPaths {
  const home = env.HOME || homedir();
  const pyroHome = env.PYRO_HOME;
  const cacheDir =
    env.PYRO_CACHE_DIR ||
    (pyroHome ? join(pyroHome, "cache") : join(env.XDG_CACHE_HOME || join(home, ".cache"), "pyro-mcp"));
  const stateDir =
    env.PYRO_STATE_DIR ||
    (pyroHome
      ? join(pyroHome, "state")
      : join(env.XDG_STATE_HOME || join(home, ".local", "state"), "pyro-mcp"));
  const shared = env.PYRO_SHARED_CACHE ?? DEFAULT_SHARED_CACHE;
  return {
    cacheDir,
    stateDir,
    environmentsDir: join(cacheDir, "environments"),
    vmsDir: join(stateDir, "vms"),
    workspacesDir: join(stateDir, "workspaces"),
    outputsDir: join(stateDir, "outputs"),
    runscRoot: join(stateDir, "runsc"),
    sharedEnvironmentsDirs: shared && shared !== cacheDir ? [join(shared, "environments")] : [],
  };
}
