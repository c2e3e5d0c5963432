import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubernetesEngine } from "../src/engines/kubernetes/engine.js";
import { objectName, sandboxClaim, warmPoolObjects } from "../src/engines/kubernetes/objects.js";
import type { SandboxSpec } from "../src/engines/types.js";
import { clusterEnv, clusterSkipReason } from "../test/kubernetes-helpers.js";

/**
 * Issue 28's rows, against the cluster KUBECONFIG names (skipped without one):
 *   - a claim from an agent-sandbox warm pool: SandboxClaim created → Ready (p50, p99; goal
 *     ≤ 200 ms, agent-sandbox's next target);
 *   - a cold Sandbox (or Pod) to its first exec's exit;
 *   - one exec round trip through the API server (client-node's WebSocket), beside `kubectl
 *     exec` of the same pod when kubectl is installed.
 */
type Add = (name: string) => { samples: number[] };

export const K8S_ROWS = {
  claim: "k8s: warm-pool claim → Ready",
  cold: "k8s: cold sandbox → first exec",
  exec: "k8s: exec `true` via API server (SDK)",
  kubectl: "k8s: `kubectl exec true`, same pod",
};

const id = (p: "vm" | "ws") => `${p}_${randomBytes(8).toString("hex")}`;

function spec(sandboxDir: string): SandboxSpec {
  return {
    id: id("vm"),
    environment: "debian:12",
    rootfs: "",
    sandboxDir,
    vcpuCount: 1,
    memMib: 256,
    network: false,
    expiresAt: new Date(Date.now() + 600_000).toISOString(),
  };
}

/** Undefined when the rows ran, else why not. */
export async function benchKubernetes(n: number, add: Add): Promise<string | undefined> {
  const skip = await clusterSkipReason();
  if (skip) return skip;
  const state = await mkdtemp(join(tmpdir(), "pyro-bench-k8s-"));
  const env = { ...process.env, ...clusterEnv(), PYRO_STATE_DIR: state };
  const engine = new KubernetesEngine({ stateDir: state }, env);
  try {
    const cold = add(K8S_ROWS.cold);
    const exec = add(K8S_ROWS.exec);
    const kubectl = hasKubectl() ? add(K8S_ROWS.kubectl) : undefined;
    for (let i = 0; i < Math.min(n, 5); i++) {
      const s = spec(join(state, `cold-${i}`));
      const t0 = performance.now();
      const h = await engine.create(s);
      await engine.exec(h, { argv: ["true"], timeoutMs: 30_000 });
      cold.samples.push(performance.now() - t0);
      await engine.destroy(h);
    }
    const s = spec(join(state, "exec"));
    const h = await engine.create(s);
    try {
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        await engine.exec(h, { argv: ["true"], timeoutMs: 30_000 });
        exec.samples.push(performance.now() - t0);
        if (kubectl) {
          const t1 = performance.now();
          spawnSync(
            "kubectl",
            ["exec", "-n", engine.config.namespace, objectName(s.id), "-c", "sandbox", "--", "true"],
            { env, stdio: "ignore" },
          );
          kubectl.samples.push(performance.now() - t1);
        }
      }
    } finally {
      await engine.destroy(h);
    }
    if ((await engine.resolveMode()) === "sandbox") await benchClaims(engine, n, add);
    return undefined;
  } finally {
    await rm(state, { recursive: true, force: true });
  }
}

async function benchClaims(engine: KubernetesEngine, n: number, add: Add): Promise<void> {
  const api = await engine.api();
  const cfg = engine.config;
  const pool = `pyro-bench-${process.pid}`;
  const objs = warmPoolObjects(cfg, pool, 2, { environment: "debian:12", vcpuCount: 1, memMib: 256 });
  for (const o of objs) await api.create(o);
  const row = add(K8S_ROWS.claim);
  try {
    for (let i = 0; i < n; i++) {
      await waitReadyReplicas(engine, pool, 1);
      const vm = id("vm");
      const t0 = performance.now();
      try {
        await api.create(sandboxClaim(cfg, vm, pool, undefined));
        await engine.waitClaim(api, cfg.namespace, objectName(vm), 60_000);
        row.samples.push(performance.now() - t0);
      } finally {
        await engine.removeOrphan(vm, join(tmpdir(), "pyro-bench-none"), undefined, true);
      }
    }
  } finally {
    for (const o of [...objs].reverse())
      await api.remove(o.apiVersion, o.kind, cfg.namespace, o.metadata.name);
  }
}

async function waitReadyReplicas(engine: KubernetesEngine, pool: string, want: number): Promise<void> {
  const api = await engine.api();
  const end = Date.now() + 180_000;
  while (Date.now() < end) {
    const p = await api.read(
      "extensions.agents.x-k8s.io/v1beta1",
      "SandboxWarmPool",
      engine.config.namespace,
      pool,
    );
    if ((p?.status?.readyReplicas ?? 0) >= want) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`warm pool ${pool} had no ready sandbox after 180 s`);
}

function hasKubectl(): boolean {
  try {
    execFileSync("kubectl", ["version", "--client"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? Number.NaN;
}

export function printKubernetes(rows: { name: string; samples: number[] }[], skip: string | undefined): void {
  if (skip) {
    console.log(`  (kubernetes rows skipped: ${skip})`);
    return;
  }
  const row = (name: string) => rows.find((r) => r.name === name);
  const claim = row(K8S_ROWS.claim);
  if (claim?.samples.length)
    console.log(
      `  warm-pool claim p50 / p99         ${pct(claim.samples, 50).toFixed(0)} / ${pct(claim.samples, 99).toFixed(0)} ms  (≤ 200 ms)`,
    );
  else console.log("  (warm-pool claim skipped: agent-sandbox's CRDs are not installed)");
  const exec = row(K8S_ROWS.exec);
  const kubectl = row(K8S_ROWS.kubectl);
  if (exec?.samples.length && kubectl?.samples.length)
    console.log(
      `  exec via API server / kubectl exec ${(pct(exec.samples, 50) / pct(kubectl.samples, 50)).toFixed(2)}x`,
    );
}
