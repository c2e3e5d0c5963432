import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { loadAllYaml } from "@kubernetes/client-node";
import {
  KUBERNETES_DOCTOR_CLUSTER_RBAC,
  KUBERNETES_DOCTOR_CLUSTER_ROLE_NAME,
  KUBERNETES_RBAC,
  KUBERNETES_ROLE_NAME,
  type RbacRule,
} from "../../src/engines/kubernetes/rbac.js";
import { TokenStore } from "../../src/tenants/tokens.js";
import { REPO } from "../helpers.js";

/**
 * deploy/kubernetes/ against the code: every manifest parses, the Role grants exactly what the
 * engine uses (src/engines/kubernetes/rbac.ts, the list the doctor checks too), nothing in it
 * reaches beyond one namespace but the optional read-only doctor ClusterRole, and the
 * Deployment, binding, Service and Secret agree with each other and with pyro's own paths.
 */

const DIR = join(REPO, "deploy", "kubernetes");
// biome-ignore lint/suspicious/noExplicitAny: manifests are untyped YAML
type Obj = any;

async function manifests(): Promise<{ file: string; obj: Obj }[]> {
  const out: { file: string; obj: Obj }[] = [];
  for (const file of (await readdir(DIR)).filter((f) => f.endsWith(".yaml")).sort()) {
    const docs = loadAllYaml(await readFile(join(DIR, file), "utf8")) as Obj[];
    // Plain JSON: loadAllYaml builds the client's model classes (V1RoleRef, …) for known kinds.
    for (const obj of docs.filter((d) => d !== null && d !== undefined))
      out.push({ file, obj: JSON.parse(JSON.stringify(obj)) });
  }
  return out;
}

const grants = (rules: readonly { group: string; resource: string; verbs: readonly string[] }[]) =>
  rules.flatMap((r) => r.verbs.map((v) => `${r.group}|${r.resource}|${v}`)).sort();

/** A Role's rules as the same triples as rbac.ts's list (refusing the forms that widen it). */
function roleGrants(rules: Obj[]): string[] {
  const out: RbacRule[] = [];
  for (const r of rules) {
    assert.equal(r.resourceNames, undefined, "no resourceNames: the engine names its own objects");
    assert.equal(r.nonResourceURLs, undefined, "no non-resource URLs");
    for (const list of [r.apiGroups, r.resources, r.verbs]) assert.ok(!list.includes("*"), "no wildcards");
    for (const group of r.apiGroups)
      for (const resource of r.resources) out.push({ group, resource, verbs: r.verbs, why: "" });
  }
  return grants(out);
}

const CLUSTER_KINDS = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding", "RuntimeClass"]);

test("every manifest parses into objects with a kind and a name, and namespaced ones a namespace", async () => {
  const all = await manifests();
  assert.ok(all.length >= 10, `found ${all.length} objects`);
  for (const { file, obj } of all) {
    if (obj.kind === "Kustomization") continue;
    assert.ok(obj.apiVersion && obj.kind && obj.metadata?.name, `${file}: apiVersion, kind and name`);
    if (!CLUSTER_KINDS.has(obj.kind))
      assert.ok(obj.metadata.namespace, `${file}: ${obj.kind} ${obj.metadata.name} names its namespace`);
  }
});

test("the Role grants exactly the verbs the engine uses (rbac.ts), in one namespace", async () => {
  const roles = (await manifests()).filter((m) => m.obj.kind === "Role");
  assert.deepEqual(
    roles.map((m) => [m.file, m.obj.metadata.name]),
    [["role.yaml", KUBERNETES_ROLE_NAME]],
  );
  assert.deepEqual(roleGrants(roles[0]!.obj.rules), grants(KUBERNETES_RBAC));
});

test("nothing cluster-wide but the optional, read-only doctor ClusterRole; no secrets or nodes anywhere", async () => {
  const all = await manifests();
  const clusterRoles = all.filter((m) => m.obj.kind === "ClusterRole");
  assert.deepEqual(
    clusterRoles.map((m) => [m.file, m.obj.metadata.name]),
    [["doctor-clusterrole.yaml", KUBERNETES_DOCTOR_CLUSTER_ROLE_NAME]],
  );
  assert.deepEqual(roleGrants(clusterRoles[0]!.obj.rules), grants(KUBERNETES_DOCTOR_CLUSTER_RBAC));
  for (const r of KUBERNETES_DOCTOR_CLUSTER_RBAC)
    assert.ok(
      r.verbs.every((v) => ["get", "list", "watch"].includes(v)),
      "the doctor only reads",
    );
  const bindings = all.filter((m) => m.obj.kind === "ClusterRoleBinding");
  assert.deepEqual(
    bindings.map((m) => [m.file, m.obj.roleRef.name]),
    [["doctor-clusterrole.yaml", KUBERNETES_DOCTOR_CLUSTER_ROLE_NAME]],
  );
  for (const m of all.filter((x) => x.obj.kind === "Role" || x.obj.kind === "ClusterRole"))
    for (const r of m.obj.rules)
      for (const res of r.resources)
        assert.ok(
          !["secrets", "nodes", "serviceaccounts", "roles", "rolebindings"].includes(res),
          `${m.file} grants ${res}`,
        );
  // The optional pieces stay out of `kubectl apply -k`, and so does the tokens Secret: applying
  // the placeholder again would replace the operator's tokens with none.
  const kustomization = all.find((m) => m.obj.kind === "Kustomization")!.obj;
  const yamls = (await readdir(DIR)).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml");
  assert.deepEqual(
    [...kustomization.resources].sort(),
    yamls
      .filter((f) => !["doctor-clusterrole.yaml", "runtimeclass.yaml", "tokens-secret.yaml"].includes(f))
      .sort(),
  );
});

