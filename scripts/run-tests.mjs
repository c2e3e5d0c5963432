#!/usr/bin/env node
// Runs node:test over test/unit then test/e2e (Node 20's --test takes no globs for .ts).
// Usage: node scripts/run-tests.mjs [unit|e2e] [name-filter]
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, openSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const [which, filter] = process.argv.slice(2);
const suites = which === "unit" ? ["unit"] : which === "e2e" ? ["e2e"] : ["unit", "e2e"];
// Files that need the real test cluster (scripts/cluster/): run last, so that its cold build
// (Kubernetes from source: tens of minutes on 2 cores) overlaps everything before them.
const CLUSTER_FILES = /^(cluster|kubernetes[^/]*|roundtrip)\.test\.ts$/;
const files = [];
const clusterFiles = [];
for (const s of suites) {
  const dir = join("test", s);
  if (!existsSync(dir)) continue;
  for (const f of readdirSync(dir).sort()) {
    if (!f.endsWith(".test.ts") || (filter && !f.includes(filter))) continue;
    (s === "e2e" && CLUSTER_FILES.test(f) ? clusterFiles : files).push(join(dir, f));
  }
}
if (files.length + clusterFiles.length === 0) {
  console.error("no test files found");
  process.exit(1);
}

const build = clusterFiles.length > 0 ? startClusterBuild() : undefined;

// One file at a time: e2e files start real sandboxes and the CI machine has 2 cores.
function runFiles(list) {
  if (list.length === 0) return 0;
  const r = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=1", ...list], {
    stdio: "inherit",
  });
  return r.status ?? 1;
}
let status = runFiles(files);
// cluster.test.ts starts and removes a second cluster of its own; the other files share one,
// started here (its up.sh waits on the build's lock, scripts/cluster/build.sh, if the build
// still runs) and removed after them, unless a cluster was running or given already.
const own = clusterFiles.filter((f) => f.endsWith("cluster.test.ts") && !f.includes("kubernetes"));
const shared = clusterFiles.filter((f) => !own.includes(f));
status = runFiles(own) || status;
const started = shared.length > 0 ? sharedClusterUp() : false;
status = runFiles(shared) || status;
if (started && !process.env.PYRO_TEST_KEEP_CLUSTER)
  spawnSync("bash", ["scripts/cluster/down.sh"], { stdio: ["ignore", "inherit", "inherit"] });
if (build && build.exitCode === null) build.kill("SIGTERM");
process.exit(status);

/**
 * The shared test cluster for the kubernetes files: its kubeconfig goes to them as
 * PYRO_TEST_KUBECONFIG; where it cannot run, PYRO_TEST_CLUSTER_UNAVAILABLE says why and they
 * skip with that reason. Returns whether this run started it (and so removes it).
 */
function sharedClusterUp() {
  if (process.env.PYRO_TEST_KUBECONFIG) return false;
  if (process.env.PYRO_TEST_CLUSTER === "0") {
    process.env.PYRO_TEST_CLUSTER_UNAVAILABLE = "PYRO_TEST_CLUSTER=0 turns the test cluster off";
    return false;
  }
  const check = spawnSync("bash", ["scripts/cluster/check.sh"], { encoding: "utf8" });
  if (check.status !== 0) {
    process.env.PYRO_TEST_CLUSTER_UNAVAILABLE = check.stdout.trim() || "scripts/cluster/check.sh failed";
    return false;
  }
  const dir = process.env.PYRO_CLUSTER_DIR ?? "/run/pyro-cluster";
  const wasRunning = alive(join(dir, "pids", "kube-apiserver.pid"));
  console.error("run-tests: starting the shared test cluster (npm run cluster:up)");
  const up = spawnSync("bash", ["scripts/cluster/up.sh"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  const kubeconfig = up.stdout.trim().split("\n").at(-1) ?? "";
  if (up.status !== 0 || !existsSync(kubeconfig)) {
    // A machine that passed check.sh should run it: the files fail (not skip) on this reason.
    process.env.PYRO_TEST_CLUSTER_FAILED = `npm run cluster:up failed (exit ${up.status}); its log is above`;
    return !wasRunning;
  }
  process.env.PYRO_TEST_KUBECONFIG = kubeconfig;
  return !wasRunning;
}

function alive(pidFile) {
  try {
    process.kill(Number(readFileSync(pidFile, "utf8").trim()), 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The cluster's build, started now in the background at the lowest priority when the machine
 * can run the cluster at all (check.sh) and the tests will want it; its log is kept beside the
 * cache. Nothing happens with PYRO_TEST_CLUSTER=0 or PYRO_TEST_KUBECONFIG (a cluster given).
 */
function startClusterBuild() {
  if (process.env.PYRO_TEST_CLUSTER === "0" || process.env.PYRO_TEST_KUBECONFIG) return undefined;
  const check = spawnSync("bash", ["scripts/cluster/check.sh"], { encoding: "utf8" });
  if (check.status !== 0) return undefined;
  const logDir = join(process.env.PYRO_CLUSTER_CACHE ?? "/var/cache/pyro-cluster");
  mkdirSync(logDir, { recursive: true });
  const log = openSync(join(logDir, "build.log"), "w");
  const ch = spawn("nice", ["-n", "19", "bash", "scripts/cluster/build.sh"], {
    stdio: ["ignore", log, log],
  });
  ch.on("error", () => {});
  console.error(`run-tests: building the test cluster in the background (log: ${join(logDir, "build.log")})`);
  return ch;
}
