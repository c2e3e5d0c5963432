import { GvisorEngine } from "../engines/gvisor/engine.js";
import { findRunsc } from "../engines/gvisor/runsc.js";
import { HostEngine } from "../engines/host/engine.js";
import type { Engine, EngineName } from "../engines/types.js";
import { PyroError } from "../errors.js";
import type { PyroPaths } from "../paths.js";

/**
 * Which engine runs a sandbox. Preference: firecracker → qemu (KVM) → gvisor → qemu (TCG);
 * this build ships gvisor, and host only when the caller allows unisolated execution.
 * `PYRO_ENGINE` forces one and fails clearly if it cannot run.
 */
export const ENGINE_ORDER: readonly EngineName[] = ["firecracker", "qemu", "gvisor"];

export function engineByName(name: EngineName, paths: PyroPaths, env: NodeJS.ProcessEnv = process.env): Engine | undefined {
  switch (name) {
    case "gvisor":
      return new GvisorEngine(paths.runscRoot, env);
    case "host":
      return new HostEngine();
    default:
      return undefined;
  }
}

/** Cheap readiness check used on every call; `pyro doctor` does the real probe boots. */
async function quickAvailable(name: EngineName, env: NodeJS.ProcessEnv): Promise<boolean> {
  if (name === "gvisor") return (await findRunsc(env)) !== undefined;
  if (name === "host") return true;
  return false;
}

const FIX =
  "run `sudo scripts/setup-host.sh` to install gVisor's runsc, check `pyro doctor`, or pass --allow-host-compat to run WITHOUT isolation";

export async function selectEngine(
  paths: PyroPaths,
  opts: { allowHostCompat: boolean },
  env: NodeJS.ProcessEnv = process.env,
): Promise<Engine> {
  const forced = env.PYRO_ENGINE as EngineName | undefined;
  if (forced) {
    const valid: EngineName[] = ["firecracker", "qemu", "gvisor", "host"];
    if (!valid.includes(forced)) {
      throw new PyroError("invalid_argument", `PYRO_ENGINE=${JSON.stringify(forced)} is not an engine`, `use one of ${valid.join(", ")}`);
    }
    if (forced === "host" && !opts.allowHostCompat) {
      throw new PyroError("invalid_argument", "PYRO_ENGINE=host runs without isolation and needs --allow-host-compat");
    }
    const e = engineByName(forced, paths, env);
    if (!e || !(await quickAvailable(forced, env))) {
      throw new PyroError("engine_unavailable", `engine ${forced} (forced by PYRO_ENGINE) cannot run on this host`, FIX);
    }
    return e;
  }
  for (const name of ENGINE_ORDER) {
    if (await quickAvailable(name, env)) {
      const e = engineByName(name, paths, env);
      if (e) return e;
    }
  }
  if (opts.allowHostCompat) return new HostEngine();
  throw new PyroError("no_engine", "no isolated engine can run here: runsc (gVisor) was not found and no microVM engine is available", FIX);
}
