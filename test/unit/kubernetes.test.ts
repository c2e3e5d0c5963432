import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { k8sConfig, ownerOf } from "../../src/engines/kubernetes/config.js";
import {
  exitFromStatus,
  killArgv,
  PID_DIR,
  podDeadlineSeconds,
  wrapArgv,
} from "../../src/engines/kubernetes/exec-wrap.js";
import { k8sDataProblem } from "../../src/engines/kubernetes/handle.js";
import {
  EXPIRES_ANNOTATION,
  LABEL,
  networkPolicy,
  objectName,
  ownedBy,
  POD_INIT,
  plainPod,
  sandboxClaim,
  sandboxObject,
  selector,
  warmPoolObjects,
  workspacePvc,
} from "../../src/engines/kubernetes/objects.js";
import type { SandboxSpec } from "../../src/engines/types.js";
import { networkOff } from "../../src/network/policy.js";

const cfg = k8sConfig({}, "/state/a");
const spec: SandboxSpec = {
  id: "ws_0123456789abcdef",
  environment: "debian:12",
  rootfs: "/unused",
  sandboxDir: "/s/sandbox",
  workspaceDir: "/s/files",
  vcpuCount: 2,
  memMib: 512,
  network: false,
  expiresAt: "2030-01-01T00:00:00.000Z",
};

test("config: namespace pyro, image debian:12, RuntimeClass gvisor, owner from the state dir", () => {
  assert.equal(cfg.namespace, "pyro");
  assert.equal(cfg.images["*"], "debian:12");
  assert.equal(cfg.runtimeClass, "gvisor");
  assert.equal(cfg.mode, "auto");
  assert.equal(cfg.owner, ownerOf("/state/a"));
  assert.notEqual(ownerOf("/state/a"), ownerOf("/state/b"));
  assert.equal(cfg.tenant, cfg.owner);
  const other = k8sConfig(
    { PYRO_K8S_NAMESPACE: "sbx", PYRO_K8S_RUNTIME_CLASS: "", PYRO_K8S_IMAGES: '{"debian:12-build":"b:1"}' },
    "/x",
  );
  assert.equal(other.namespace, "sbx");
  assert.equal(other.runtimeClass, undefined);
  assert.equal(other.images["debian:12-build"], "b:1");
  for (const bad of [
    { PYRO_K8S_NAMESPACE: "Bad_NS" },
    { PYRO_K8S_MODE: "vm" },
    { PYRO_K8S_IMAGES: "[1]" },
    { PYRO_K8S_TENANT: "a b" },
  ])
    assert.throws(() => k8sConfig(bad, "/x"), /is not valid/);
});

test("names are DNS labels derived from the id; labels carry owner, tenant and id", () => {
  assert.equal(objectName("ws_0123456789abcdef"), "pyro-ws-0123456789abcdef");
  assert.throws(() => objectName("ws_../etc"), /not a pyro id/);
  const objs = [
    networkPolicy(cfg, spec.id, spec),
    workspacePvc(cfg, spec.id),
    plainPod(cfg, spec, { pvc: true }),
    sandboxObject(cfg, spec, { pvc: true }),
    sandboxClaim(cfg, "vm_0123456789abcdef", "pool", undefined),
  ];
  for (const o of objs) {
    assert.equal(o.metadata.namespace, "pyro", o.kind);
    assert.equal(o.metadata.labels?.[LABEL.owner], cfg.owner, o.kind);
    assert.equal(o.metadata.labels?.[LABEL.tenant], cfg.tenant, o.kind);
    assert.equal(o.metadata.labels?.[LABEL.managedBy], "pyro", o.kind);
    assert.match(o.metadata.labels?.[LABEL.id] ?? "", /^(ws|vm)_0123456789abcdef$/, o.kind);
    assert.ok(ownedBy(cfg, o), o.kind);
  }
  const otherOwner = k8sConfig({}, "/state/b");
  assert.ok(!ownedBy(otherOwner, objs[0]!), "another owner's object is not ours");
  assert.equal(
    selector(cfg, spec.id),
    `app.kubernetes.io/managed-by=pyro,pyro.dev/owner=${cfg.owner},pyro.dev/id=ws_0123456789abcdef`,
  );
  assert.equal(selector(cfg), `app.kubernetes.io/managed-by=pyro,pyro.dev/owner=${cfg.owner}`);
});

test("network off: a policy selecting the sandbox's pod with no rule either way", () => {
  const np = networkPolicy(cfg, spec.id, spec);
  assert.deepEqual(np.spec.policyTypes, ["Ingress", "Egress"]);
  assert.deepEqual(np.spec.ingress, []);
  assert.deepEqual(np.spec.egress, []);
  assert.deepEqual(np.spec.podSelector.matchLabels, { [LABEL.owner]: cfg.owner, [LABEL.id]: spec.id });
  // The pod's labels match the selector, so the policy does apply to it.
  const pod = plainPod(cfg, spec, { pvc: true });
  for (const [k, v] of Object.entries(np.spec.podSelector.matchLabels))
    assert.equal(pod.metadata.labels?.[k], v);
});

