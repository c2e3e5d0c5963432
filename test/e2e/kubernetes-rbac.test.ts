import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, before, test } from "node:test";
import {
  AuthorizationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  Exec,
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  loadAllYaml,
  NetworkingV1Api,
  NodeV1Api,
  RbacAuthorizationV1Api,
  VersionApi,
} from "@kubernetes/client-node";
import { checkKubernetes } from "../../src/engines/kubernetes/doctor.js";
import { KUBERNETES_RBAC } from "../../src/engines/kubernetes/rbac.js";
import { REPO, tempDir } from "../helpers.js";

/**
 * Issue 28, "RBAC limited to the Role", against the real test cluster (scripts/cluster/):
 * a ServiceAccount bound only to deploy/kubernetes/role.yaml can do what the engine does in
 * its namespace (create, exec into and delete a gVisor pod; volumes, network policies,
 * agent-sandbox objects), and is refused everywhere else (its own namespace, another one,
 * nodes, secrets, RBAC itself). `pyro doctor`'s kubernetes checks run as that identity: all
 * grants present; a narrower Role's missing grants named; the RuntimeClass seen through the
 * optional ClusterRole and a missing one failed with its fix. Every manifest of
 * deploy/kubernetes/ is accepted by the API server (server-side dry run).
 *
 * The cluster: PYRO_TEST_KUBECONFIG, else the one `npm run cluster:up` runs
 * (/run/pyro-cluster/admin.kubeconfig). Without one that answers, every test is skipped with
 * the reason. Everything made here is in two namespaces of its own plus two cluster-scoped
 * RBAC objects, all removed at the end.
 */

const ADMIN_KUBECONFIG = process.env.PYRO_TEST_KUBECONFIG ?? "/run/pyro-cluster/admin.kubeconfig";
/** The cluster's command image (scripts/cluster/images.sh), imported locally: never pulled. */
const IMAGE = process.env.PYRO_TEST_K8S_IMAGE ?? "localhost/pyro/debian:12-pyro1";
const DEPLOY = join(REPO, "deploy", "kubernetes");
const suffix = randomBytes(3).toString("hex");
const SANDBOXES = `pyro-rbac-${suffix}`; // the Role's namespace (pyro-sandboxes)
const SERVER = `pyro-rbac-srv-${suffix}`; // the ServiceAccount's (pyro-system)
const DOCTOR_CR = `pyro-doctor-${suffix}`;

async function reachable(): Promise<KubeConfig | string> {
  // scripts/run-tests.mjs starts the test cluster before this file, or says why it did not.
  if (process.env.PYRO_TEST_CLUSTER_FAILED) throw new Error(process.env.PYRO_TEST_CLUSTER_FAILED);
  if (process.env.PYRO_TEST_CLUSTER_UNAVAILABLE && !process.env.PYRO_TEST_KUBECONFIG)
    return `no test cluster: ${process.env.PYRO_TEST_CLUSTER_UNAVAILABLE}`;
  if (!existsSync(ADMIN_KUBECONFIG))
    return `no test cluster: ${ADMIN_KUBECONFIG} does not exist (npm run cluster:up, or set PYRO_TEST_KUBECONFIG)`;
  const kc = new KubeConfig();
  kc.loadFromFile(ADMIN_KUBECONFIG);
  const answer = await Promise.race([
    kc
      .makeApiClient(VersionApi)
      .getCode()
      .then(
        () => undefined,
        (e: Error) => e.message.split("\n")[0],
      ),
    new Promise<string>((r) => setTimeout(() => r("no answer within 20 s"), 20_000).unref()),
  ]);
  if (answer !== undefined)
    return `the test cluster at ${kc.getCurrentCluster()?.server} does not answer: ${answer}`;
  return kc;
}

const got = await reachable();
const skip = typeof got === "string" ? `skipped: ${got}` : undefined;
const admin = typeof got === "string" ? new KubeConfig() : got;

const dirs: string[] = [];
let sa: KubeConfig;
let saFile: string;
let narrowFile: string;
let agentSandbox = false;

/** deploy/kubernetes/<file>'s objects, as plain JSON, with the namespaces of this test. */
async function manifest(file: string): Promise<KubernetesObject[]> {
  const text = (await readFile(join(DEPLOY, file), "utf8"))
    .replaceAll("pyro-sandboxes", SANDBOXES)
    .replaceAll("pyro-system", SERVER);
  return (loadAllYaml(text) as KubernetesObject[]).filter(Boolean).map((o) => JSON.parse(JSON.stringify(o)));
}

