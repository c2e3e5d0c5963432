import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { skipped } from "../helpers.js";
import { CLUSTER_DIR, clusterDown, clusterSkipReason, ensureCluster } from "./support/cluster.js";

/**
 * Issue 28: the real single-node test cluster (scripts/cluster/). cluster:up gives a Ready node
 * that runs a gVisor pod one can exec into, with the agent-sandbox CRDs served; cluster:down
 * leaves nothing behind: no process, mount, bridge, cgroup, iptables/nft rule, sysctl change or
 * state dir of the cluster's.
 */

const run = promisify(execFile);
const KUBECTL = join(import.meta.dirname, "..", "..", "scripts", "cluster", "kubectl.sh");
const kubectl = async (...args: string[]): Promise<string> =>
  (await run("bash", [KUBECTL, ...args], { maxBuffer: 16 << 20, timeout: 180_000 })).stdout;

/** What the cluster could leave on the host, as comparable text. */
async function hostState(): Promise<Record<string, string>> {
  const sh = async (cmd: string, args: string[]): Promise<string> =>
    (await run(cmd, args).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? "" }))).stdout;
  const procs: string[] = [];
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const cmd = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (cmd.includes(CLUSTER_DIR)) procs.push(`${pid}: ${cmd.replace(/\0/g, " ").slice(0, 100)}`);
  }
  const cgroups: string[] = [];
  for (const h of await readdir("/sys/fs/cgroup").catch(() => [] as string[])) {
    if (existsSync(`/sys/fs/cgroup/${h}/pyro-cluster`)) cgroups.push(h);
  }
  const mounts = (await readFile("/proc/self/mountinfo", "utf8"))
    .split("\n")
    .filter((l) => l.includes(CLUSTER_DIR));
  const sysctls: string[] = [];
  for (const k of ["vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops"]) {
    sysctls.push(`${k}=${(await readFile(`/proc/sys/${k}`, "utf8").catch(() => "?")).trim()}`);
  }
  // Only lines that could be the cluster's: other sandboxes on this host change the rest.
  const ours = (s: string) =>
    s
      .split("\n")
      .filter((l) => /KUBE-|pyrok8s0|pyro-cluster|10\.244\.77\./.test(l))
      .map((l) => l.replace(/\[\d+:\d+\]/g, "").replace(/^\d+: /, ""))
      .join("\n");
  return {
    processes: procs.join("\n"),
    mounts: mounts.join("\n"),
    cgroups: cgroups.join(" "),
    links: ours(await sh("ip", ["-o", "link", "show"])),
    iptables: ours(await sh("iptables-save", [])),
    nft: ours(await sh("nft", ["list", "ruleset"])),
    sysctls: sysctls.join(" "),
    stateDir: String(existsSync(CLUSTER_DIR)),
    cniResults: (await readdir("/var/lib/cni/results").catch(() => [] as string[]))
      .filter((f) => f.startsWith("pyro-cluster"))
      .join(" "),
  };
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on("error", () => resolve(false));
  });
}

const running = existsSync(join(CLUSTER_DIR, "pids", "kube-apiserver.pid"));
const SKIP =
  clusterSkipReason() ??
  (process.env.PYRO_TEST_KUBECONFIG
    ? "PYRO_TEST_KUBECONFIG names a cluster this test must not take down"
    : running && !process.env.PYRO_TEST_CLUSTER_CYCLE
      ? `a cluster already runs at ${CLUSTER_DIR}; this test would take it down (PYRO_TEST_CLUSTER_CYCLE=1 lets it)`
      : undefined);

test("cluster:up runs a gVisor pod on a Ready node; cluster:down leaves nothing", {
  timeout: 75 * 60_000,
}, async (t) => {
  if (SKIP) return skipped(t, SKIP);
  if (running) await clusterDown();
  const before = await hostState();
  assert.equal(before.processes, "", "no cluster process before up");
  try {
    const got = await ensureCluster();
    if ("skip" in got) return skipped(t, got.skip);
    const c = got.cluster;
    assert.ok(c.startedHere);
    assert.ok(await listening(16443), "the apiserver listens on 127.0.0.1:16443");

    const node = JSON.parse(await kubectl("get", "node", "localhost", "-o", "json"));
    const ready = node.status.conditions.find((x: { type: string }) => x.type === "Ready");
    assert.equal(ready?.status, "True", `node Ready: ${JSON.stringify(ready)}`);
    const crds = await kubectl("get", "crd", "-o", "name");
    for (const crd of ["sandboxes.agents.x-k8s.io", "sandboxclaims.extensions.agents.x-k8s.io"]) {
      assert.match(crds, new RegExp(crd.replace(/\./g, "\\.")));
    }

    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "cluster-probe", namespace: c.namespace },
      spec: {
        runtimeClassName: c.runtimeClass,
        automountServiceAccountToken: false,
        terminationGracePeriodSeconds: 0,
        containers: [{ name: "main", image: c.image, imagePullPolicy: "Never", command: ["sleep", "3600"] }],
      },
    };
    const apply = execFile("bash", [KUBECTL, "apply", "-f", "-"]);
    apply.stdin?.end(JSON.stringify(pod));
    await new Promise((res, rej) =>
      apply.on("close", (code) => (code === 0 ? res(code) : rej(new Error(`apply: ${code}`)))),
    );
    await kubectl("wait", "-n", c.namespace, "--for=condition=Ready", "--timeout=150s", "pod/cluster-probe");
    const uname = await kubectl("exec", "-n", c.namespace, "cluster-probe", "--", "uname", "-a");
    assert.match(uname, /Linux/);
    // gVisor's kernel log is its own: it starts with "Starting gVisor...".
    const dmesg = await kubectl("exec", "-n", c.namespace, "cluster-probe", "--", "dmesg");
    assert.match(dmesg, /Starting gVisor/);
    const rc = await run("bash", [
      KUBECTL,
      "exec",
      "-n",
      c.namespace,
      "cluster-probe",
      "--",
      "sh",
      "-c",
      "exit 7",
    ]).then(
      () => 0,
      (e: { code?: number }) => e.code,
    );
    assert.equal(rc, 7, "exec carries the exit code");
  } finally {
    await clusterDown();
  }
  const after = await hostState();
  assert.deepEqual(after, before, "cluster:down restores the host");
  assert.equal(await listening(16443), false, "nothing listens on the apiserver port");
});
