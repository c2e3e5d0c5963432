/**
 * Issue 29's idle rows: the host CPU that idle gVisor workspaces burn, one runsc build beside
 * another in one run. For each build: BENCH_IDLE_N (default 50) workspaces are created (4 at
 * a time), left to settle, then the CPU time (utime + stime, and the cutime + cstime of reaped
 * children) of every host process of their sandboxes is read from /proc at the start and the
 * end of BENCH_IDLE_SECONDS (default 60): the runsc sandbox and gofer (found by their
 * `--root=` flag) and everything under them (systrap's and ptrace's stub processes, `[exe]`).
 * The builds run one after the other, not at once, so one build's cost does not starve the
 * other's (and the machine carries one set at a time).
 *
 * Builds: BENCH_IDLE_RUNSC="label=/path,label=/path" (each on the platform pyro picks for it,
 * or label=/path@platform), else the runsc pyro finds (PYRO_RUNSC or PATH) on pyro's default
 * platform and, when present, Debian's old one at /usr/local/bin/runsc-20240729 as pyro ran it
 * before issue 29, on systrap (BENCH_IDLE_OLD_PLATFORM=ptrace compares it on ptrace).
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findRunsc, runscPlatform, runscVersion } from "../src/engines/gvisor/runsc.js";
import { Pyro } from "../src/index.js";
import type { WorkspaceHandle } from "../src/sdk/pyro.js";

export const OLD_RUNSC = "/usr/local/bin/runsc-20240729";

export interface IdleBuild {
  label: string;
  binary: string;
  /** A platform to force (PYRO_RUNSC_PLATFORM); undefined: pyro's choice. */
  platform?: string;
}

export interface IdleResult {
  build: IdleBuild;
  version: string;
  /** The platform its sandboxes ran on (the build's, or pyro's default). */
  platform: string;
  workspaces: number;
  seconds: number;
  /** CPU seconds all their host processes used over the window. */
  cpuSeconds: number;
  /** Host processes counted at the end (sandbox, gofer, stubs). */
  procs: number;
  /** Per idle workspace, in % of one core. */
  pctPerWorkspace: number;
}

/** The builds to compare, from BENCH_IDLE_RUNSC or what is installed. */
export async function idleBuilds(env: NodeJS.ProcessEnv = process.env): Promise<IdleBuild[]> {
  if (env.BENCH_IDLE_RUNSC)
    return env.BENCH_IDLE_RUNSC.split(",").map((part) => {
      const [label, rest] = part.split("=") as [string, string];
      const [binary, platform] = rest.split("@") as [string, string | undefined];
      return { label, binary, ...(platform ? { platform } : {}) };
    });
  const current = await findRunsc(env);
  const builds: IdleBuild[] = [];
  // The old build as pyro ran it before issue 29: on runsc's own default platform, systrap.
  if (existsSync(OLD_RUNSC) && current !== OLD_RUNSC)
    builds.push({ label: "old", binary: OLD_RUNSC, platform: env.BENCH_IDLE_OLD_PLATFORM ?? "systrap" });
  if (current) builds.push({ label: "current", binary: current });
  return builds;
}

export const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

interface ProcTicks {
  ppid: number;
  ticks: number;
  cmd: string;
}

/** Every process's parent, CPU ticks (own + reaped children's) and command line. */
async function readProcs(): Promise<Map<number, ProcTicks>> {
  const out = new Map<number, ProcTicks>();
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, "utf8").catch(() => "");
    // Fields after the command's closing parenthesis: state ppid ... utime(14) stime cutime cstime.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (f.length < 15) continue;
    const cmd = await readFile(`/proc/${name}/cmdline`, "utf8").catch(() => "");
    out.set(Number(name), {
      ppid: Number(f[1]),
      ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]),
      cmd,
    });
  }
  return out;
}

/** The processes whose command line names `needle` (runsc sandbox, gofer) and all under them. */
export async function treeTicks(needle: string): Promise<Map<number, number>> {
  const procs = await readProcs();
  const children = new Map<number, number[]>();
  for (const [pid, p] of procs) children.set(p.ppid, [...(children.get(p.ppid) ?? []), pid]);
  const picked = new Map<number, number>();
  const walk = (pid: number) => {
    if (picked.has(pid)) return;
    picked.set(pid, procs.get(pid)!.ticks);
    for (const c of children.get(pid) ?? []) walk(c);
  };
  for (const [pid, p] of procs) if (p.cmd.includes(needle)) walk(pid);
  return picked;
}

/** CPU ticks between two readings: processes in both by their difference, new ones in full. */
export function ticksBetween(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [pid, t] of after) sum += t - (before.get(pid) ?? 0);
  return sum;
}

/**
 * rm -r of a bench state dir, after unmounting what runsc left mounted in it: runsc mounts a
 * network namespace at `<root>/null-netns` for `--network=none` sandboxes (several stacked,
 * one per start) and never unmounts it, so a plain rm fails with EBUSY.
 */
