import assert from "node:assert/strict";
import { rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, test } from "node:test";
import { checkKubernetes, kubernetesDoctor } from "../../src/engines/kubernetes/doctor.js";
import { KUBERNETES_RBAC } from "../../src/engines/kubernetes/rbac.js";
import { tempDir } from "../helpers.js";

/**
 * `pyro doctor`'s kubernetes checks against a small fake API server on loopback (plain HTTP):
 * the branches a real cluster cannot show on demand (CRDs absent, v1alpha1 only, a grant
 * missing, a server that refuses or does not answer). test/e2e/kubernetes-rbac.test.ts runs
 * the same checks against the real test cluster.
 */

interface Fake {
  /** Kinds served, as `plural.group`. */
  served: Set<string>;
  /** Group → versions discovery lists. */
  groups: Record<string, string[]>;
  /** `verb resource[/sub]` the identity may not do. */
  denied: Set<string>;
  runtimeClass: "present" | "absent" | "forbidden";
  /** SandboxWarmPools by name: their ready replicas. */
  pools?: Record<string, number>;
  status?: number;
}

const servers: Server[] = [];
const dirs: string[] = [];
after(async () => {
  for (const s of servers) s.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function fakeApi(fake: Fake): Promise<string> {
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const send = (code: number, body: unknown) => {
      res.writeHead(code, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (fake.status) return send(fake.status, { kind: "Status", message: "Unauthorized", code: fake.status });
    let body = "";
    for await (const c of req) body += c;
    const url = new URL(req.url ?? "/", "http://x");
    const p = url.pathname;
    if (p === "/version") return send(200, { gitVersion: "v1.34.4", major: "1", minor: "34" });
    if (p === "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews") {
      const a = JSON.parse(body).spec.resourceAttributes;
      const name = `${a.verb} ${a.resource}${a.subresource ? `/${a.subresource}` : ""}`;
      return send(201, { ...JSON.parse(body), status: { allowed: !fake.denied.has(name) } });
    }
    if (p === "/apis/authentication.k8s.io/v1/selfsubjectreviews")
      return send(201, { status: { userInfo: { username: "system:serviceaccount:team:pyro" } } });
    if (p.startsWith("/apis/node.k8s.io/v1/runtimeclasses/")) {
      if (fake.runtimeClass === "present")
        return send(200, { metadata: { name: p.split("/").pop() }, handler: "runsc" });
      return send(fake.runtimeClass === "absent" ? 404 : 403, { kind: "Status", message: "no", code: 404 });
    }
    if (p === "/apis")
      return send(200, {
        kind: "APIGroupList",
        groups: Object.entries(fake.groups).map(([name, versions]) => ({
          name,
          versions: versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v })),
        })),
      });
    const pool = p.match(
      /^\/apis\/extensions\.agents\.x-k8s\.io\/v1beta1\/namespaces\/[^/]+\/sandboxwarmpools\/([^/]+)$/,
    );
    if (pool && fake.pools?.[pool[1]!] !== undefined)
      return send(200, { spec: { replicas: 2 }, status: { readyReplicas: fake.pools[pool[1]!] } });
    const m = p.match(/^\/apis\/([^/]+)\/v1beta1\/namespaces\/[^/]+\/([^/]+)$/);
    if (m && fake.served.has(`${m[2]}.${m[1]}`)) return send(200, { kind: "List", items: [] });
    return send(404, {
      kind: "Status",
      message: "the server could not find the requested resource",
      code: 404,
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return kubeconfig(`http://127.0.0.1:${port}`);
}

async function kubeconfig(server: string): Promise<string> {
  const dir = await tempDir("pyro-k8s-doctor-");
  dirs.push(dir);
  const file = join(dir, "kubeconfig");
  await writeFile(
    file,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      // client-node speaks plain HTTP only with TLS checks off (the fake has no TLS).
      clusters: [{ name: "fake", cluster: { server, "insecure-skip-tls-verify": true } }],
      users: [{ name: "u", user: { token: "t" } }],
      contexts: [{ name: "fake", context: { cluster: "fake", user: "u", namespace: "team" } }],
      "current-context": "fake",
    }),
  );
  return file;
}

const ALL = new Set([
  "sandboxes.agents.x-k8s.io",
  "sandboxclaims.extensions.agents.x-k8s.io",
  "sandboxwarmpools.extensions.agents.x-k8s.io",
]);
const GROUPS = { "agents.x-k8s.io": ["v1beta1"], "extensions.agents.x-k8s.io": ["v1beta1"] };
const env = (KUBECONFIG: string, more: NodeJS.ProcessEnv = {}) => ({
  PYRO_ENGINE: "kubernetes",
  KUBECONFIG,
  ...more,
});
const check = (r: Awaited<ReturnType<typeof checkKubernetes>>, name: string) =>
  r.checks.find((c) => c.name === name)!;

test("not the chosen engine: no report, and no cluster is contacted", async () => {
  assert.equal(await kubernetesDoctor({ KUBECONFIG: "/nonexistent" }), null);
  assert.equal(await kubernetesDoctor({ PYRO_ENGINE: "gvisor", KUBECONFIG: "/nonexistent" }), null);
});

test("a cluster with everything: every check ok, Sandboxes and the warm pool, namespace pyro by default", async () => {
  const kc = await fakeApi({
    served: ALL,
    groups: GROUPS,
    denied: new Set(),
    runtimeClass: "present",
    pools: { warm: 1 },
  });
  const r = await checkKubernetes(env(kc, { PYRO_K8S_WARM_POOL: "warm" }));
  assert.deepEqual(
    r.checks.map((c) => [c.name, c.status]),
    [
      ["api", "ok"],
      ["rbac", "ok"],
      ["runtime_class", "ok"],
      ["sandbox_crds", "ok"],
      ["warm_pool", "ok"],
    ],
  );
  assert.equal(r.ok, true);
  assert.equal(check(r, "warm_pool").detail, "SandboxWarmPool warm: 1 of 2 ready");
  assert.equal(r.server_version, "v1.34.4");
  assert.equal(r.namespace, "pyro", "the engine's default, whatever the context says");
  assert.equal(r.context, "fake");
  assert.equal(r.workload, "sandbox");
  assert.equal(r.warm_pool, true);
  assert.deepEqual(r.crds, [...ALL].sort());
  assert.deepEqual(r.missing_permissions, []);
  assert.match(
    check(r, "rbac").detail,
    new RegExp(`\\(${KUBERNETES_RBAC.flatMap((x) => x.verbs).length}\\)`),
  );
});

test("no agent-sandbox: plain Pods, no warm pool, each a warning with the install as its fix", async () => {
  const kc = await fakeApi({ served: new Set(), groups: {}, denied: new Set(), runtimeClass: "present" });
  const r = await checkKubernetes(env(kc, { PYRO_K8S_NAMESPACE: "other" }));
  assert.equal(r.namespace, "other");
  assert.equal(r.workload, "pod");
  assert.equal(r.warm_pool, false);
  assert.deepEqual(r.crds, []);
  for (const name of ["sandbox_crds", "warm_pool"]) {
    assert.equal(check(r, name).status, "warn");
    assert.match(check(r, name).detail, /is not served \(agent-sandbox is not installed\)/);
    assert.match(check(r, name).fix ?? "", /install agent-sandbox v0\.5\.6/);
  }
  assert.equal(r.ok, true, "warnings do not fail the report");
});

test("an old agent-sandbox (v1alpha1 only), and a group serving some kinds: which ones is said", async () => {
  const kc = await fakeApi({
    served: new Set(["sandboxclaims.extensions.agents.x-k8s.io"]),
    groups: { "agents.x-k8s.io": ["v1alpha1"], "extensions.agents.x-k8s.io": ["v1beta1"] },
    denied: new Set(),
    runtimeClass: "present",
  });
  const r = await checkKubernetes(env(kc));
  assert.match(check(r, "sandbox_crds").detail, /serves only v1alpha1, not v1beta1/);
  assert.match(check(r, "warm_pool").detail, /^sandboxwarmpools\.extensions\.agents\.x-k8s\.io not served/);
  assert.deepEqual(r.crds, ["sandboxclaims.extensions.agents.x-k8s.io"]);
});

test("a missing grant and a missing RuntimeClass fail, naming the grant, the identity to bind and the fix", async () => {
  const kc = await fakeApi({
    served: ALL,
    groups: GROUPS,
    denied: new Set(["create pods/exec", "delete networkpolicies"]),
    runtimeClass: "absent",
  });
  const r = await checkKubernetes(env(kc, { PYRO_K8S_RUNTIME_CLASS: "kata" }));
  assert.equal(r.ok, false);
  assert.deepEqual(r.missing_permissions, ["create pods/exec", "delete networkpolicies.networking.k8s.io"]);
  const rbac = check(r, "rbac");
  assert.equal(rbac.status, "fail");
  assert.match(rbac.detail, /system:serviceaccount:team:pyro may not, in namespace pyro: create pods\/exec/);
  assert.match(rbac.fix ?? "", /role\.yaml.*--role=pyro-engine --serviceaccount=team:pyro/);
  const rc = check(r, "runtime_class");
  assert.equal(rc.status, "fail");
  assert.match(rc.detail, /RuntimeClass kata does not exist/);
  assert.match(rc.fix ?? "", /PYRO_K8S_RUNTIME_CLASS/);
});

test("what the engine is told to use: PYRO_K8S_MODE=sandbox without agent-sandbox, a missing or empty warm pool, no RuntimeClass", async () => {
  const bare = await fakeApi({ served: new Set(), groups: {}, denied: new Set(), runtimeClass: "present" });
  let r = await checkKubernetes(env(bare, { PYRO_K8S_MODE: "sandbox", PYRO_K8S_WARM_POOL: "warm" }));
  assert.equal(check(r, "sandbox_crds").status, "fail");
  assert.match(check(r, "sandbox_crds").detail, /PYRO_K8S_MODE=sandbox asks for Sandboxes/);
  assert.equal(check(r, "warm_pool").status, "fail");
  assert.match(check(r, "warm_pool").fix ?? "", /unset PYRO_K8S_WARM_POOL/);
  assert.equal(r.workload, null);
  assert.equal(r.ok, false);

  const kc = await fakeApi({
    served: ALL,
    groups: GROUPS,
    denied: new Set(),
    runtimeClass: "present",
    pools: { cold: 0 },
  });
  r = await checkKubernetes(env(kc, { PYRO_K8S_WARM_POOL: "nope", PYRO_K8S_MODE: "pod" }));
  assert.equal(r.workload, "pod", "PYRO_K8S_MODE=pod: Pods even where Sandboxes are served");
  assert.equal(check(r, "warm_pool").status, "fail");
  assert.match(check(r, "warm_pool").detail, /SandboxWarmPool nope does not exist in namespace pyro/);
  r = await checkKubernetes(env(kc, { PYRO_K8S_WARM_POOL: "cold" }));
  assert.equal(check(r, "warm_pool").status, "warn");
  assert.equal(r.warm_pool, false);
  r = await checkKubernetes(env(kc, { PYRO_K8S_RUNTIME_CLASS: "" }));
  assert.equal(r.runtime_class, null);
  assert.equal(check(r, "runtime_class").status, "warn");
  assert.match(check(r, "runtime_class").detail, /not gVisor/);
  r = await checkKubernetes(env(kc));
  assert.equal(check(r, "warm_pool").status, "ok", "served, none configured: cold starts");
  assert.equal(r.warm_pool, false);
});

test("RuntimeClasses not readable: a warning naming the optional ClusterRole, not a failure", async () => {
  const kc = await fakeApi({ served: ALL, groups: GROUPS, denied: new Set(), runtimeClass: "forbidden" });
  const r = await checkKubernetes(env(kc));
  assert.equal(check(r, "runtime_class").status, "warn");
  assert.match(check(r, "runtime_class").fix ?? "", /doctor-clusterrole\.yaml/);
  assert.equal(r.ok, true);
});

test("a server that refuses the credentials, one that is not there, and no config at all", async () => {
  const refused = await fakeApi({
    served: ALL,
    groups: GROUPS,
    denied: new Set(),
    runtimeClass: "present",
    status: 401,
  });
  let r = await checkKubernetes(env(refused));
  assert.deepEqual(
    r.checks.map((c) => [c.name, c.status]),
    [["api", "fail"]],
  );
  assert.match(r.checks[0]!.detail, /refused the credentials/);
  assert.match(r.checks[0]!.fix ?? "", /renew the credentials of context fake/);

  // A port nothing listens on (a listener closed again).
  const gone = createServer();
  await new Promise<void>((res) => gone.listen(0, "127.0.0.1", res));
  const port = (gone.address() as AddressInfo).port;
  await new Promise<void>((res) => gone.close(() => res()));
  r = await checkKubernetes(env(await kubeconfig(`http://127.0.0.1:${port}`)));
  assert.equal(r.ok, false);
  assert.equal(r.workload, null);
  assert.match(
    r.checks[0]!.detail,
    new RegExp(`127\\.0\\.0\\.1:${port} of context fake .* does not answer: .*ECONNREFUSED`),
  );
  assert.match(r.checks[0]!.fix ?? "", /start the cluster/);

  r = await checkKubernetes({ PYRO_ENGINE: "kubernetes", KUBECONFIG: "/nonexistent/kubeconfig" });
  assert.equal(r.checks[0]!.status, "fail");
  assert.match(r.checks[0]!.detail, /cannot load the Kubernetes config from \/nonexistent\/kubeconfig/);
});
