/**
 * What the kubernetes engine may do in its namespace: the one list the Role in
 * deploy/kubernetes/role.yaml grants, `pyro doctor` checks verb by verb, and the tests hold
 * the Role to (test/unit/kubernetes-manifests.test.ts: exactly these, nothing cluster-wide).
 * A new API call of the engine adds its verb here first, so the Role, the doctor and the
 * engine cannot drift apart. What the engine does not do is not granted: it polls rather than
 * watches, reads pod status rather than events, never changes a NetworkPolicy in place, and
 * neither makes warm pools nor their templates (the operator does; pyro claims from them).
 *
 * No imports: the unit test, the doctor and the engine all read it, none needs the client.
 */

export interface RbacRule {
  /** The API group ("" for the core group). */
  group: string;
  /** The resource, with a subresource after a slash (`pods/exec`). */
  resource: string;
  verbs: readonly string[];
  /** Why the engine needs it: doctor names it when the grant is missing. */
  why: string;
}

/** Everything the engine does, in one namespace. No secrets, nodes or cluster-scoped objects. */
export const KUBERNETES_RBAC: readonly RbacRule[] = [
  {
    group: "",
    resource: "pods",
    // patch: a sandbox's expiry annotation (setExpiry); list: found by label after a crash.
    verbs: ["create", "get", "list", "patch", "delete"],
    why: "sandboxes run as pods (plain Pods without agent-sandbox); found by label after a crash",
  },
  {
    group: "",
    resource: "pods/exec",
    // get: client-node execs over a WebSocket, an HTTP GET, which Kubernetes 1.34 authorizes
    // as `get pods/exec` (measured on the test cluster: `create` alone is refused, 403);
    // create: exec as a POST (SPDY) and API servers that authorize the upgrade as a create.
    verbs: ["create", "get"],
    why: "commands, seeds, file tools, diff and export run over exec through the API server",
  },
  {
    group: "",
    resource: "persistentvolumeclaims",
    verbs: ["create", "get", "list", "delete"],
    why: "workspace files live on a volume that survives a stop",
  },
  {
    group: "networking.k8s.io",
    resource: "networkpolicies",
    verbs: ["create", "list", "delete"],
    why: "network off by default: a deny-all policy per sandbox",
  },
  {
    group: "agents.x-k8s.io",
    resource: "sandboxes",
    verbs: ["create", "get", "list", "patch", "delete"],
    why: "runs and workspaces as agent-sandbox Sandboxes; stop/start by operatingMode, TTL by shutdownTime",
  },
  {
    group: "extensions.agents.x-k8s.io",
    resource: "sandboxclaims",
    verbs: ["create", "get", "list", "delete"],
    why: "warm starts claim a sandbox from a warm pool",
  },
  {
    group: "extensions.agents.x-k8s.io",
    resource: "sandboxwarmpools",
    // Read only: the operator makes the pool (PYRO_K8S_WARM_POOL names it); doctor reads it.
    verbs: ["get"],
    why: "the warm pool PYRO_K8S_WARM_POOL names is checked to exist and be ready",
  },
];

/**
 * Cluster-wide reads only `pyro doctor` uses, granted by the optional ClusterRole in
 * deploy/kubernetes/doctor-clusterrole.yaml. Without it the doctor says it could not look,
 * and the engine works the same (a missing RuntimeClass then shows as a pod that does not start).
 * The CRDs need no cluster read: a list of each kind in the namespace answers 404 when its
 * CRD (or its v1beta1) is not served, which the Role's own grants already allow.
 */
export const KUBERNETES_DOCTOR_CLUSTER_RBAC: readonly RbacRule[] = [
  {
    group: "node.k8s.io",
    resource: "runtimeclasses",
    verbs: ["get", "list"],
    why: "doctor checks that the RuntimeClass sandboxes name exists",
  },
];

/** The Role's and ClusterRole's names in deploy/kubernetes/. */
export const KUBERNETES_ROLE_NAME = "pyro-engine";
export const KUBERNETES_DOCTOR_CLUSTER_ROLE_NAME = "pyro-doctor";

/** `verb group/resource` as `kubectl auth can-i` spells it: `create pods/exec`, `get sandboxes.agents.x-k8s.io`. */
export function permissionName(verb: string, rule: Pick<RbacRule, "group" | "resource">): string {
  const [res, sub] = rule.resource.split("/");
  return `${verb} ${res}${rule.group ? `.${rule.group}` : ""}${sub ? `/${sub}` : ""}`;
}