/** A kubeconfig for a ServiceAccount's token, on the admin config's cluster. */
async function tokenConfig(name: string): Promise<{ kc: KubeConfig; file: string }> {
  const tr = await admin.makeApiClient(CoreV1Api).createNamespacedServiceAccountToken({
    name,
    namespace: SERVER,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const cluster = admin.getCurrentCluster()!;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name, token: tr.status!.token }],
    contexts: [{ name, cluster: cluster.name, user: name, namespace: SANDBOXES }],
    currentContext: name,
  });
  const dir = await tempDir("pyro-k8s-rbac-");
  dirs.push(dir);
  const file = join(dir, "kubeconfig");
  await writeFile(file, kc.exportConfig(), { mode: 0o600 });
  return { kc, file };
}

/** Waits until the API server's authorizer has seen a new binding (its RBAC cache is an informer). */
async function untilBound(kc: KubeConfig): Promise<void> {
  const authz = kc.makeApiClient(AuthorizationV1Api);
  const ask = { namespace: SANDBOXES, verb: "list", resource: "pods" };
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
    const r = await authz.createSelfSubjectAccessReview({ body: { spec: { resourceAttributes: ask } } });
    if (r.status?.allowed) return;
    await new Promise((res) => setTimeout(res, 250));
  }
  throw new Error("the RoleBinding did not take effect within 30 s");
}

/** The HTTP status a call failed with (or 0 when it succeeded). */
async function statusOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 0;
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "number") return code;
    throw e;
  }
}

before(async () => {
  if (skip) return;
  const objs = admin.makeApiClient(KubernetesObjectApi);
  const core = admin.makeApiClient(CoreV1Api);
  for (const name of [SANDBOXES, SERVER]) await core.createNamespace({ body: { metadata: { name } } });
  // Pods need the namespace's default ServiceAccount, which the controller-manager adds.
  for (const deadline = Date.now() + 60_000; ; ) {
    const sa = await statusOf(core.readNamespacedServiceAccount({ name: "default", namespace: SANDBOXES }));
    if (sa === 0) break;
    if (Date.now() > deadline)
      throw new Error(
        `no default ServiceAccount in ${SANDBOXES} after 60 s: is the controller-manager running?`,
      );
    await new Promise((res) => setTimeout(res, 250));
  }
  // The Role and the binding exactly as shipped, in this test's namespaces.
  for (const o of [...(await manifest("role.yaml")), ...(await manifest("serviceaccount.yaml"))])
    await objs.create(o);
  // A second identity with the Role minus exec: what doctor says when a grant is missing.
  const role = (await manifest("role.yaml"))[0] as KubernetesObject & { rules: { resources: string[] }[] };
  role.metadata!.name = "pyro-narrow";
  role.rules = role.rules.filter((r) => !r.resources.includes("pods/exec"));
  await objs.create(role);
  await core.createNamespacedServiceAccount({ namespace: SERVER, body: { metadata: { name: "narrow" } } });
  await admin.makeApiClient(RbacAuthorizationV1Api).createNamespacedRoleBinding({
    namespace: SANDBOXES,
    body: {
      metadata: { name: "pyro-narrow" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "pyro-narrow" },
      subjects: [{ kind: "ServiceAccount", name: "narrow", namespace: SERVER }],
    },
  });
  // A secret in the Role's namespace the engine has no business reading.
  await core.createNamespacedSecret({
    namespace: SANDBOXES,
    body: { metadata: { name: "not-pyros" }, stringData: { key: "value" } },
  });
  ({ kc: sa, file: saFile } = await tokenConfig("pyro"));
  const narrow = await tokenConfig("narrow");
  narrowFile = narrow.file;
  await untilBound(sa);
  await untilBound(narrow.kc);
  agentSandbox =
    (await statusOf(
      admin.makeApiClient(CustomObjectsApi).listNamespacedCustomObject({
        group: "agents.x-k8s.io",
        version: "v1beta1",
        namespace: SANDBOXES,
        plural: "sandboxes",
      }),
    )) === 0;
});

after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
  if (skip) return;
  const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
  await statusOf(rbac.deleteClusterRoleBinding({ name: DOCTOR_CR }));
  await statusOf(rbac.deleteClusterRole({ name: DOCTOR_CR }));
  const core = admin.makeApiClient(CoreV1Api);
  for (const name of [SANDBOXES, SERVER]) await statusOf(core.deleteNamespace({ name }));
});

