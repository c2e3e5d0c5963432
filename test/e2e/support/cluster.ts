import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

/**
 * The real single-node test cluster (scripts/cluster/, `npm run cluster:up` / `cluster:down`)
 * for end-to-end tests of the kubernetes engine and deploy manifests. One cluster serves every
 * test file: `ensureCluster()` reuses a running one (or the one PYRO_TEST_KUBECONFIG names) and
 * starts one otherwise; `teardownCluster()` stops it only if this process started it (and
 * PYRO_TEST_KEEP_CLUSTER is unset), so a developer's cluster survives the tests.
 */

const ROOT = join(import.meta.dirname, "..", "..", "..");
const SCRIPTS = join(ROOT, "scripts", "cluster");
/** Where up.sh keeps its state: must match lib.sh's default (PYRO_CLUSTER_DIR overrides both). */
export const CLUSTER_DIR = process.env.PYRO_CLUSTER_DIR ?? "/run/pyro-cluster";

/** What the cluster offers a test; names match scripts/cluster/lib.sh. */
export interface Cluster {
  kubeconfig: string;
  namespace: string;
  runtimeClass: "gvisor";
  /** Image to run commands in (Debian 12 with sh, tar, coreutils), imported locally: pods use imagePullPolicy Never. */
  image: string;
  pauseImage: string;
  /** Whether the agent-sandbox CRDs and controller run (they do whenever up.sh succeeded). */
  agentSandbox: boolean;
  /** Whether this process started it (then teardownCluster stops it). */
  startedHere: boolean;
}

export type ClusterOrSkip = { cluster: Cluster } | { skip: string };

const NAMESPACE = process.env.PYRO_CLUSTER_NAMESPACE ?? "pyro";
const IMAGE = "localhost/pyro/debian:12-pyro1";
const PAUSE_IMAGE = "localhost/pyro/pause:3.10-pyro1";
/** A cold up builds Kubernetes from source: ~25 min on 2 cores. A cached one takes seconds. */
const UP_TIMEOUT_MS = Number(process.env.PYRO_CLUSTER_UP_TIMEOUT_MS ?? 60 * 60_000);

let pending: Promise<ClusterOrSkip> | undefined;

/**
 * Why this machine cannot run the cluster (scripts/cluster/check.sh: root, cgroups, overlayfs, the
 * tools, Debian's apt for the packages, Go unless every binary is cached), or undefined.
 */
export function clusterSkipReason(): string | undefined {
  if (process.env.PYRO_TEST_KUBECONFIG) return undefined;
  if (process.env.PYRO_TEST_CLUSTER === "0") return "PYRO_TEST_CLUSTER=0 turns the test cluster off";
  if (process.platform !== "linux") return "the test cluster runs on Linux only";
  const r = spawnSync("bash", [join(SCRIPTS, "check.sh")], { encoding: "utf8" });
  if (r.status === 0) return undefined;
  return r.stdout.trim() || `scripts/cluster/check.sh failed: ${r.stderr.trim().slice(-300)}`;
}

/** Runs a script of scripts/cluster; resolves with its stdout, rejects with its stderr's tail. */
function runScript(name: string, timeoutMs: number, env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const ch = spawn("bash", [join(SCRIPTS, name)], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
    });
    let out = "";
    let err = "";
    ch.stdout.on("data", (d) => {
      out += d;
    });
    ch.stderr.on("data", (d) => {
      err = (err + d).slice(-8000);
    });
    const timer = setTimeout(() => ch.kill("SIGTERM"), timeoutMs);
    ch.on("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`scripts/cluster/${name} failed (${signal ?? `exit ${code}`}):\n${err}`));
    });
  });
}

/**
 * Starts a cluster with `env` (PYRO_CLUSTER_* settings of scripts/cluster/lib.sh: a second
 * instance needs its own dir, ports, CIDRs, bridge, CNI network name and cgroup root) and returns
 * its kubeconfig path, the last line up.sh prints.
 */
export async function clusterUp(env: Record<string, string> = {}): Promise<string> {
  const out = await runScript("up.sh", UP_TIMEOUT_MS, env);
  const kubeconfig = out.trim().split("\n").at(-1) ?? "";
  if (!existsSync(kubeconfig))
    throw new Error(`cluster:up printed no kubeconfig path (last line: ${kubeconfig})`);
  return kubeconfig;
}

function describe(kubeconfig: string, startedHere: boolean): Cluster {
  return {
    kubeconfig,
    namespace: NAMESPACE,
    runtimeClass: "gvisor",
    image: IMAGE,
    pauseImage: PAUSE_IMAGE,
    agentSandbox: true,
    startedHere,
  };
}

/** Whether a cluster of ours already runs (its pid files name live processes). */
function running(): boolean {
  const pid = join(CLUSTER_DIR, "pids", "kube-apiserver.pid");
  if (!existsSync(pid)) return false;
  try {
    process.kill(Number(readFileSync(pid, "utf8").trim()), 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The cluster, started if need be (once per process), or why it cannot run here. A failing
 * up.sh on a machine that should run it is an error, not a skip.
 */
export function ensureCluster(): Promise<ClusterOrSkip> {
  pending ??= (async (): Promise<ClusterOrSkip> => {
    const given = process.env.PYRO_TEST_KUBECONFIG;
    if (given) return { cluster: describe(given, false) };
    const skip = clusterSkipReason();
    if (skip) return { skip };
    const wasRunning = running();
    return { cluster: describe(await clusterUp(), !wasRunning) };
  })();
  return pending;
}

/** Stops the cluster if this process started it, unless PYRO_TEST_KEEP_CLUSTER is set. */
export async function teardownCluster(c: Cluster): Promise<void> {
  if (!c.startedHere || process.env.PYRO_TEST_KEEP_CLUSTER) return;
  pending = undefined;
  await runScript("down.sh", 5 * 60_000);
}

/** Runs scripts/cluster/down.sh for the cluster `env` names (see clusterUp). */
export function clusterDown(env: Record<string, string> = {}): Promise<string> {
  if (!env.PYRO_CLUSTER_DIR) pending = undefined;
  return runScript("down.sh", 5 * 60_000, env);
}
