import { CATALOG } from "../environments/catalog.js";
import type { EnvironmentStore } from "../environments/store.js";

export interface SharedCacheReport {
  dirs: string[];
  environments: string[];
  filled: boolean;
  detail: string;
}

/** What set-up puts in the shared cache, and the one command that puts it there. */
const FILL =
  "an administrator fills it for every user with `sudo scripts/setup-host.sh` (once pyro is built)";

/**
 * Whether the host-wide read-only environment cache holds the catalog environments. Without
 * them a user's first run of one builds it in their own cache (about 20–40 s, a few hundred
 * MB in their home), so doctor says which are there and how the rest get there.
 */
export async function sharedCacheReport(envs: EnvironmentStore): Promise<SharedCacheReport> {
  const found = await envs.sharedCatalog();
  const dirs = found.map((f) => f.dir);
  const environments = [...new Set(found.flatMap((f) => f.environments))];
  const missing = CATALOG.map((r) => r.name).filter((n) => !environments.includes(n));
  const filled = dirs.length > 0 && missing.length === 0;
  const where = dirs.join(", ");
  const detail =
    dirs.length === 0
      ? "no shared cache (PYRO_SHARED_CACHE is empty): every environment is built in your own cache"
      : filled
        ? `${where} holds every catalog environment (${environments.join(", ")}): first runs read it, nothing is built in your cache`
        : environments.length === 0
          ? `${where} is empty: your first run of an environment builds it in your own cache (about 20–40 s); ${FILL}`
          : `${where} holds ${environments.join(", ")}, not ${missing.join(", ")} (a first run of those builds it in your own cache); ${FILL}`;
  return { dirs, environments, filled, detail };
}