test("network on: egress minus the closed ranges and the deny list, plus the allow list; host names refused", () => {
  const net = {
    ...networkOff(),
    policy: "egress" as const,
    allow_cidrs: ["10.1.2.0/24"],
    deny_cidrs: ["8.8.8.8/32"],
  };
  const np = networkPolicy(cfg, spec.id, { network: true, net });
  const all = np.spec.egress[0].to[0].ipBlock;
  assert.equal(all.cidr, "0.0.0.0/0");
  assert.ok(all.except.includes("10.0.0.0/8") && all.except.includes("169.254.0.0/16"));
  assert.ok(all.except.includes("8.8.8.8/32"));
  assert.deepEqual(np.spec.egress[1], { to: [{ ipBlock: { cidr: "10.1.2.0/24" } }] });
  assert.throws(
    () => networkPolicy(cfg, spec.id, { network: true, net: { ...net, allow_hosts: ["example.com"] } }),
    /host names/,
  );
  assert.throws(
    () =>
      networkPolicy(cfg, spec.id, {
        network: true,
        net: { ...net, publish: [{ host_port: 1, guest_port: 2 }] },
      }),
    /publish/,
  );
});

test("pod: gVisor RuntimeClass, no token, no DNS without network, limits, the PVC, the expiry annotation", () => {
  const pod = plainPod(cfg, spec, { pvc: true });
  const s = pod.spec;
  assert.equal(s.runtimeClassName, "gvisor");
  assert.equal(s.automountServiceAccountToken, false);
  assert.equal(s.restartPolicy, "Never");
  assert.equal(s.dnsPolicy, "None");
  const c = s.containers[0];
  assert.equal(c.image, "debian:12");
  assert.deepEqual(c.command.slice(0, 2), ["/bin/sh", "-c"]);
  assert.deepEqual(c.resources.limits, { cpu: "2", memory: "512Mi" });
  assert.deepEqual(s.volumes[0], {
    name: "workspace",
    persistentVolumeClaim: { claimName: "pyro-ws-0123456789abcdef-ws" },
  });
  assert.equal(
    pod.metadata.annotations?.[EXPIRES_ANNOTATION],
    String(Date.parse("2030-01-01T00:00:00Z") / 1000),
  );
  const noPvc = plainPod(cfg, { ...spec, network: true }, { pvc: false });
  assert.deepEqual(noPvc.spec.volumes[0], { name: "workspace", emptyDir: {} });
  assert.equal(noPvc.spec.dnsPolicy, undefined);
  const noRc = plainPod(k8sConfig({ PYRO_K8S_RUNTIME_CLASS: "" }, "/x"), spec, { pvc: false });
  assert.equal(noRc.spec.runtimeClassName, undefined);
});

test("Sandbox: v1beta1, Running, shutdownTime past the expiry by the in-pod grace; claim names a warm pool", () => {
  const sb = sandboxObject(cfg, spec, { pvc: true });
  assert.equal(sb.apiVersion, "agents.x-k8s.io/v1beta1");
  assert.equal(sb.spec.operatingMode, "Running");
  assert.equal(sb.spec.shutdownTime, "2030-01-01T00:01:30Z");
  assert.equal(sb.spec.shutdownPolicy, "Delete");
  assert.equal(sb.spec.podTemplate.spec.runtimeClassName, "gvisor");
  assert.equal(sb.spec.podTemplate.metadata.labels[LABEL.id], spec.id);
  assert.equal(
    sandboxObject(cfg, { ...spec, expiresAt: undefined }, { pvc: false }).spec.shutdownTime,
    undefined,
  );
  const claim = sandboxClaim(cfg, "vm_0123456789abcdef", "pyro-warm", "2030-01-01T00:00:00Z");
  assert.equal(claim.apiVersion, "extensions.agents.x-k8s.io/v1beta1");
  assert.deepEqual(claim.spec.warmPoolRef, { name: "pyro-warm" });
  // agent-sandbox refuses pod labels outside its allow-list (InvalidMetadata), pyro.dev/* included.
  assert.equal(claim.spec.additionalPodMetadata, undefined);
  assert.equal(claim.spec.lifecycle.shutdownPolicy, "Delete");
  const [tmpl, pool] = warmPoolObjects(cfg, "pyro-warm", 3, {
    environment: "debian:12",
    vcpuCount: 1,
    memMib: 256,
  });
  assert.equal(tmpl!.kind, "SandboxTemplate");
  assert.deepEqual(tmpl!.spec.networkPolicy, { ingress: [], egress: [] });
  assert.deepEqual(pool!.spec, { replicas: 3, sandboxTemplateRef: { name: "pyro-warm" } });
});