export async function removeStateDir(dir: string): Promise<void> {
  for (let round = 0; round < 100; round++) {
    const info = await readFile("/proc/self/mountinfo", "utf8").catch(() => "");
    const points = info
      .split("\n")
      .map((l) => l.split(" ")[4] ?? "")
      .filter((m) => m.startsWith(`${dir}/`));
    if (!points.length) break;
    for (const m of new Set(points)) {
      try {
        execFileSync("umount", ["-l", m], { stdio: "ignore" });
      } catch {
        // already gone with its parent: the next round reads mountinfo again
      }
    }
  }
  await rm(dir, { recursive: true, force: true });
}

async function pool<T>(items: T[], width: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** N idle workspaces of one runsc build: their host CPU over `seconds`. Deletes them after. */
export async function measureIdle(build: IdleBuild, n: number, seconds: number): Promise<IdleResult> {
  const stateDir = await mkdtemp(join(tmpdir(), "pyro-bench-idle-"));
  const { PYRO_RUNSC_PLATFORM: _, ...base } = process.env;
  const env = {
    ...base,
    PYRO_STATE_DIR: stateDir,
    PYRO_QUIET: "1",
    PYRO_RUNSC: build.binary,
    PYRO_POOL_SIZE: "0",
    // 50-200 workspaces of the default 4 GiB disk would reserve more than a CI machine has;
    // idle disks stay nearly empty (as bench:scale does, docs/security.md).
    PYRO_DISK_OVERCOMMIT: "1",
    ...(build.platform ? { PYRO_RUNSC_PLATFORM: build.platform } : {}),
  };
  const pyro = new Pyro({ env });
  const all: WorkspaceHandle[] = [];
  try {
    process.stderr.write(`bench: idle CPU, ${build.label} runsc: creating ${n} workspaces...\n`);
    await pool(
      Array.from({ length: n }, (_, i) => i),
      4,
      async () => {
        all.push(await pyro.createWorkspace({ environment: "debian:12", ttlSeconds: 3600 }));
      },
    );
    // Let start-up work (page faults, the init's first polls) finish before the window.
    await new Promise((r) => setTimeout(r, 5_000));
    const needle = `--root=${join(stateDir, "runsc")}`;
    process.stderr.write(`bench: idle CPU, ${build.label} runsc: ${seconds} s window...\n`);
    const before = await treeTicks(needle);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const after = await treeTicks(needle);
    const wall = (performance.now() - t0) / 1000;
    const cpuSeconds = ticksBetween(before, after) / CLK_TCK;
    return {
      build,
      version: (await runscVersion(build.binary)) ?? "?",
      platform: runscPlatform(env).platform,
      workspaces: all.length,
      seconds: wall,
      cpuSeconds,
      procs: after.size,
      pctPerWorkspace: (100 * cpuSeconds) / wall / Math.max(1, all.length),
    };
  } finally {
    process.stderr.write(`bench: idle CPU, ${build.label} runsc: deleting ${all.length} workspaces...\n`);
    await pool(all, 4, async (w) => {
      await w.delete().catch((e) => process.stderr.write(`bench: delete ${w.id}: ${e}\n`));
    });
    await removeStateDir(stateDir);
  }
}

/** All builds, one after the other. BENCH_IDLE=0 skips (returns []). */
export async function benchIdle(env: NodeJS.ProcessEnv = process.env): Promise<IdleResult[]> {
  if (env.BENCH_IDLE === "0") return [];
  const n = Number(env.BENCH_IDLE_N ?? 50);
  const seconds = Number(env.BENCH_IDLE_SECONDS ?? 60);
  const out: IdleResult[] = [];
  for (const b of await idleBuilds(env)) out.push(await measureIdle(b, n, seconds));
  return out;
}

/** Goal (issue 29): ≤ 0.1 % of a core per idle workspace with the current runsc. */
export function printIdle(results: IdleResult[]): void {
  if (!results.length) {
    console.log("  (idle CPU rows skipped: BENCH_IDLE=0 or no runsc)");
    return;
  }
  console.log("\nidle CPU (goal: ≤ 0.10 % of a core per idle workspace with the current runsc):");
  for (const r of results)
    console.log(
      `  ${r.build.label.padEnd(8)} ${r.version.padEnd(36)} ${r.platform.padEnd(8)} ` +
        `${r.workspaces} idle × ${r.seconds.toFixed(0)} s: ${r.cpuSeconds.toFixed(2)} CPU s ` +
        `(${r.procs} processes), ${r.pctPerWorkspace.toFixed(3)} % of a core each`,
    );
  const old = results.find((r) => r.build.label === "old");
  const cur = results.find((r) => r.build.label === "current");
  if (old && cur && cur.pctPerWorkspace > 0)
    console.log(`  old / current per workspace: ${(old.pctPerWorkspace / cur.pctPerWorkspace).toFixed(1)}x`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  benchIdle()
    .then(printIdle)
    .catch((e) => {
      console.error(`bench idle failed: ${e instanceof Error ? e.message : e}`);
      process.exit(1);
    });
}