test("the ServiceAccount bound to the Role: doctor finds every grant; volumes, policies and agent-sandbox objects in its namespace", {
  skip,
}, async () => {
  const r = await checkKubernetes({
    PYRO_ENGINE: "kubernetes",
    KUBECONFIG: saFile,
    PYRO_K8S_NAMESPACE: SANDBOXES,
  });
  const status = Object.fromEntries(r.checks.map((c) => [c.name, c.status]));
  assert.equal(r.namespace, SANDBOXES);
  assert.equal(status.api, "ok");
  assert.deepEqual(r.missing_permissions, []);
  assert.equal(status.rbac, "ok", JSON.stringify(r.checks));
  // Without the optional ClusterRole, the RuntimeClass cannot be looked at: a warning.
  assert.equal(status.runtime_class, "warn");
  assert.equal(r.workload, agentSandbox ? "sandbox" : "pod");
  assert.equal(r.ok, true, JSON.stringify(r.checks));

  const core = sa.makeApiClient(CoreV1Api);
  const net = sa.makeApiClient(NetworkingV1Api);
  // A volume claim (dry run: the hostPath provisioner would make a directory) and a deny-all
  // network policy, made, listed and removed for real.
  assert.equal(
    await statusOf(
      core.createNamespacedPersistentVolumeClaim({
        namespace: SANDBOXES,
        dryRun: "All",
        body: {
          metadata: { name: "ws" },
          spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Mi" } } },
        },
      }),
    ),
    0,
  );
  await net.createNamespacedNetworkPolicy({
    namespace: SANDBOXES,
    body: {
      metadata: { name: "deny-all" },
      spec: { podSelector: { matchLabels: { "pyro.dev/test": suffix } }, policyTypes: ["Ingress", "Egress"] },
    },
  });
  const policies = await net.listNamespacedNetworkPolicy({ namespace: SANDBOXES });
  assert.deepEqual(
    policies.items.map((p) => p.metadata?.name),
    ["deny-all"],
  );
  await net.deleteNamespacedNetworkPolicy({ name: "deny-all", namespace: SANDBOXES });

  // agent-sandbox objects, where the cluster serves them (a server-side dry run: nothing starts).
  if (agentSandbox) {
    const custom = sa.makeApiClient(CustomObjectsApi);
    assert.equal(
      await statusOf(
        custom.createNamespacedCustomObject({
          group: "agents.x-k8s.io",
          version: "v1beta1",
          namespace: SANDBOXES,
          plural: "sandboxes",
          dryRun: "All",
          body: {
            apiVersion: "agents.x-k8s.io/v1beta1",
            kind: "Sandbox",
            metadata: { name: "sb" },
            spec: {
              podTemplate: {
                spec: {
                  runtimeClassName: "gvisor",
                  containers: [{ name: "c", image: IMAGE, command: ["sleep", "1"] }],
                },
              },
            },
          },
        }),
      ),
      0,
    );
    assert.equal(
      await statusOf(
        custom.listNamespacedCustomObject({
          group: "extensions.agents.x-k8s.io",
          version: "v1beta1",
          namespace: SANDBOXES,
          plural: "sandboxclaims",
        }),
      ),
      0,
    );
    // A warm pool is the operator's: pyro reads the one it is told to use, and cannot make one.
    assert.equal(
      await statusOf(
        custom.getNamespacedCustomObject({
          group: "extensions.agents.x-k8s.io",
          version: "v1beta1",
          namespace: SANDBOXES,
          plural: "sandboxwarmpools",
          name: "absent",
        }),
      ),
      404,
    );
  }
});

