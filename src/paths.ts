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
}

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
  return {
    cacheDir,
    stateDir,
    environmentsDir: join(cacheDir, "environments"),
    vmsDir: join(stateDir, "vms"),
    workspacesDir: join(stateDir, "workspaces"),
    outputsDir: join(stateDir, "outputs"),
    runscRoot: join(stateDir, "runsc"),
  };
}
