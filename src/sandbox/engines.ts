import type { Engine, EngineName } from "../engines/types.js";

/**
 * The engines a manager may use, handed in by whoever builds it (the Runtime builds it from
 * engine selection; unit tests pass a fake engine). Managers never pick an engine by name
 * themselves, so what runs a sandbox is decided in one place and can be replaced.
 */
export interface EngineRegistry {
  /** The engine for a new sandbox: PYRO_ENGINE when set, else the best one this host runs. */
  select(opts: { allowHostCompat: boolean }): Promise<Engine>;
  /** The engine a record names (the one that made its sandbox), if this build has it. */
  byName(name: EngineName): Engine | undefined;
  /** Every engine that can leave a sandbox behind: where to look when a record cannot say which. */
  all(): Engine[];
}