test("the server's identity, its binding, the engine's namespace and the Deployment agree", async () => {
  const all = await manifests();
  const one = (kind: string) => {
    const found = all.filter((m) => m.obj.kind === kind);
    assert.equal(found.length, 1, `one ${kind}`);
    return found[0]!.obj;
  };
  const role = one("Role");
  const sa = one("ServiceAccount");
  const binding = one("RoleBinding");
  const deploy = one("Deployment");
  const service = one("Service");
  const secret = one("Secret");
  const pod = deploy.spec.template.spec;
  const c = pod.containers[0];
  const env = Object.fromEntries(c.env.map((e: Obj) => [e.name, e.value]));

  // The binding gives the server's service account the Role, in the Role's namespace, which
  // is the one the engine is told to use.
  assert.equal(binding.metadata.namespace, role.metadata.namespace);
  assert.deepEqual(binding.roleRef, {
    apiGroup: "rbac.authorization.k8s.io",
    kind: "Role",
    name: role.metadata.name,
  });
  assert.deepEqual(binding.subjects, [
    { kind: "ServiceAccount", name: sa.metadata.name, namespace: sa.metadata.namespace },
  ]);
  assert.equal(pod.serviceAccountName, sa.metadata.name);
  assert.equal(deploy.metadata.namespace, sa.metadata.namespace);
  assert.notEqual(
    deploy.metadata.namespace,
    role.metadata.namespace,
    "the server lives apart from its sandboxes",
  );
  assert.equal(env.PYRO_ENGINE, "kubernetes");
  assert.equal(env.PYRO_K8S_NAMESPACE, role.metadata.namespace);
  assert.notEqual(pod.automountServiceAccountToken, false, "in-cluster config needs the token");

  // The command serves MCP over HTTP, and its health endpoint is what the probes ask.
  const script = [...(c.command ?? []), ...(c.args ?? [])].join(" ");
  assert.match(script, /exec pyro mcp serve --http 0\.0\.0\.0:(\d+)/);
  const port = Number(/--http 0\.0\.0\.0:(\d+)/.exec(script)![1]);
  const named = c.ports.find((p: Obj) => p.containerPort === port);
  assert.ok(named, "the container declares the port pyro listens on");
  for (const probe of [c.readinessProbe, c.livenessProbe]) {
    assert.equal(probe.httpGet.path, "/healthz");
    assert.ok(probe.httpGet.port === port || probe.httpGet.port === named.name);
  }
  assert.equal(deploy.spec.replicas, 1, "records are files under locks on one volume");
  assert.equal(deploy.spec.strategy.type, "Recreate");

  // The Service reaches these pods on that port.
  for (const [k, v] of Object.entries(service.spec.selector))
    assert.equal(deploy.spec.template.metadata.labels[k], v);
  assert.ok(service.spec.ports.some((p: Obj) => p.targetPort === port || p.targetPort === named.name));
  assert.equal(service.spec.type, "ClusterIP");

  // The tokens Secret is linked where pyro's TokenStore reads its token file.
  const tokensVolume = pod.volumes.find((v: Obj) => v.secret?.secretName === secret.metadata.name);
  const mount = c.volumeMounts.find((m: Obj) => m.name === tokensVolume.name);
  const key = Object.keys(secret.stringData ?? secret.data)[0]!;
  const store = new TokenStore(env.PYRO_STATE_DIR);
  assert.ok(
    script.includes(`ln -sfn ${mount.mountPath}/${key} "$PYRO_STATE_DIR/remote/tokens.json"`) &&
      store.file === `${env.PYRO_STATE_DIR}/remote/tokens.json`,
    "the Secret's file is linked to TokenStore's path",
  );
  assert.deepEqual(JSON.parse(secret.stringData[key]), { tokens: [] }, "the placeholder holds no token");
  // The state dir is on the volume that persists.
  const stateMount = c.volumeMounts.find((m: Obj) => env.PYRO_STATE_DIR.startsWith(`${m.mountPath}/`));
  const stateVolume = pod.volumes.find((v: Obj) => v.name === stateMount.name);
  assert.ok(stateVolume.persistentVolumeClaim, "pyro's records survive a restart");
});
