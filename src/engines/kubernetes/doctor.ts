import type { KubernetesReportT } from "../../contract/doctor.js";
import type { PyroError } from "../../core/errors.js";
import { ignore } from "../../util/best-effort.js";
import {
  KUBERNETES_DOCTOR_CLUSTER_ROLE_NAME,
  KUBERNETES_RBAC,
  KUBERNETES_ROLE_NAME,
  permissionName,
} from "./rbac.js";
import {
  type Any,
  DEFAULT_NAMESPACE,
  type KubernetesSettings,
  kubernetesSettings,
  loadClient,
} from "./settings.js";

/**
 * `pyro doctor`'s checks of the cluster the kubernetes engine would use: is the API server
 * there (its version), may this identity do what the engine does (one SelfSubjectAccessReview
 * per verb of rbac.ts, so the answer names what is missing), does the RuntimeClass sandboxes
 * name exist, which agent-sandbox kinds are served (Sandboxes, else plain Pods), and the warm
 * pool PYRO_K8S_WARM_POOL names. Each check that is not ok says how to fix it.
 *
 * Read-only, and fresh on every run (no probe cache): a cluster changes under pyro, and these
 * are a handful of small API calls, each with its own deadline.
 */

type Check = KubernetesReportT["checks"][number];
type Client = Any;

const SANDBOX_GROUP = "agents.x-k8s.io";
const EXTENSIONS_GROUP = "extensions.agents.x-k8s.io";
const VERSION = "v1beta1";
const WARM_KINDS = ["sandboxclaims", "sandboxwarmpools"] as const;
const INSTALL_AGENT_SANDBOX =
  "install agent-sandbox v0.5.6 (its release's sandbox.yaml and extensions.yaml, controller with --extensions; see docs/kubernetes.md)";

/** The report for `pyro doctor`, or null when the kubernetes engine is not the one chosen. */
export async function kubernetesDoctor(
  env: NodeJS.ProcessEnv = process.env,
): Promise<KubernetesReportT | null> {
  if (env.PYRO_ENGINE !== "kubernetes") return null;
  return checkKubernetes(env);
}

export async function checkKubernetes(
  env: NodeJS.ProcessEnv = process.env,
  opts: { deadlineMs?: number } = {},
): Promise<KubernetesReportT> {
  const deadlineMs = opts.deadlineMs ?? 10_000;
  let s: KubernetesSettings;
  try {
    s = await kubernetesSettings(env);
  } catch (e) {
    const err = e as PyroError;
    return {
      source: env.KUBECONFIG || "none",
      context: null,
      server: null,
      namespace: env.PYRO_K8S_NAMESPACE || DEFAULT_NAMESPACE,
      runtime_class: env.PYRO_K8S_RUNTIME_CLASS ?? "gvisor",
      server_version: null,
      missing_permissions: [],
      crds: [],
      workload: null,
      warm_pool: false,
      checks: [{ name: "api", status: "fail", detail: err.message, fix: err.hint ? String(err.hint) : null }],
      ok: false,
    };
  }
  const k8s = await loadClient();
  const options = deadlineOptions(k8s, deadlineMs);
  const report: KubernetesReportT = {
    source: s.source,
    context: s.context,
    server: s.server,
    namespace: s.namespace,
    runtime_class: s.runtimeClass,
    server_version: null,
    missing_permissions: [],
    crds: [],
    workload: null,
    warm_pool: false,
    checks: [],
    ok: false,
  };
  const where = s.context ? `context ${s.context} (${s.source})` : s.source;

  // 1. The API server: nothing else is worth asking when it does not answer.
  try {
    const v = await s.kc.makeApiClient(k8s.VersionApi).getCode({}, options);
    report.server_version = v.gitVersion;
    report.checks.push({
      name: "api",
      status: "ok",
      detail: `${s.server} answers: Kubernetes ${v.gitVersion}`,
      fix: null,
    });
  } catch (e) {
    const code = httpStatus(e);
    report.checks.push({
      name: "api",
      status: "fail",
      detail: `the API server ${s.server ?? "(none)"} of ${where} ${code === 401 ? "refused the credentials" : `does not answer: ${describe(e, deadlineMs)}`}`,
      fix:
        code === 401
          ? `renew the credentials of ${where}, or point KUBECONFIG at a current kubeconfig`
          : `start the cluster or fix the server address in ${where}; KUBECONFIG chooses the file (docs/kubernetes.md)`,
    });
    return report;
  }

  const [rbac, runtimeClass, crds] = await Promise.all([
    checkRbac(k8s, s, options),
    checkRuntimeClass(k8s, s, options, deadlineMs),
    servedKinds(k8s, s, options),
  ]);
  report.missing_permissions = rbac.missing;
  report.checks.push(rbac.check, runtimeClass);
  report.crds = crds.served;
  const sandboxes = crds.served.includes(`sandboxes.${SANDBOX_GROUP}`);
  const notServed = crds.why.get(SANDBOX_GROUP) ?? `${SANDBOX_GROUP}/${VERSION} is not served`;
  report.workload = sandboxes && s.mode !== "pod" ? "sandbox" : s.mode === "sandbox" ? null : "pod";
  report.checks.push(
    sandboxes
      ? {
          name: "sandbox_crds",
          status: "ok",
          detail:
            s.mode === "pod"
              ? `agent-sandbox Sandboxes are served, but PYRO_K8S_MODE=pod: sandboxes are plain Pods`
              : `agent-sandbox Sandboxes (${SANDBOX_GROUP}/${VERSION}) are served: sandboxes are Sandboxes`,
          fix: null,
        }
      : s.mode === "sandbox"
        ? {
            name: "sandbox_crds",
            status: "fail",
            detail: `${notServed}, and PYRO_K8S_MODE=sandbox asks for Sandboxes: no sandbox can start`,
            fix: `${INSTALL_AGENT_SANDBOX}; or unset PYRO_K8S_MODE for plain Pods`,
          }
        : {
            name: "sandbox_crds",
            status: "warn",
            detail: `${notServed}: sandboxes are plain Pods (no suspend by operatingMode, no server-side shutdownTime)`,
            fix: INSTALL_AGENT_SANDBOX,
          },
  );
  report.checks.push(await checkWarmPool(k8s, s, options, crds, deadlineMs));
  report.warm_pool = report.checks.at(-1)?.status === "ok" && s.warmPool !== null;
  report.ok = report.checks.every((c) => c.status !== "fail");
  return report;
}

