/**
 * `npm run bench:scale`: many idle workspaces on this machine (issue 17).
 *   1. CLI `pyro workspace exec WS -- true` p50 in a state dir with one workspace and in one
 *      with BENCH_SCALE_N (default 200) idle workspaces, interleaved (one sample of each in
 *      turn, so machine load hits both): the per-call work must not grow with the count.
 *   2. Each of the N workspaces answers `exec true` (SDK): one after another (p50, p99 of
 *      the single exec), then all at once (p50, p99, wall time).
 *   3. Host memory per idle workspace (RSS and PSS of its runsc sandbox and gofer).
 *   4. Host CPU of the N idle workspaces over BENCH_SCALE_IDLE_SECONDS (default 30; 0 skips),
 *      counted as bench/idle.ts counts it (sandbox, gofer and the stubs under them).
 * Workspaces run on pyro's default gVisor platform (engines/gvisor/runsc.ts) unless
 * BENCH_SCALE_PLATFORM names one (`ptrace`, `systrap`). Before issue 29 this bench forced
 * ptrace: under runsc 20240729's systrap each idle sandbox burnt ~2.6-5 % of a core here.
 * Everything it creates is deleted at the end, also on failure.
 */
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findRunsc, runscPlatform, runscVersion } from "../src/engines/gvisor/runsc.js";
import { Pyro } from "../src/index.js";
import type { WorkspaceHandle } from "../src/sdk/pyro.js";
import { CLK_TCK, removeStateDir, ticksBetween, treeTicks } from "./idle.js";
import { CLI, median, percentile, processMemoryKb, timeProcess } from "./speed.js";

const N = Number(process.env.BENCH_SCALE_N ?? 200);
const ITER = Number(process.env.BENCH_ITERATIONS ?? 21);
const PLATFORM = process.env.BENCH_SCALE_PLATFORM ?? "default";
const IDLE_SECONDS = Number(process.env.BENCH_SCALE_IDLE_SECONDS ?? 30);

