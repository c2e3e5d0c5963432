/**
 * `BENCH_ONLY=platform npm run bench`: gVisor's platforms measured on the work pyro cares
 * about (issue 29), for each runsc build (bench/idle.ts idleBuilds) and each platform in
 * BENCH_PLATFORMS (default `systrap,ptrace`; add `kvm` where /dev/kvm really runs guests):
 *   - idle: BENCH_PLATFORM_IDLE_N (default 10) idle workspaces for BENCH_PLATFORM_IDLE_SECONDS
 *     (default 30), host CPU per workspace (as the idle rows count it);
 *   - fork-heavy: 200 × /bin/true from one shell in a workspace (median of BENCH_ITERATIONS,
 *     default 3), against the same on the host;
 *   - agent-like: in debian:12-build, compile and run a small C program and start python3
 *     five times, against the same on the host.
 * The numbers chose the default platform (engines/gvisor/runsc.ts DEFAULT_PLATFORM).
 */
import { spawn } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runscVersion } from "../src/engines/gvisor/runsc.js";
import { Pyro } from "../src/index.js";
import { idleBuilds, measureIdle, removeStateDir } from "./idle.js";
import { median } from "./speed.js";

const FORK = "i=0; while [ $i -lt 200 ]; do /bin/true; i=$((i+1)); done";
const AGENT =
  "cd \"$(mktemp -d)\" && printf 'int main(void){return 0;}\\n' > a.c && gcc -O1 -o a a.c && ./a && " +
  "for i in 1 2 3 4 5; do python3 -c 'import json, os, subprocess'; done";

function hostSh(script: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const c = spawn("sh", ["-c", script], { stdio: "ignore" });
    c.on("error", reject);
    c.on("close", (code) =>
      code === 0 ? resolve(performance.now() - t0) : reject(new Error(`host: ${code}`)),
    );
  });
}

interface Work {
  label: string;
  platform: string;
  idlePct?: number;
  forkMs?: number;
  agentMs?: number;
  error?: string;
}

async function timedExec(pyro: Pyro, environment: string, script: string, n: number): Promise<number> {
  const ws = await pyro.createWorkspace({ environment, ttlSeconds: 600 });
  try {
    await ws.exec(["sh", "-c", script], { timeoutSeconds: 300 }); // warm caches
    const xs: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const r = await ws.exec(["sh", "-c", script], { timeoutSeconds: 300 });
      if (r.exit_code !== 0) throw new Error(`exit ${r.exit_code}: ${r.stderr.slice(-300)}`);
      xs.push(performance.now() - t0);
    }
    return median(xs);
  } finally {
    await ws.delete();
  }
}

export async function benchPlatforms(): Promise<void> {
  const n = Number(process.env.BENCH_ITERATIONS ?? 3);
  const idleN = Number(process.env.BENCH_PLATFORM_IDLE_N ?? 10);
  const idleS = Number(process.env.BENCH_PLATFORM_IDLE_SECONDS ?? 30);
  const platforms = (process.env.BENCH_PLATFORMS ?? "systrap,ptrace").split(",");
  const hostFork = median([await hostSh(FORK), await hostSh(FORK), await hostSh(FORK)]);
  const hostAgent = median([await hostSh(AGENT), await hostSh(AGENT), await hostSh(AGENT)]);
  const out: Work[] = [];
  for (const b of await idleBuilds()) {
    const version = (await runscVersion(b.binary)) ?? "?";
    for (const platform of platforms) {
      const w: Work = { label: `${b.label} ${version}`, platform };
      out.push(w);
      const stateDir = await mkdtemp(join(tmpdir(), "pyro-bench-platform-"));
      const pyro = new Pyro({
        env: {
          ...process.env,
          PYRO_STATE_DIR: stateDir,
          PYRO_QUIET: "1",
          PYRO_POOL_SIZE: "0",
          PYRO_RUNSC: b.binary,
          PYRO_RUNSC_PLATFORM: platform,
        },
      });
      try {
        process.stderr.write(`bench:platform: ${w.label} ${platform}\n`);
        w.forkMs = await timedExec(pyro, "debian:12", FORK, n);
        w.agentMs = await timedExec(pyro, "debian:12-build", AGENT, n);
        if (idleN > 0) w.idlePct = (await measureIdle({ ...b, platform }, idleN, idleS)).pctPerWorkspace;
      } catch (e) {
        w.error = e instanceof Error ? e.message.slice(0, 200) : String(e);
      } finally {
        await removeStateDir(stateDir);
        // Each figure as it comes: a long run that fails later still shows what it measured.
        process.stderr.write(`bench:platform: ${JSON.stringify(w)}\n`);
      }
    }
  }
  report(out, hostFork, hostAgent);
}

function report(out: Work[], hostFork: number, hostAgent: number): void {
  console.log(
    `\ngVisor platforms (host: 200 × /bin/true ${hostFork.toFixed(0)} ms, agent-like ${hostAgent.toFixed(0)} ms)\n`,
  );
  for (const w of out)
    console.log(
      w.error
        ? `  ${w.label.padEnd(44)} ${w.platform.padEnd(8)} failed: ${w.error}`
        : `  ${w.label.padEnd(44)} ${w.platform.padEnd(8)} idle ${w.idlePct?.toFixed(3) ?? "-"} %/ws  ` +
            `fork ${w.forkMs!.toFixed(0)} ms (${(w.forkMs! / hostFork).toFixed(1)}x host)  ` +
            `agent ${w.agentMs!.toFixed(0)} ms (${(w.agentMs! / hostAgent).toFixed(2)}x host)`,
    );
}

if (import.meta.url === `file://${process.argv[1]}`)
  benchPlatforms().catch((e) => {
    console.error(`bench:platform failed: ${e instanceof Error ? e.message : e}`);
    process.exit(1);
  });
