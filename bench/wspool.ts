/**
 * `BENCH_ONLY=wspool npm run bench`: `workspace create` with a small seed (10 files) from the
 * warm pool (a `debian:12#ws` slot claimed and seeded) vs fresh (disk + sandbox made on the
 * path), CLI and SDK, interleaved; beside them the copy of the seed itself (`cp -a`), the floor
 * the pool aims at. The pool is refilled (and every workspace deleted) between samples,
 * untimed, so each pooled create finds a ready slot and no background work skews a sample.
 */
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Pyro } from "../src/index.js";
import { CLI, median, type Row, timeProcess } from "./speed.js";

type Add = (name: string) => Row;

export const WSPOOL = {
  copy: "cp -a of the 10-file seed",
  cliFresh: "CLI workspace create, 10-file seed, fresh",
  cliPool: "CLI workspace create, 10-file seed, pool",
  sdkFresh: "SDK createWorkspace, 10-file seed, fresh",
  sdkPool: "SDK createWorkspace, 10-file seed, pool",
};

async function slotIds(stateDir: string): Promise<string[]> {
  const out: string[] = [];
  const root = join(stateDir, "pool");
  for (const k of await readdir(root).catch(() => [] as string[]))
    out.push(...(await readdir(join(root, k, "slots")).catch(() => [] as string[])));
  return out;
}

export async function benchWorkspacePool(n: number, env: NodeJS.ProcessEnv, add: Add): Promise<void> {
  process.stderr.write(`bench: workspace create from the pool vs fresh, ${n} interleaved iterations...\n`);
  const stateDir = String(env.PYRO_STATE_DIR);
  const seed = join(stateDir, "wspool-seed");
  await mkdir(join(seed, "src"), { recursive: true });
  for (let i = 0; i < 10; i++)
    await writeFile(join(seed, "src", `f${i}.ts`), `export const x${i} = ${i};\n`.repeat(40));
  const freshEnv = { ...env, PYRO_POOL_SIZE: "0" };
  const poolEnv = { ...env, PYRO_POOL_SIZE: "2", PYRO_POOL_TOPUP: "0", PYRO_POOL_KEYS: "debian:12#ws" };
  const fresh = new Pyro({ env: freshEnv });
  const pooled = new Pyro({ env: poolEnv });
  const rows = {
    copy: add(WSPOOL.copy),
    cliFresh: add(WSPOOL.cliFresh),
    cliPool: add(WSPOOL.cliPool),
    sdkFresh: add(WSPOOL.sdkFresh),
    sdkPool: add(WSPOOL.sdkPool),
  };
  const create = ["workspace", "create", "--seed-path", seed, "--json"];
  try {
    for (let i = 0; i < n; i++) {
      await pooled.fillPool();
      const slots = await slotIds(stateDir);
      if (slots.length !== 2) throw new Error(`the pool has ${slots.length} slots, not 2`);
      const copyTo = join(stateDir, `copy-${i}`);
      rows.copy.samples.push(await timeProcess("cp", ["-a", seed, copyTo]));
      await rm(copyTo, { recursive: true, force: true });
      rows.cliFresh.samples.push(await timeProcess(process.execPath, [CLI, ...create], freshEnv));
      rows.cliPool.samples.push(await timeProcess(process.execPath, [CLI, ...create], poolEnv));
      let t0 = performance.now();
      await fresh.createWorkspace({ environment: "debian:12", seedPath: seed });
      rows.sdkFresh.samples.push(performance.now() - t0);
      t0 = performance.now();
      const ws = await pooled.createWorkspace({ environment: "debian:12", seedPath: seed });
      rows.sdkPool.samples.push(performance.now() - t0);
      if ((await slotIds(stateDir)).length !== 0 || !slots.includes(ws.id))
        throw new Error("a pooled create did not take a slot");
      const ids = (await readdir(join(stateDir, "workspaces"))).filter((x) => x.startsWith("ws_"));
      await Promise.all(ids.map((id) => fresh.deleteWorkspace(id)));
    }
  } finally {
    await pooled.drainPool();
  }
}

export function printWorkspacePoolRatios(rows: Row[]): void {
  const med = (name: string) => median(rows.find((r) => r.name === name)!.samples);
  const line = (label: string, a: string, b: string) =>
    console.log(`  ${label.padEnd(44)} ${(med(a) / med(b)).toFixed(2)}x`);
  line("CLI workspace create, pool / fresh", WSPOOL.cliPool, WSPOOL.cliFresh);
  line("SDK createWorkspace, pool / fresh", WSPOOL.sdkPool, WSPOOL.sdkFresh);
  console.log(
    `  SDK createWorkspace from the pool, minus the seed copy: ${(med(WSPOOL.sdkPool) - med(WSPOOL.copy)).toFixed(1)} ms`,
  );
}
