import type { PyroPaths } from "../core/paths.js";
import { allEngines, engineByName, selectEngine } from "../engines/select.js";
import type { EngineRegistry } from "../sandbox/engines.js";

/** The real engines, as engine selection finds them for this state dir and environment. */
export function engineRegistry(paths: PyroPaths, env: NodeJS.ProcessEnv): EngineRegistry {
  return {
    select: (opts) => selectEngine(paths, opts, env),
    byName: (name) => engineByName(name, paths, env),
    all: () => allEngines(paths, env),
  };
}