/** One SelfSubjectAccessReview per verb the engine uses: the answer lists exactly what is missing. */
async function checkRbac(
  k8s: Client,
  s: KubernetesSettings,
  options: object,
): Promise<{ missing: string[]; check: Check }> {
  const authz = s.kc.makeApiClient(k8s.AuthorizationV1Api);
  const asks = KUBERNETES_RBAC.flatMap((rule) => rule.verbs.map((verb) => ({ rule, verb })));
  const answers = await Promise.all(
    asks.map(async ({ rule, verb }) => {
      const [resource, subresource] = rule.resource.split("/");
      try {
        const r = await authz.createSelfSubjectAccessReview(
          {
            body: {
              spec: {
                resourceAttributes: {
                  namespace: s.namespace,
                  verb,
                  group: rule.group,
                  resource,
                  ...(subresource ? { subresource } : {}),
                },
              },
            },
          },
          options,
        );
        return r.status?.allowed === true ? null : permissionName(verb, rule);
      } catch (e) {
        return `${permissionName(verb, rule)} (not asked: ${describe(e)})`;
      }
    }),
  );
  const missing = answers.filter((a): a is string => a !== null);
  if (missing.length === 0)
    return {
      missing,
      check: {
        name: "rbac",
        status: "ok",
        detail: `every grant of the Role ${KUBERNETES_ROLE_NAME} (${asks.length}) holds in namespace ${s.namespace}`,
        fix: null,
      },
    };
  const who = await identity(k8s, s, options);
  return {
    missing,
    check: {
      name: "rbac",
      status: "fail",
      detail: `${who ?? "this identity"} may not, in namespace ${s.namespace}: ${missing.join(", ")}`,
      fix: `kubectl apply -n ${s.namespace} -f deploy/kubernetes/role.yaml, then bind it: kubectl create rolebinding ${KUBERNETES_ROLE_NAME} -n ${s.namespace} --role=${KUBERNETES_ROLE_NAME} ${bindingSubject(who)}`,
    },
  };
}

/** Who the API server thinks we are (SelfSubjectReview, Kubernetes 1.28+), for the fix's binding. */
async function identity(k8s: Client, s: KubernetesSettings, options: object): Promise<string | undefined> {
  const r = await s.kc
    .makeApiClient(k8s.AuthenticationV1Api)
    .createSelfSubjectReview({ body: {} }, options)
    .catch(ignore("SelfSubjectReview is optional (Kubernetes < 1.28): the fix names no user"));
  return r?.status?.userInfo?.username;
}

