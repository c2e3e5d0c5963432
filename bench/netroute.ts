/**
 * `BENCH_ONLY=netroute npm run bench` (and the full run): a gVisor sandbox with network on
 * each route (src/engines/gvisor/net-route.ts), side by side, interleaved:
 *   - a one-shot `pyro run --network-policy egress -- true` (CLI process): namespace, veth and
 *     table made and removed on every run, runsc taking eth0 into its netstack or not;
 *   - SDK execWorkspace into a running workspace with network on, one per route.
 * PYRO_GVISOR_NET_ROUTE picks the route. No packet leaves the sandboxes: `true` opens no
 * socket, so the rows measure what the route costs a sandbox's start and its exec path.
 * Skipped without root (no network namespaces) and for netstack where the runsc predates it.
 */
import { spawnSync } from "node:child_process";
import { type NetRoute, netRouteFor } from "../src/engines/gvisor/net-route.js";
import { findRunsc } from "../src/engines/gvisor/runsc.js";
import { Pyro } from "../src/index.js";
import { CLI, median, type Row, timeProcess } from "./speed.js";

type Add = (name: string) => Row;

const ROUTES: readonly NetRoute[] = ["netstack", "host-stack"];
export const NETROUTE = {
  run: (r: NetRoute) => `pyro run --network-policy egress true (CLI), ${r}`,
  exec: (r: NetRoute) => `SDK execWorkspace true, network on, ${r}`,
};

/** Why the route rows cannot run here, or undefined. */
async function skipReason(env: NodeJS.ProcessEnv): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return "network namespaces need root";
  const bin = await findRunsc(env);
  if (!bin) return "runsc not installed";
  const version = spawnSync(bin, ["--version"], { encoding: "utf8" }).stdout.split("\n")[0];
  if (netRouteFor(version, {}) !== "netstack") return `${bin} (${version}) predates gVisor's netstack here`;
  return undefined;
}

export async function benchNetRoute(n: number, env: NodeJS.ProcessEnv, add: Add): Promise<boolean> {
  const skip = await skipReason(env);
  if (skip) {
    process.stderr.write(`bench: network routes skipped: ${skip}\n`);
    return false;
  }
  process.stderr.write(
    `bench: network one-shot and exec, netstack vs host-stack, ${n} interleaved iterations...\n`,
  );
  const envOf = (r: NetRoute) => ({ ...env, PYRO_GVISOR_NET_ROUTE: r, PYRO_POOL_SIZE: "0" });
  const run = Object.fromEntries(ROUTES.map((r) => [r, add(NETROUTE.run(r))])) as Record<NetRoute, Row>;
  for (let i = 0; i < n; i++)
    for (const r of ROUTES)
      run[r].samples.push(
        await timeProcess(
          process.execPath,
          [CLI, "run", "debian:12", "--network-policy", "egress", "--", "true"],
          envOf(r),
        ),
      );
  const exec = Object.fromEntries(ROUTES.map((r) => [r, add(NETROUTE.exec(r))])) as Record<NetRoute, Row>;
  const ws = await Promise.all(
    ROUTES.map((r) =>
      new Pyro({ env: envOf(r) }).createWorkspace({ environment: "debian:12", network: true }),
    ),
  );
  try {
    for (const w of ws) await w.exec(["true"]);
    for (let i = 0; i < n; i++)
      for (const [k, r] of ROUTES.entries()) {
        const t0 = performance.now();
        await ws[k]!.exec(["true"]);
        exec[r].samples.push(performance.now() - t0);
      }
  } finally {
    for (const w of ws) await w.delete();
  }
  return true;
}

export function printNetRouteRatios(rows: Row[]): void {
  const med = (name: string) => median(rows.find((r) => r.name === name)?.samples ?? []);
  if (!rows.some((r) => r.name === NETROUTE.run("netstack"))) return;
  const line = (label: string, a: string, b: string) =>
    console.log(`  ${label.padEnd(44)} ${(med(a) / med(b)).toFixed(2)}x`);
  line("network run, netstack / host-stack", NETROUTE.run("netstack"), NETROUTE.run("host-stack"));
  line("network exec, netstack / host-stack", NETROUTE.exec("netstack"), NETROUTE.exec("host-stack"));
}