test("the same ServiceAccount makes a gVisor pod, finds it by label, execs into it through the API server and deletes it", {
  skip,
}, async () => {
  const core = sa.makeApiClient(CoreV1Api);
  const pod = `pyro-rbac-${suffix}`;
  await core.createNamespacedPod({
    namespace: SANDBOXES,
    body: {
      metadata: { name: pod, labels: { "pyro.dev/test": suffix } },
      spec: {
        runtimeClassName: "gvisor",
        automountServiceAccountToken: false,
        restartPolicy: "Never",
        activeDeadlineSeconds: 600,
        containers: [{ name: "c", image: IMAGE, imagePullPolicy: "Never", command: ["sleep", "600"] }],
      },
    },
  });
  try {
    // Found by label, watched until it runs (list + get are the Role's).
    const listed = await core.listNamespacedPod({
      namespace: SANDBOXES,
      labelSelector: `pyro.dev/test=${suffix}`,
    });
    assert.deepEqual(
      listed.items.map((p) => p.metadata?.name),
      [pod],
    );
    const deadline = Date.now() + 180_000;
    let phase = "";
    let why = "";
    while (Date.now() < deadline) {
      const p = await core.readNamespacedPod({ name: pod, namespace: SANDBOXES });
      phase = p.status?.phase ?? "";
      why = JSON.stringify(p.status?.containerStatuses?.[0]?.state ?? {});
      if (phase === "Running" || phase === "Failed") break;
      await new Promise((res) => setTimeout(res, 1000));
    }
    assert.equal(phase, "Running", `the pod runs (state ${why})`);
    // Exec through the API server as the ServiceAccount: the WebSocket upgrade and the exec.
    const out = new PassThrough();
    let text = "";
    out.on("data", (d) => {
      text += d;
    });
    const code = await new Promise<number>((resolve, reject) => {
      new Exec(sa)
        .exec(SANDBOXES, pod, "c", ["sh", "-c", "echo pyro-exec-ok; exit 3"], out, null, null, false, (s) => {
          const cause = s.details?.causes?.find((c) => c.reason === "ExitCode");
          resolve(s.status === "Success" ? 0 : Number(cause?.message ?? -1));
        })
        .catch(reject);
    });
    await new Promise((res) => setImmediate(res)); // stdout chunks already read are delivered
    assert.equal(text.trim(), "pyro-exec-ok");
    assert.equal(code, 3);
  } finally {
    await core.deleteNamespacedPod({ name: pod, namespace: SANDBOXES, gracePeriodSeconds: 0 });
  }
});

test("the same ServiceAccount is refused everywhere else: other namespaces, nodes, secrets, RBAC", {
  skip,
}, async () => {
  const core = sa.makeApiClient(CoreV1Api);
  const pod = {
    metadata: { name: "nope" },
    spec: { containers: [{ name: "c", image: IMAGE }] },
  };
  // Thunks: each call starts only when asked, so no refusal goes unhandled meanwhile.
  const refused: [string, () => Promise<unknown>][] = [
    [
      "make a warm pool (the operator's)",
      () =>
        sa.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
          group: "extensions.agents.x-k8s.io",
          version: "v1beta1",
          namespace: SANDBOXES,
          plural: "sandboxwarmpools",
          dryRun: "All",
          body: {
            apiVersion: "extensions.agents.x-k8s.io/v1beta1",
            kind: "SandboxWarmPool",
            metadata: { name: "w" },
          },
        }),
    ],
    ["read events (the engine reads pod status)", () => core.listNamespacedEvent({ namespace: SANDBOXES })],
    [
      "create a pod in its own namespace",
      () => core.createNamespacedPod({ namespace: SERVER, body: pod, dryRun: "All" }),
    ],
    [
      "create a pod in default",
      () => core.createNamespacedPod({ namespace: "default", body: pod, dryRun: "All" }),
    ],
    ["list pods in its own namespace", () => core.listNamespacedPod({ namespace: SERVER })],
    ["list pods everywhere", () => core.listPodForAllNamespaces()],
    ["list nodes", () => core.listNode()],
    ["list secrets", () => core.listNamespacedSecret({ namespace: SANDBOXES })],
    ["read a secret", () => core.readNamespacedSecret({ name: "not-pyros", namespace: SANDBOXES })],
    ["list service accounts", () => core.listNamespacedServiceAccount({ namespace: SANDBOXES })],
    [
      "create a namespace",
      () => core.createNamespace({ body: { metadata: { name: `x-${suffix}` } }, dryRun: "All" }),
    ],
    [
      "grant itself more",
      () =>
        sa.makeApiClient(RbacAuthorizationV1Api).createNamespacedRoleBinding({
          namespace: SANDBOXES,
          dryRun: "All",
          body: {
            metadata: { name: "more" },
            roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "admin" },
            subjects: [{ kind: "ServiceAccount", name: "pyro", namespace: SERVER }],
          },
        }),
    ],
    [
      "read RuntimeClasses (without the optional ClusterRole)",
      () => sa.makeApiClient(NodeV1Api).listRuntimeClass(),
    ],
  ];
  for (const [what, call] of refused) assert.equal(await statusOf(call()), 403, what);
  // Every verb of the Role, asked of another namespace: none holds there.
  const authz = sa.makeApiClient(AuthorizationV1Api);
  for (const rule of KUBERNETES_RBAC)
    for (const verb of rule.verbs) {
      const [resource, subresource] = rule.resource.split("/");
      const r = await authz.createSelfSubjectAccessReview({
        body: {
          spec: { resourceAttributes: { namespace: SERVER, verb, group: rule.group, resource, subresource } },
        },
      });
      assert.equal(r.status?.allowed, false, `${verb} ${rule.resource} in another namespace`);
    }
});

