import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { skipped } from "../helpers.js";
import { clusterDown, clusterSkipReason, clusterUp } from "./support/cluster.js";

/**
 * Issue 28: the real single-node test cluster (scripts/cluster/). cluster:up gives a Ready node
 * that runs a gVisor pod one can exec into, with the agent-sandbox CRDs served; cluster:down
 * leaves nothing behind: no process, mount, bridge, cgroup, iptables/nft rule, sysctl change or
 * state dir of the cluster's. It runs a cluster instance of its own (its own dir, ports, CIDRs,
 * bridge, cgroup root) so a cluster left running for other tests or a developer is untouched.
 */

const DIR = "/run/pyro-cluster-e2e";
const ENV = {
  PYRO_CLUSTER_DIR: DIR,
  PYRO_CLUSTER_ETCD_PORT: "23791",
  PYRO_CLUSTER_ETCD_PEER_PORT: "23801",
  PYRO_CLUSTER_APISERVER_PORT: "16444",
  PYRO_CLUSTER_KUBELET_PORT: "20251",
  PYRO_CLUSTER_KUBELET_HEALTHZ_PORT: "20249",
  PYRO_CLUSTER_AS_METRICS_PORT: "16482",
  PYRO_CLUSTER_AS_PROBE_PORT: "16483",
  PYRO_CLUSTER_POD_CIDR: "10.244.78.0/24",
  PYRO_CLUSTER_SERVICE_CIDR: "10.96.78.0/24",
  PYRO_CLUSTER_BRIDGE: "pyrok8s1",
  PYRO_CLUSTER_CNI_NET: "pyro-cluster-e2e",
  PYRO_CLUSTER_CGROUP_ROOT: "/pyro-cluster-e2e",
  PYRO_CLUSTER_NAMESPACE: "pyro-e2e",
};

const run = promisify(execFile);
const KUBECTL = join(import.meta.dirname, "..", "..", "scripts", "cluster", "kubectl.sh");
const kubectl = async (...args: string[]): Promise<string> =>
  (
    await run("bash", [KUBECTL, ...args], {
      maxBuffer: 16 << 20,
      timeout: 180_000,
      env: { ...process.env, ...ENV },
    })
  ).stdout;

/** What the cluster could leave on the host, as comparable text. */
async function hostState(): Promise<Record<string, string>> {
  const sh = async (cmd: string, args: string[]): Promise<string> =>
    (await run(cmd, args).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? "" }))).stdout;
  const procs: string[] = [];
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const cmd = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (cmd.includes(`${DIR}/`)) procs.push(`${pid}: ${cmd.replace(/\0/g, " ").slice(0, 100)}`);
  }
  const cgroups: string[] = [];
  for (const h of await readdir("/sys/fs/cgroup").catch(() => [] as string[])) {
    if (existsSync(`/sys/fs/cgroup/${h}${ENV.PYRO_CLUSTER_CGROUP_ROOT}`)) cgroups.push(h);
  }
  const mounts = (await readFile("/proc/self/mountinfo", "utf8"))
    .split("\n")
    .filter((l) => l.includes(`${DIR}/`));
  const sysctls: string[] = [];
  for (const k of ["vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops"]) {
    sysctls.push(`${k}=${(await readFile(`/proc/sys/${k}`, "utf8").catch(() => "?")).trim()}`);
  }
  // Only lines that could be the cluster's: other sandboxes on this host change the rest.
  const ours = (s: string) =>
    s
      .split("\n")
      .filter((l) => /KUBE-|pyrok8s1|pyro-cluster-e2e|10\.244\.78\./.test(l))
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
    stateDir: String(existsSync(DIR)),
    // Fixed paths the kubelet, containerd and libcni create whatever their settings.
    hostPaths: [
      "/var/lib/kubelet",
      "/var/log/containers",
      "/run/containerd",
      "/var/lib/cni",
      "/usr/libexec/kubernetes",
    ]
      .filter((p) => existsSync(p))
      .join(" "),
    cniResults: (await readdir("/var/lib/cni/results").catch(() => [] as string[]))
      .filter((f) => f.startsWith(ENV.PYRO_CLUSTER_CNI_NET))
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