test("exec status: Success is 0, NonZeroExitCode carries the code, anything else is an error", () => {
  assert.deepEqual(exitFromStatus({ status: "Success" }), { exitCode: 0 });
  assert.deepEqual(
    exitFromStatus({
      status: "Failure",
      reason: "NonZeroExitCode",
      message: "command terminated with non-zero exit code: error executing command [sh], exit code 3",
      details: { causes: [{ reason: "ExitCode", message: "3" }] },
    }),
    { exitCode: 3 },
  );
  assert.deepEqual(
    exitFromStatus({ status: "Failure", reason: "InternalError", message: "container not found" }),
    {
      error: "container not found",
    },
  );
  assert.ok(
    "error" in exitFromStatus({ status: "Failure", reason: "NonZeroExitCode", details: { causes: [] } }),
  );
});

test("handle data is parsed: damaged fields are named", () => {
  const good = {
    namespace: "pyro",
    kind: "Sandbox",
    name: "pyro-ws-1",
    pod: "pyro-ws-1",
    owner: "o",
    pvc: true,
  };
  assert.equal(k8sDataProblem(good), undefined);
  assert.match(k8sDataProblem({ ...good, kind: "Deployment" }) ?? "", /data.kind/);
  assert.match(k8sDataProblem({ ...good, pod: "../x" }) ?? "", /data.pod/);
  assert.match(k8sDataProblem({ ...good, pvc: "yes" }) ?? "", /data.pvc/);
});

/** Runs the wrapper as the pod would, with this host's sh and coreutils. */
function runWrapped(req: Parameters<typeof wrapArgv>[0], tag: string, input?: string) {
  const [sh, ...args] = wrapArgv(req, tag);
  return spawnSync(sh!, args, { encoding: "utf8", input: input ?? "", timeout: 30_000 });
}

test("the exec wrapper: cwd, env added, stdin, the exit code, 127 for a missing program", () => {
  const dir = mkdtempSync(join(tmpdir(), "pyro-k8s-wrap-"));
  try {
    const r = runWrapped(
      {
        argv: ["sh", "-c", 'pwd; echo "$FOO"; cat; exit 7'],
        cwd: dir,
        env: { FOO: "b a r" },
        timeoutMs: 10_000,
      },
      "unit1",
      "from stdin",
    );
    assert.equal(r.status, 7);
    assert.equal(r.stdout, `${dir}\nb a r\nfrom stdin`);
    assert.equal(
      runWrapped({ argv: ["/no/such/program"], cwd: dir, timeoutMs: 10_000 }, "unit2").status,
      127,
    );
    assert.equal(
      runWrapped({ argv: ["true"], cwd: join(dir, "missing"), timeoutMs: 10_000 }, "unit3").status,
      1,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the exec wrapper's own deadline holds with nobody watching: exit 124", () => {
  assert.equal(podDeadlineSeconds(0), 2);
  assert.equal(podDeadlineSeconds(30_000), 32);
  const t0 = Date.now();
  const r = runWrapped({ argv: ["sleep", "30"], cwd: "/", timeoutMs: 0 }, "unit4");
  assert.equal(r.status, 124);
  assert.ok(Date.now() - t0 < 20_000, "ended by the 2 s in-pod deadline");
});

test("the kill exec ends the wrapped command's whole group and forgets its pid file", async () => {
  const { spawn } = await import("node:child_process");
  const tag = `unit5-${process.pid}`;
  const [sh, ...args] = wrapArgv(
    { argv: ["sh", "-c", "sleep 60 & sleep 60"], cwd: "/", timeoutMs: 120_000 },
    tag,
  );
  const child = spawn(sh!, args, { stdio: "ignore" });
  const exited = new Promise<number | null>((r) =>
    child.on("exit", (code, sig) => r(code ?? (sig ? 128 : null))),
  );
  const pidFile = join(PID_DIR, tag);
  const deadline = Date.now() + 10_000;
  while (!existsSync(pidFile) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal(readFileSync(pidFile, "utf8").trim(), String(child.pid));
  const [ksh, ...kargs] = killArgv(tag);
  // Not spawnSync: this process must stay free to reap the killed command (as the pod's runtime does).
  const killer = spawn(ksh!, kargs, { stdio: "ignore" });
  const killed = new Promise<number | null>((r) => killer.on("exit", (code) => r(code)));
  const code = await exited;
  assert.equal(await killed, 0);
  assert.notEqual(code, 0, "the command was killed, not finished");
  assert.ok(!existsSync(pidFile));
});

test("the pod's init is valid sh", () => {
  assert.equal(spawnSync("sh", ["-n", "-c", POD_INIT]).status, 0);
});