test("doctor as a narrower Role's identity names exactly the missing grants and the binding that fixes it", {
  skip,
}, async () => {
  const r = await checkKubernetes({
    PYRO_ENGINE: "kubernetes",
    KUBECONFIG: narrowFile,
    PYRO_K8S_NAMESPACE: SANDBOXES,
  });
  assert.deepEqual(r.missing_permissions, ["create pods/exec", "get pods/exec"]);
  const rbac = r.checks.find((c) => c.name === "rbac")!;
  assert.equal(rbac.status, "fail");
  assert.match(
    rbac.detail,
    new RegExp(`system:serviceaccount:${SERVER}:narrow may not, in namespace ${SANDBOXES}`),
  );
  assert.match(rbac.fix ?? "", new RegExp(`--role=pyro-engine --serviceaccount=${SERVER}:narrow`));
  assert.equal(r.ok, false);
});

test("doctor with the optional ClusterRole sees the RuntimeClass, and fails a missing one with its fix", {
  skip,
}, async () => {
  const objs = admin.makeApiClient(KubernetesObjectApi);
  for (const o of await manifest("doctor-clusterrole.yaml")) {
    o.metadata!.name = DOCTOR_CR;
    const ref = (o as { roleRef?: { name: string } }).roleRef;
    if (ref) ref.name = DOCTOR_CR;
    await objs.create(o);
  }
  const env = { PYRO_ENGINE: "kubernetes", KUBECONFIG: saFile, PYRO_K8S_NAMESPACE: SANDBOXES };
  // RBAC changes reach the authorizer through its informer: poll, with a deadline.
  let rc: { status: string; detail: string; fix: string | null } | undefined;
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
    rc = (await checkKubernetes(env)).checks.find((c) => c.name === "runtime_class");
    if (rc?.status === "ok") break;
    await new Promise((res) => setTimeout(res, 500));
  }
  assert.equal(rc?.status, "ok", JSON.stringify(rc));
  assert.match(rc?.detail ?? "", /RuntimeClass gvisor exists \(handler runsc\)/);

  const missing = await checkKubernetes({ ...env, PYRO_K8S_RUNTIME_CLASS: `pyro-missing-${suffix}` });
  const check = missing.checks.find((c) => c.name === "runtime_class")!;
  assert.equal(check.status, "fail");
  assert.match(check.detail, new RegExp(`RuntimeClass pyro-missing-${suffix} does not exist`));
  assert.match(check.fix ?? "", /runtimeclass\.yaml.*PYRO_K8S_RUNTIME_CLASS/);
  assert.equal(missing.ok, false);
});

test("every manifest of deploy/kubernetes/ is accepted by the API server (server-side dry run)", {
  skip,
}, async () => {
  const objs = admin.makeApiClient(KubernetesObjectApi);
  const files = [
    "namespaces.yaml",
    "role.yaml",
    "serviceaccount.yaml",
    "tokens-secret.yaml",
    "state-pvc.yaml",
  ];
  files.push("deployment.yaml", "service.yaml", "doctor-clusterrole.yaml", "runtimeclass.yaml");
  let n = 0;
  for (const file of files)
    for (const o of await manifest(file)) {
      // Cluster-scoped objects get this test's names (gvisor and the rest may exist already).
      if (!o.metadata?.namespace) o.metadata!.name = `${o.metadata!.name}-dry-${suffix}`;
      // Objects this test already made (the Role, its binding): the dry run would say 409.
      if (["Role", "RoleBinding", "ServiceAccount"].includes(o.kind!))
        o.metadata!.name = `${o.metadata!.name}-dry`;
      await objs.create(o, undefined, "All");
      n++;
    }
  assert.ok(n >= 12, `${n} objects`);
});