const SKIP =
  clusterSkipReason() ??
  (process.env.PYRO_TEST_KUBECONFIG ? "PYRO_TEST_KUBECONFIG: use that cluster" : undefined);

test("cluster:up runs a gVisor pod on a Ready node; cluster:down leaves nothing", {
  timeout: 75 * 60_000,
}, async (t) => {
  if (SKIP) return skipped(t, SKIP);
  await clusterDown(ENV); // what an interrupted earlier run left
  const before = await hostState();
  assert.equal(before.processes, "", "no cluster process before up");
  try {
    const t0 = Date.now();
    const kubeconfig = await clusterUp(ENV);
    t.diagnostic(`cluster:up took ${Date.now() - t0} ms`);
    assert.equal(kubeconfig, `${DIR}/admin.kubeconfig`);
    assert.ok(await listening(16444), "the apiserver listens on 127.0.0.1:16444");
    assert.equal((await hostState()).sysctls, before.sysctls, "the kubelet's sysctls are put back");

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
      metadata: { name: "cluster-probe", namespace: ENV.PYRO_CLUSTER_NAMESPACE },
      spec: {
        runtimeClassName: "gvisor",
        automountServiceAccountToken: false,
        terminationGracePeriodSeconds: 0,
        containers: [
          {
            name: "main",
            image: "localhost/pyro/debian:12-pyro1",
            imagePullPolicy: "Never",
            command: ["sleep", "3600"],
          },
        ],
      },
    };
    const apply = execFile("bash", [KUBECTL, "apply", "-f", "-"], { env: { ...process.env, ...ENV } });
    apply.stdin?.end(JSON.stringify(pod));
    await new Promise((res, rej) =>
      apply.on("close", (code) => (code === 0 ? res(code) : rej(new Error(`apply: ${code}`)))),
    );
    try {
      await kubectl(
        "wait",
        "-n",
        ENV.PYRO_CLUSTER_NAMESPACE,
        "--for=condition=Ready",
        "--timeout=150s",
        "pod/cluster-probe",
      );
    } catch (e) {
      // Why, from what the cluster says and its node's logs, before down.sh removes them.
      const describe = await kubectl(
        "describe",
        "pod",
        "-n",
        ENV.PYRO_CLUSTER_NAMESPACE,
        "cluster-probe",
      ).catch((x: Error) => x.message);
      const tail = async (f: string) =>
        (await readFile(join(DIR, "logs", f), "utf8").catch(() => "")).split("\n").slice(-25).join("\n");
      throw new Error(
        `${(e as Error).message}\n--- describe\n${describe}\n--- kubelet.log\n${await tail("kubelet.log")}\n--- containerd.log\n${await tail("containerd.log")}`,
      );
    }
    const uname = await kubectl(
      "exec",
      "-n",
      ENV.PYRO_CLUSTER_NAMESPACE,
      "cluster-probe",
      "--",
      "uname",
      "-a",
    );
    assert.match(uname, /gvisor/, "uname names the gVisor kernel");
    // gVisor's kernel log is its own: it starts with "Starting gVisor...".
    const dmesg = await kubectl("exec", "-n", ENV.PYRO_CLUSTER_NAMESPACE, "cluster-probe", "--", "dmesg");
    assert.match(dmesg, /Starting gVisor/);
    const rc = await run(
      "bash",
      [KUBECTL, "exec", "-n", ENV.PYRO_CLUSTER_NAMESPACE, "cluster-probe", "--", "sh", "-c", "exit 7"],
      { env: { ...process.env, ...ENV } },
    ).then(
      () => 0,
      (e: { code?: number }) => e.code,
    );
    assert.equal(rc, 7, "exec carries the exit code");
  } finally {
    await clusterDown(ENV);
  }
  const after = await hostState();
  assert.deepEqual(after, before, "cluster:down restores the host");
  assert.equal(await listening(16444), false, "nothing listens on the apiserver port");
});
