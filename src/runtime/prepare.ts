import { readdir } from "node:fs/promises";
import { join } from "node:path";
import type { PrepareInputT, PrepareResultT } from "../contract/environments.js";
import { RunInput } from "../contract/vm.js";
import { PyroError } from "../core/errors.js";
import { VERSION } from "../core/version.js";
import type { CallContext } from "../sandbox/context.js";
import { ignore } from "../util/best-effort.js";
import { readJson, writeJsonAtomic } from "../util/json-store.js";
import type { Runtime } from "./runtime.js";

/**
 * `pyro prepare [ENV]`: make the first real call fast. It builds (or finds) the
 * environment, then runs one throwaway sandbox, which compiles or checks the static sandbox
 * helpers, writes the engine's bundle pieces and warms the page cache over the root
 * filesystem. A marker in the cache records what was prepared, so `pyro doctor
 * --environment ENV` can say warm, cold or stale without running anything.
 */
interface PreparedMarker {
  name: string;
  digest: string;
  pyro_version: string;
  execution_mode: string;
  prepared_at: string;
}

const markerPath = (rt: Runtime, name: string) =>
  join(rt.paths.cacheDir, "prepared", `${name.replace(/[^\w.-]/g, "_")}.json`);

export type WarmState = "warm" | "cold" | "stale";

export interface EnvironmentState {
  name: string;
  state: WarmState;
  detail: string;
}

/** An older recipe's build of `name` still in the cache (the recipe changed since). */
async function olderBuild(rt: Runtime, name: string, digest: string): Promise<boolean> {
  const dirs = await readdir(rt.paths.environmentsDir).catch(() => [] as string[]);
  for (const d of dirs) {
    if (d.startsWith(".")) continue;
    const m = await readJson<{ name?: string; digest?: string }>(
      join(rt.paths.environmentsDir, d, "manifest.json"),
    ).catch(ignore("unreadable environment manifest: not an older build"));
    if (m?.name === name && m.digest !== digest) return true;
  }
  return false;
}

export async function environmentState(rt: Runtime, name: string): Promise<EnvironmentState> {
  const info = await rt.envs.info(name);
  const marker = await readJson<PreparedMarker>(markerPath(rt, name)).catch(ignore("no prepared marker"));
  if (!info.installed) {
    if (marker || (info.digest !== null && (await olderBuild(rt, name, info.digest))))
      return {
        name,
        state: "stale",
        detail: `an older build of ${name} is cached, not the current recipe; \`pyro prepare ${name}\` rebuilds it`,
      };
    return {
      name,
      state: "cold",
      detail: `not built yet: the first call builds it (about 20-60 s); \`pyro prepare ${name}\` does it now`,
    };
  }
  if (!marker)
    return {
      name,
      state: "cold",
      detail: `built, never prepared: \`pyro prepare ${name}\` runs a first sandbox now`,
    };
  if (marker.digest !== info.digest || marker.pyro_version !== VERSION)
    return {
      name,
      state: "stale",
      detail: `prepared by pyro ${marker.pyro_version}${marker.digest !== info.digest ? " for an older recipe" : ""}; \`pyro prepare ${name}\` again`,
    };
  return {
    name,
    state: "warm",
    detail: `built and prepared (${marker.execution_mode}) at ${marker.prepared_at}`,
  };
}

export async function prepare(
  rt: Runtime,
  input: PrepareInputT,
  ctx: CallContext = {},
): Promise<PrepareResultT> {
  const name = input.environment;
  const before = await environmentState(rt, name);
  if (before.state === "warm" && !input.force)
    return {
      environment: name,
      state: "warm",
      pulled: false,
      warm_run_ms: null,
      execution_mode: null,
      detail: before.detail,
    };
  ctx.onProgress?.({ message: `${name}: building or checking the environment`, progress: 1, total: 2 });
  const pulled = await rt.pullEnvironment(name, ctx);
  ctx.onProgress?.({ message: `${name}: running a throwaway sandbox to warm caches`, progress: 2, total: 2 });
  const t0 = performance.now();
  const run = await rt.vms.run(
    RunInput.parse({ environment: name, command: ["true"], network: input.network, timeout_seconds: 120 }),
    ctx,
  );
  const warm_run_ms = Math.round(performance.now() - t0);
  if (run.exit_code !== 0)
    throw new PyroError(
      "engine_failure",
      `the warm-up sandbox exited ${run.exit_code}: ${run.stderr.slice(0, 300)}`,
      "run `pyro doctor` to see which engine works here",
    );
  const marker: PreparedMarker = {
    name,
    digest: pulled.environment.digest ?? "",
    pyro_version: VERSION,
    execution_mode: run.execution_mode,
    prepared_at: new Date().toISOString(),
  };
  await writeJsonAtomic(markerPath(rt, name), marker);
  return {
    environment: name,
    state: "warm",
    pulled: pulled.pulled,
    warm_run_ms,
    execution_mode: run.execution_mode,
    detail: `built and prepared (${run.execution_mode}) at ${marker.prepared_at}`,
  };
}
