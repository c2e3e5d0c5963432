/**
 * Issue 29's one-shot rows with pyro's defaults: the warm pool as it is out of the box (no
 * PYRO_POOL_* set: on, topped up by the detached fill after each claim), against raw `runsc
 * run`, interleaved. Before each pyro sample the bench waits (untimed) until the background
 * top-up has put a ready sandbox back and let go of the pool, so a sample measures a plain
 * `pyro run` on a machine where pyro ran a moment ago, not a fill racing it.
 * The state dir's pool is drained at the end (nothing is left running).
 */
import { existsSync, lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Pyro } from "../src/index.js";
import { POOL_DEFAULTS, poolConfig } from "../src/pool/config.js";
import { CLI, median, type Row, timeProcess } from "./speed.js";

export const DEFAULTS = {
  raw: "raw `runsc run` true (defaults loop)",
  cli: "pyro run true, defaults (pool on, CLI)",
  sdk: "SDK runInVm true, defaults (pool on)",
};

/** Ready entries of any run key, and whether a fill still holds the pool. */
function poolState(stateDir: string): { ready: number; filling: boolean } {
  const root = join(stateDir, "pool");
  let ready = 0;
  if (existsSync(root))
    for (const k of readdirSync(root))
      if (/^[0-9a-f]{16}$/.test(k) && existsSync(join(root, k, "ready")))
        ready += readdirSync(join(root, k, "ready")).filter((f) => f.endsWith(".json")).length;
  // The lock is a symlink naming its owner (util/lock.ts): lstat, not exists (which follows it).
  let filling = true;
  try {
    lstatSync(join(root, "fill.lock"));
  } catch {
    filling = false;
  }
  return { ready, filling };
}

async function settled(stateDir: string, deadlineMs = 60_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const s = poolState(stateDir);
    if (s.ready >= POOL_DEFAULTS.size && !s.filling) return;
    if (Date.now() > end) throw new Error(`the default pool did not refill within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function printDefaultsRatios(rows: Row[]): void {
  const r = (name: string) => rows.find((x) => x.name === name);
  if (!r(DEFAULTS.cli)?.samples.length) return;
  const med = (name: string) => median(r(name)!.samples);
  console.log(
    `  CLI pyro run, defaults / raw runsc run       ${(med(DEFAULTS.cli) / med(DEFAULTS.raw)).toFixed(2)}x  (≤ 0.60x)`,
  );
  console.log(
    `  SDK runInVm, defaults / raw runsc run        ${(med(DEFAULTS.sdk) / med(DEFAULTS.raw)).toFixed(2)}x  (≤ 0.35x)`,
  );
}

export async function benchDefaults(
  n: number,
  env: NodeJS.ProcessEnv,
  runscBin: string,
  rawArgs: (i: number) => string[],
  add: (name: string) => Row,
): Promise<void> {
  if (poolConfig({}).size === 0) return; // the pool is off by default: the cold rows say it all
  process.stderr.write(`bench: defaults (pool on out of the box), ${n} interleaved iterations...\n`);
  const {
    PYRO_POOL_SIZE: _s,
    PYRO_POOL_KEYS: _k,
    PYRO_POOL_TOPUP: _t,
    PYRO_POOL_IDLE_SECONDS: _i,
    ...base
  } = env;
  const stateDir = String(base.PYRO_STATE_DIR);
  const pyro = new Pyro({ env: base });
  const raw = add(DEFAULTS.raw);
  const cli = add(DEFAULTS.cli);
  const sdk = add(DEFAULTS.sdk);
  const run = [CLI, "run", "debian:12", "--", "true"];
  try {
    // The first run of a fresh state dir is cold and starts the background fill.
    await timeProcess(process.execPath, run, base);
    for (let i = 0; i < n; i++) {
      raw.samples.push(await timeProcess(runscBin, rawArgs(i)));
      await settled(stateDir);
      cli.samples.push(await timeProcess(process.execPath, run, base));
      await settled(stateDir);
      const t0 = performance.now();
      const r = await pyro.runInVm({ environment: "debian:12", command: ["true"] });
      sdk.samples.push(performance.now() - t0);
      if (r.boot_ms !== 0) throw new Error("the default SDK run did not come from the pool (boot_ms > 0)");
    }
  } finally {
    await settled(stateDir).catch(() => undefined);
    await pyro.drainPool();
  }
}