async function pool<T>(items: T[], width: number, fn: (x: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

const fmt = (xs: number[]) =>
  `p50 ${median(xs).toFixed(1)} ms, p99 ${percentile(xs, 99).toFixed(1)} ms (n=${xs.length}, max ${Math.max(...xs).toFixed(1)})`;

async function main(): Promise<void> {
  const stateDir = await mkdtemp(join(tmpdir(), "pyro-bench-scale-"));
  const soloDir = await mkdtemp(join(tmpdir(), "pyro-bench-solo-"));
  const platform = PLATFORM === "default" ? {} : { PYRO_RUNSC_PLATFORM: PLATFORM };
  // 200 workspaces of the default 4 GiB disk would reserve 800 GiB (more than a CI machine
  // has): this bench measures exec among many workspaces, whose disks stay nearly empty, so
  // it opts in to sparse images as the operator can (PYRO_DISK_OVERCOMMIT, docs/security.md).
  const env = {
    ...process.env,
    PYRO_STATE_DIR: stateDir,
    PYRO_QUIET: "1",
    PYRO_DISK_OVERCOMMIT: "1",
    ...platform,
  };
  const soloEnv = { ...env, PYRO_STATE_DIR: soloDir };
  const pyro = new Pyro({ env });
  const solo = new Pyro({ env: soloEnv });
  const all: WorkspaceHandle[] = [];
  let alone: WorkspaceHandle | undefined;
  try {
    await pyro.pullEnvironment("debian:12");
    alone = await solo.createWorkspace({ environment: "debian:12", ttlSeconds: 3600 });
    process.stderr.write(`bench:scale: creating ${N} idle workspaces...\n`);
    const t0 = performance.now();
    await pool(
      Array.from({ length: N }, (_, i) => i),
      4,
      async () => {
        all.push(await pyro.createWorkspace({ environment: "debian:12", ttlSeconds: 3600 }));
      },
    );
    const createS = (performance.now() - t0) / 1000;
    // Let creation settle before measuring.
    await new Promise((r) => setTimeout(r, 3_000));
    let idle: { cpuSeconds: number; wall: number } | undefined;
    if (IDLE_SECONDS > 0) {
      process.stderr.write(`bench:scale: host CPU of ${N} idle workspaces for ${IDLE_SECONDS} s...\n`);
      const needle = `--root=${join(stateDir, "runsc")}`;
      const before = await treeTicks(needle);
      const i0 = performance.now();
      await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
      const after = await treeTicks(needle);
      idle = { cpuSeconds: ticksBetween(before, after) / CLK_TCK, wall: (performance.now() - i0) / 1000 };
    }

    process.stderr.write(`bench:scale: CLI exec, 1 vs ${N} workspaces, ${ITER} interleaved runs...\n`);
    const exec = (e: NodeJS.ProcessEnv, id: string) =>
      timeProcess(process.execPath, [CLI, "workspace", "exec", id, "--", "true"], e);
    const one: number[] = [];
    const many: number[] = [];
    const target = all[0]!;
    await exec(soloEnv, alone.id);
    await exec(env, target.id);
    for (let i = 0; i < ITER; i++) {
      one.push(await exec(soloEnv, alone.id));
      many.push(await exec(env, target.id));
    }

    process.stderr.write(`bench:scale: each of ${all.length} workspaces answers exec true...\n`);
    const sequential: number[] = [];
    for (const w of all) {
      const s = performance.now();
      const r = await w.exec(["true"]);
      if (r.exit_code !== 0) throw new Error(`${w.id}: exit ${r.exit_code}`);
      sequential.push(performance.now() - s);
    }
    const burst: number[] = [];
    const b0 = performance.now();
    await Promise.all(
      all.map(async (w) => {
        const s = performance.now();
        const r = await w.exec(["true"], { timeoutSeconds: 120 });
        if (r.exit_code !== 0) throw new Error(`${w.id}: exit ${r.exit_code}`);
        burst.push(performance.now() - s);
      }),
    );
    const burstWall = performance.now() - b0;

    const mem = await processMemoryKb(`--root=${join(stateDir, "runsc")}`);
    const perWs = (kb: number) => (kb / all.length / 1024).toFixed(1);

    const plat = runscPlatform(env);
    const version = (await runscVersion(String(await findRunsc(env)))) ?? "?";
    console.log(
      `\npyro bench:scale — ${all.length} idle gVisor workspaces (${version}, platform ${plat.platform}${plat.source === "default" ? ", pyro's default" : ""})\n`,
    );
    console.log(`  created ${all.length} workspaces in ${createS.toFixed(1)} s (4 at a time)`);
    console.log(`  CLI workspace exec, state with 1 workspace:    ${fmt(one)}`);
    console.log(`  CLI workspace exec, state with ${all.length} workspaces: ${fmt(many)}`);
    console.log(`  ratio p50 ${all.length} / 1:  ${(median(many) / median(one)).toFixed(2)}x  (≤ 1.10x)`);
    console.log(`  SDK exec true, each workspace in turn:  ${fmt(sequential)}`);
    console.log(`  SDK exec true, all ${all.length} at once: ${fmt(burst)}, wall ${burstWall.toFixed(0)} ms`);
    if (idle)
      console.log(
        `  host CPU of ${all.length} idle workspaces over ${idle.wall.toFixed(0)} s: ${idle.cpuSeconds.toFixed(2)} CPU s, ` +
          `${((100 * idle.cpuSeconds) / idle.wall / all.length).toFixed(3)} % of a core each (≤ 0.10 %)`,
      );
    console.log(
      `  host memory per idle workspace: RSS ${perWs(mem.rss)} MiB, PSS ${perWs(mem.pss)} MiB (${mem.procs} runsc processes)`,
    );
  } finally {
    process.stderr.write(`bench:scale: deleting ${all.length + 1} workspaces...\n`);
    await alone?.delete().catch(() => undefined);
    await pool(all, 8, async (w) => {
      await w.delete().catch((e) => process.stderr.write(`bench:scale: delete ${w.id}: ${e}\n`));
    });
    await removeStateDir(stateDir);
    await removeStateDir(soloDir);
  }
}

main().catch((e) => {
  console.error(`bench:scale failed: ${e instanceof Error ? e.message : e}`);
  process.exit(1);
});