function bindingSubject(user: string | undefined): string {
  const sa = user?.match(/^system:serviceaccount:([^:]+):([^:]+)$/);
  if (sa) return `--serviceaccount=${sa[1]}:${sa[2]}`;
  return `--user=${user ?? "USER"}`;
}

async function checkRuntimeClass(
  k8s: Client,
  s: KubernetesSettings,
  options: object,
  deadlineMs: number,
): Promise<Check> {
  if (s.runtimeClass === null)
    return {
      name: "runtime_class",
      status: "warn",
      detail:
        "PYRO_K8S_RUNTIME_CLASS is empty: sandbox pods name no RuntimeClass and run under the node's default runtime, not gVisor",
      fix: "unset PYRO_K8S_RUNTIME_CLASS (gvisor) or name the RuntimeClass of an isolating runtime",
    };
  try {
    const rc = await s.kc.makeApiClient(k8s.NodeV1Api).readRuntimeClass({ name: s.runtimeClass }, options);
    return {
      name: "runtime_class",
      status: "ok",
      detail: `RuntimeClass ${s.runtimeClass} exists (handler ${rc.handler})`,
      fix: null,
    };
  } catch (e) {
    const code = httpStatus(e);
    if (code === 404)
      return {
        name: "runtime_class",
        status: "fail",
        detail: `RuntimeClass ${s.runtimeClass} does not exist: sandbox pods naming it are refused`,
        fix: `create it (kubectl apply -f deploy/kubernetes/runtimeclass.yaml, handler runsc, on nodes whose containerd has a runsc runtime), or set PYRO_K8S_RUNTIME_CLASS to one that exists`,
      };
    if (code === 403)
      return {
        name: "runtime_class",
        status: "warn",
        detail: `not checked: this identity may not read RuntimeClasses (cluster-scoped), so a missing ${s.runtimeClass} shows only as sandbox pods that do not start`,
        fix: `optional: kubectl apply -f deploy/kubernetes/doctor-clusterrole.yaml (ClusterRole ${KUBERNETES_DOCTOR_CLUSTER_ROLE_NAME}: read RuntimeClasses), bound to this identity`,
      };
    return {
      name: "runtime_class",
      status: "fail",
      detail: `reading RuntimeClass ${s.runtimeClass} failed: ${describe(e, deadlineMs)}`,
      fix: "run pyro doctor again; if it persists, check the API server's health",
    };
  }
}

/**
 * The agent-sandbox kinds served at v1beta1. Discovery (allowed to every authenticated user)
 * says which groups serve v1beta1; a list of each kind in the namespace (the Role allows it)
 * then tells a kind that is missing (404) from one that is there. No cluster-wide CRD read.
 */
async function servedKinds(
  k8s: Client,
  s: KubernetesSettings,
  options: object,
): Promise<{ served: string[]; why: Map<string, string> }> {
  const why = new Map<string, string>();
  type Groups = { groups: { name: string; versions: { version: string }[] }[] };
  const groups: Groups | undefined = await s.kc
    .makeApiClient(k8s.ApisApi)
    .getAPIVersions({}, options)
    .catch(ignore("API discovery failed: each kind is then asked by a list alone"));
  const custom = s.kc.makeApiClient(k8s.CustomObjectsApi);
  const kinds: [string, string][] = [
    [SANDBOX_GROUP, "sandboxes"],
    ...WARM_KINDS.map((k): [string, string] => [EXTENSIONS_GROUP, k]),
  ];
  const served: string[] = [];
  for (const group of [SANDBOX_GROUP, EXTENSIONS_GROUP]) {
    const g = groups?.groups.find((x) => x.name === group);
    if (groups && !g) why.set(group, `${group} is not served (agent-sandbox is not installed)`);
    else if (g && !g.versions.some((v) => v.version === VERSION))
      why.set(
        group,
        `${group} serves only ${g.versions.map((v) => v.version).join(", ")}, not ${VERSION} (agent-sandbox older than v0.5)`,
      );
  }
  await Promise.all(
    kinds.map(async ([group, plural]) => {
      if (why.has(group)) return;
      try {
        await custom.listNamespacedCustomObject(
          { group, version: VERSION, namespace: s.namespace, plural, limit: 1 },
          options,
        );
        served.push(`${plural}.${group}`);
      } catch (e) {
        // 404: the group is there but not this kind. Anything else (403: the rbac check says
        // so) leaves discovery's answer standing.
        if (httpStatus(e) !== 404 && groups) served.push(`${plural}.${group}`);
      }
    }),
  );
  served.sort();
  return { served, why };
}

