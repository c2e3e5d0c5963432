import { existsSync } from "node:fs";
import { KubernetesEngine } from "../src/engines/kubernetes/engine.js";

/**
 * The cluster the kubernetes engine's end-to-end tests run against: KUBECONFIG (what `npm run
 * cluster:up` prints last) plus the PYRO_K8S_* settings that cluster needs (image, RuntimeClass,
 * storage class). scripts/run-tests.mjs starts the test cluster (`npm run cluster:up`) before
 * these files and names it in PYRO_TEST_KUBECONFIG, or says in PYRO_TEST_CLUSTER_UNAVAILABLE
 * why this machine cannot run one (the tests skip with it) or in PYRO_TEST_CLUSTER_FAILED that
 * it failed to start (the tests fail with it).
 */
export const K8S_KEYS = [
  "KUBECONFIG",
  "PYRO_K8S_NAMESPACE",
  "PYRO_K8S_IMAGE",
  "PYRO_K8S_IMAGES",
  "PYRO_K8S_RUNTIME_CLASS",
  "PYRO_K8S_STORAGE_CLASS",
  "PYRO_K8S_PULL_POLICY",
  "PYRO_K8S_MODE",
  "PYRO_K8S_WORKSPACE_VOLUME",
] as const;

export function clusterEnv(): Record<string, string> {
  const env: Record<string, string> = { PYRO_ENGINE: "kubernetes" };
  for (const k of K8S_KEYS) if (process.env[k]) env[k] = process.env[k]!;
  // The test cluster's own variable (test/e2e/support/cluster.ts) wins over a user's KUBECONFIG,
  // and its image is the one scripts/cluster/images.sh imports (nothing can be pulled there).
  if (process.env.PYRO_TEST_KUBECONFIG) {
    env.KUBECONFIG = process.env.PYRO_TEST_KUBECONFIG;
    env.PYRO_K8S_IMAGE ??= TEST_CLUSTER_IMAGE;
    env.PYRO_K8S_PULL_POLICY ??= "Never";
  }
  return env;
}

/** The Debian 12 image the test cluster imports (scripts/cluster/lib.sh DEBIAN_IMAGE). */
export const TEST_CLUSTER_IMAGE = "localhost/pyro/debian:12-pyro1";

let reason: Promise<string | undefined> | undefined;

/** Why the kubernetes tests cannot run here, or undefined when the cluster answers. */
export function clusterSkipReason(): Promise<string | undefined> {
  reason ??= (async () => {
    if (process.env.PYRO_TEST_CLUSTER_FAILED) throw new Error(process.env.PYRO_TEST_CLUSTER_FAILED);
    if (process.env.PYRO_TEST_CLUSTER_UNAVAILABLE && !process.env.KUBECONFIG)
      return `no Kubernetes cluster: ${process.env.PYRO_TEST_CLUSTER_UNAVAILABLE}`;
    const kc = clusterEnv().KUBECONFIG;
    if (!kc) return "no Kubernetes cluster: KUBECONFIG is not set (npm run cluster:up prints one)";
    if (!existsSync(kc)) return `no Kubernetes cluster: KUBECONFIG ${kc} does not exist`;
    const probe = await new KubernetesEngine(
      { stateDir: "/nonexistent/probe" },
      { ...process.env, ...clusterEnv() },
    ).probe({
      scratchDir: "/tmp",
    });
    return probe.available ? undefined : `the Kubernetes cluster does not answer: ${probe.detail}`;
  })();
  return reason;
}

/** The engine as a pyro with this state dir sees it (its owner label is the state dir's). */
export function engineFor(env: NodeJS.ProcessEnv, stateDir: string): KubernetesEngine {
  return new KubernetesEngine({ stateDir }, env);
}

/** Polls until `cond` holds (or the deadline passes), returning its last answer. */
export async function waitUntil(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return cond();
}
