/**
 * Issue 17's rows for `npm run bench` (bench.ts calls these), each interleaved with its
 * reference in one loop so machine load hits both:
 *   - CLI start-up: `pyro --version` vs `node -e ''`
 *   - CLI `pyro workspace exec WS -- true` vs `node -e ''` + raw `runsc exec` into the same sandbox
 *   - the warm pool: CLI `pyro run` and SDK runInVm from a warm pool vs raw `runsc run`, and
 *     the memory (RSS and PSS) of one ready pooled sandbox's host processes
 * The pool rows fill the pool between samples (not timed) with PYRO_POOL_TOPUP=0, so no
 * detached filler runs during a sample: the rows measure a claim from a warm pool.
 */
import { spawn } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { Pyro } from "../src/index.js";

export type Row = { name: string; samples: number[] };
type Add = (name: string) => Row;

export const CLI = join(import.meta.dirname, "..", "dist", "cli", "main.js");

export function timeProcess(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(file, args, { stdio: ["ignore", "ignore", "pipe"], env });
    let err = "";
    child.stderr.on("data", (c) => {
      err += c;
    });
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0
        ? resolve(performance.now() - t0)
        : reject(new Error(`${file} ${args.join(" ")} exited ${code}: ${err.slice(-500)}`)),
    );
  });
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

/**
 * NODE_EXTRA_CA_CERTS makes every Node process parse the CA bundle before any JavaScript runs
 * (~30 ms here, where the environment sets it): the same for `node -e ''` and pyro, but it
 * weighs on the ratios against raw runsc. Where it is set, the CLI rows are also measured
 * without it (the figures of a machine that does not set it).
 */
const CA_VAR = process.env.NODE_EXTRA_CA_CERTS;
const NO_CA = " (NODE_EXTRA_CA_CERTS unset)";
function withoutCa(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { NODE_EXTRA_CA_CERTS: _, ...rest } = env;
  return rest;
}

export const SPEED = {
  node: "node -e '' (Node start-up)",
  version: "pyro --version",
  rawExec: "raw `runsc exec` true (CLI loop)",
  cliExec: "pyro workspace exec WS -- true (CLI)",
  rawRun: "raw `runsc run` true (pool loop)",
  cliPool: "pyro run true, warm pool (CLI)",
  sdkPool: "SDK runInVm true, warm pool",
};

export async function benchStartup(n: number, add: Add): Promise<void> {
  process.stderr.write(`bench: CLI start-up, ${n} interleaved iterations...\n`);
  const node = add(SPEED.node);
  const version = add(SPEED.version);
  for (let i = 0; i < n; i++) {
    node.samples.push(await timeProcess(process.execPath, ["-e", ""]));
    version.samples.push(await timeProcess(process.execPath, [CLI, "--version"]));
  }
}

export async function benchCliExec(
  n: number,
  pyro: Pyro,
  env: NodeJS.ProcessEnv,
  runscBin: string,
  runscFlags: string[],
  add: Add,
): Promise<void> {
  process.stderr.write(`bench: CLI workspace exec, ${n} interleaved iterations...\n`);
  const ws = await pyro.createWorkspace({ environment: "debian:12" });
  try {
    const node = add(`${SPEED.node} (exec loop)`);
    const raw = add(SPEED.rawExec);
    const cli = add(SPEED.cliExec);
    const nodeNoCa = CA_VAR ? add(`${SPEED.node} (exec loop)${NO_CA}`) : undefined;
    const cliNoCa = CA_VAR ? add(`${SPEED.cliExec}${NO_CA}`) : undefined;
    const exec = [CLI, "workspace", "exec", ws.id, "--", "true"];
    await timeProcess(process.execPath, exec, env);
    for (let i = 0; i < n; i++) {
      node.samples.push(await timeProcess(process.execPath, ["-e", ""]));
      raw.samples.push(await timeProcess(runscBin, [...runscFlags, "exec", `pyro-${ws.id}`, "true"]));
      cli.samples.push(await timeProcess(process.execPath, exec, env));
      nodeNoCa?.samples.push(await timeProcess(process.execPath, ["-e", ""], withoutCa(process.env)));
      cliNoCa?.samples.push(await timeProcess(process.execPath, exec, withoutCa(env)));
    }
  } finally {
    await ws.delete();
  }
}