/** The warm pool one-shot runs claim from (PYRO_K8S_WARM_POOL): served, there, and filling. */
async function checkWarmPool(
  k8s: Client,
  s: KubernetesSettings,
  options: object,
  crds: { served: string[]; why: Map<string, string> },
  deadlineMs: number,
): Promise<Check> {
  const missing = WARM_KINDS.filter((k) => !crds.served.includes(`${k}.${EXTENSIONS_GROUP}`));
  const notServed =
    crds.why.get(EXTENSIONS_GROUP) ??
    `${missing.map((k) => `${k}.${EXTENSIONS_GROUP}`).join(", ")} not served`;
  if (!s.warmPool)
    return missing.length === 0
      ? {
          name: "warm_pool",
          status: "ok",
          detail: "warm pools are served; none is configured (PYRO_K8S_WARM_POOL): one-shot runs start cold",
          fix: null,
        }
      : {
          name: "warm_pool",
          status: "warn",
          detail: `${notServed}: no warm starts from a SandboxWarmPool`,
          fix: INSTALL_AGENT_SANDBOX,
        };
  if (missing.length > 0)
    return {
      name: "warm_pool",
      status: "fail",
      detail: `PYRO_K8S_WARM_POOL=${s.warmPool}, but ${notServed}: claims from it cannot be made`,
      fix: `${INSTALL_AGENT_SANDBOX}; or unset PYRO_K8S_WARM_POOL`,
    };
  try {
    const pool = await s.kc.makeApiClient(k8s.CustomObjectsApi).getNamespacedCustomObject(
      {
        group: EXTENSIONS_GROUP,
        version: VERSION,
        namespace: s.namespace,
        plural: "sandboxwarmpools",
        name: s.warmPool,
      },
      options,
    );
    const want = Number(pool?.spec?.replicas ?? 1);
    const ready = Number(pool?.status?.readyReplicas ?? 0);
    return {
      name: "warm_pool",
      status: ready > 0 ? "ok" : "warn",
      detail: `SandboxWarmPool ${s.warmPool}: ${ready} of ${want} ready`,
      fix:
        ready > 0
          ? null
          : `claims start cold until it fills: check the pool's template and the agent-sandbox controller (kubectl -n ${s.namespace} describe sandboxwarmpool ${s.warmPool})`,
    };
  } catch (e) {
    const code = httpStatus(e);
    return {
      name: "warm_pool",
      status: "fail",
      detail:
        code === 404
          ? `SandboxWarmPool ${s.warmPool} does not exist in namespace ${s.namespace}`
          : `reading SandboxWarmPool ${s.warmPool} failed: ${describe(e, deadlineMs)}`,
      fix:
        code === 404
          ? `create it (a SandboxTemplate and a SandboxWarmPool; docs/kubernetes.md), or unset PYRO_K8S_WARM_POOL`
          : code === 403
            ? "grant get sandboxwarmpools (deploy/kubernetes/role.yaml)"
            : "run pyro doctor again; if it persists, check the API server's health",
    };
  }
}

/** Every request gets its own deadline: an unreachable server must not hang `pyro doctor`. */
function deadlineOptions(k8s: Client, ms: number): object {
  return {
    middleware: [
      {
        pre: (req: { setSignal(s: AbortSignal): void }) => {
          req.setSignal(AbortSignal.timeout(ms));
          return new k8s.Observable(Promise.resolve(req));
        },
        post: (res: unknown) => new k8s.Observable(Promise.resolve(res)),
      },
    ],
    middlewareMergeStrategy: "append",
  };
}

function httpStatus(e: unknown): number | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
}

/** One short line: the API's own message, or the connection error, never the headers dump. */
function describe(e: unknown, deadlineMs?: number): string {
  const err = e as { name?: string; code?: unknown; body?: unknown; message?: string } | null;
  if (err?.name === "AbortError" || err?.name === "TimeoutError")
    return `no answer within ${Math.round((deadlineMs ?? 10_000) / 1000)} s`;
  if (typeof err?.code === "number") {
    let msg: string | undefined;
    try {
      const body = typeof err.body === "string" ? JSON.parse(err.body) : err.body;
      msg = (body as { message?: string } | undefined)?.message;
    } catch {
      msg = undefined;
    }
    return `HTTP ${err.code}${msg ? `: ${msg}` : ""}`;
  }
  const m = err?.message ?? String(e);
  return m.split("\n")[0]?.slice(0, 300) ?? m;
}