/** RSS and PSS (KiB) of the host processes whose command line names `needle` (runsc sandbox, gofer). */
export async function processMemoryKb(needle: string): Promise<{ rss: number; pss: number; procs: number }> {
  let rss = 0;
  let pss = 0;
  let procs = 0;
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    const cmd = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (!cmd.startsWith("runsc") || !cmd.includes(needle)) continue;
    const roll = await readFile(`/proc/${pid}/smaps_rollup`, "utf8").catch(() => "");
    rss += Number(/^Rss:\s+(\d+)/m.exec(roll)?.[1] ?? 0);
    pss += Number(/^Pss:\s+(\d+)/m.exec(roll)?.[1] ?? 0);
    procs++;
  }
  return { rss, pss, procs };
}

export async function benchPool(
  n: number,
  env: NodeJS.ProcessEnv,
  runscBin: string,
  rawArgs: (i: number) => string[],
  add: Add,
): Promise<{ rssMib: number; pssMib: number }> {
  process.stderr.write(`bench: warm pool, ${n} interleaved iterations...\n`);
  const poolEnv = { ...env, PYRO_POOL_SIZE: "2", PYRO_POOL_TOPUP: "0", PYRO_POOL_KEYS: "debian:12" };
  const pyro = new Pyro({ env: poolEnv });
  try {
    await pyro.fillPool();
    // Memory of one idle pooled sandbox, measured while the pool is full and idle.
    const ready = await readdir(join(String(env.PYRO_STATE_DIR), "pool")).then(async (keys) => {
      const k = keys.find((x) => /^[0-9a-f]{16}$/.test(x))!;
      return readdir(join(String(env.PYRO_STATE_DIR), "pool", k, "ready"));
    });
    let rss = 0;
    let pss = 0;
    for (const f of ready) {
      const m = await processMemoryKb(`/sandboxes/${f.slice(0, 19)}/`);
      rss += m.rss;
      pss += m.pss;
    }
    const raw = add(SPEED.rawRun);
    const cli = add(SPEED.cliPool);
    const sdk = add(SPEED.sdkPool);
    const cliNoCa = CA_VAR ? add(`${SPEED.cliPool}${NO_CA}`) : undefined;
    const run = [CLI, "run", "debian:12", "--", "true"];
    for (let i = 0; i < n; i++) {
      raw.samples.push(await timeProcess(runscBin, rawArgs(i)));
      await pyro.fillPool();
      cli.samples.push(await timeProcess(process.execPath, run, poolEnv));
      if (cliNoCa) {
        await pyro.fillPool();
        cliNoCa.samples.push(await timeProcess(process.execPath, run, withoutCa(poolEnv)));
      }
      const t0 = performance.now();
      const r = await pyro.runInVm({ environment: "debian:12", command: ["true"] });
      sdk.samples.push(performance.now() - t0);
      if (r.boot_ms !== 0) throw new Error("the SDK run did not come from the pool (boot_ms > 0)");
    }
    return { rssMib: rss / ready.length / 1024, pssMib: pss / ready.length / 1024 };
  } finally {
    await pyro.drainPool();
  }
}

export function printSpeedRatios(rows: Row[], pool: { rssMib: number; pssMib: number } | undefined): void {
  const med = (name: string) => median(rows.find((r) => r.name === name)!.samples);
  const line = (label: string, v: number, goal: string) =>
    console.log(`  ${label.padEnd(44)} ${v.toFixed(2)}x  (${goal})`);
  line("pyro --version / node -e ''", med(SPEED.version) / med(SPEED.node), "≤ 1.30x");
  line(
    "CLI workspace exec / (node -e '' + raw exec)",
    med(SPEED.cliExec) / (med(`${SPEED.node} (exec loop)`) + med(SPEED.rawExec)),
    "≤ 1.30x",
  );
  const has = (name: string) => rows.some((r) => r.name === name);
  if (has(`${SPEED.cliExec}${NO_CA}`))
    line(
      "  the same, NODE_EXTRA_CA_CERTS unset",
      med(`${SPEED.cliExec}${NO_CA}`) / (med(`${SPEED.node} (exec loop)${NO_CA}`) + med(SPEED.rawExec)),
      "≤ 1.30x",
    );
  if (pool) {
    line("CLI pyro run, warm pool / raw runsc run", med(SPEED.cliPool) / med(SPEED.rawRun), "≤ 0.60x");
    if (has(`${SPEED.cliPool}${NO_CA}`))
      line(
        "  the same, NODE_EXTRA_CA_CERTS unset",
        med(`${SPEED.cliPool}${NO_CA}`) / med(SPEED.rawRun),
        "≤ 0.60x",
      );
    line("SDK runInVm, warm pool / raw runsc run", med(SPEED.sdkPool) / med(SPEED.rawRun), "≤ 0.35x");
    console.log(
      `  pool memory per idle sandbox (runsc sandbox + gofer): RSS ${pool.rssMib.toFixed(1)} MiB, PSS ${pool.pssMib.toFixed(1)} MiB`,
    );
  }
}
