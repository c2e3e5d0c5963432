import { PyroError } from "../../core/errors.js";
import { DEFAULT_DENY, type NetworkSpec } from "../../network/policy.js";
import type { SandboxSpec } from "../types.js";
import { imageFor, type K8sConfig } from "./config.js";

/**
 * The Kubernetes objects of one sandbox, as plain JSON (no client types: these are also the
 * shapes the unit tests check). Every object carries the same labels, so everything of an
 * owner is found by a label selector without a handle (crash recovery, `pyro doctor`, the
 * e2e leftover check), and nothing is ever found by its name alone.
 */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    uid?: string;
    resourceVersion?: string;
    deletionTimestamp?: string;
    creationTimestamp?: string | Date;
  };
  // biome-ignore lint/suspicious/noExplicitAny: API objects are open JSON; each reader checks what it takes
  spec?: any;
  // biome-ignore lint/suspicious/noExplicitAny: as above
  status?: any;
}

export const LABEL = {
  managedBy: "app.kubernetes.io/managed-by",
  owner: "pyro.dev/owner",
  tenant: "pyro.dev/tenant",
  id: "pyro.dev/id",
  role: "pyro.dev/role",
} as const;
export const EXPIRES_ANNOTATION = "pyro.dev/expires-at";

export const SANDBOX_API = "agents.x-k8s.io/v1beta1";
export const EXT_API = "extensions.agents.x-k8s.io/v1beta1";

/** Every kind the engine makes, in the order destroy removes them (the pod first). */
export const KINDS = [
  { apiVersion: SANDBOX_API, kind: "Sandbox", crd: true },
  { apiVersion: EXT_API, kind: "SandboxClaim", crd: true },
  { apiVersion: "v1", kind: "Pod", crd: false },
  { apiVersion: "v1", kind: "PersistentVolumeClaim", crd: false },
  { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", crd: false },
] as const;

/** The one container of a sandbox pod. */
export const CONTAINER = "sandbox";
/** Where the pod sees its own annotations (the expiry), through the downward API. */
const META_DIR = "/.pyro-meta";
/** The in-pod watchdog lets pyro's own reaper go first: the downward API refreshes in ~1 min. */
export const EXPIRY_GRACE_S = 90;

/**
 * pyro ids are `vm_`/`ws_` + 16 hex digits (random): the object name is `pyro-vm-<hex>`, a
 * DNS label. Ids are random, so names of two owners never meet; an object whose owner
 * label is not ours is never touched (checked on every handle and create).
 */
export function objectName(id: string): string {
  const m = /^(vm|ws)_([0-9a-f]{16})$/.exec(id);
  if (!m) throw new PyroError("invalid_argument", `sandbox id ${JSON.stringify(id)} is not a pyro id`);
  return `pyro-${m[1]}-${m[2]}`;
}

export function pvcName(id: string): string {
  return `${objectName(id)}-ws`;
}

export function netpolName(id: string): string {
  return `${objectName(id)}-net`;
}

export function labelsFor(cfg: K8sConfig, id: string, role: string): Record<string, string> {
  return {
    [LABEL.managedBy]: "pyro",
    [LABEL.owner]: cfg.owner,
    [LABEL.tenant]: cfg.tenant,
    [LABEL.id]: id,
    [LABEL.role]: role,
  };
}

/** `k=v,k=v`: all of an owner's objects, or one sandbox's. */
export function selector(cfg: K8sConfig, id?: string): string {
  const parts = [`${LABEL.managedBy}=pyro`, `${LABEL.owner}=${cfg.owner}`];
  if (id) parts.push(`${LABEL.id}=${id}`);
  return parts.join(",");
}

/** Whether an object read back belongs to this owner (and, when given, to this sandbox). */
export function ownedBy(cfg: K8sConfig, o: Pick<KubeObject, "metadata">, id?: string): boolean {
  const l = o.metadata.labels ?? {};
  return l[LABEL.owner] === cfg.owner && (id === undefined || l[LABEL.id] === id);
}

export function expirySeconds(expiresAt: string | undefined): number {
  return expiresAt ? Math.ceil(Date.parse(expiresAt) / 1000) : 0;
}

/**
 * PID 1 of every sandbox pod: idles, reaps, and exits once the expiry its own annotation
 * holds (seen through the downward API) is EXPIRY_GRACE_S past, so a TTL holds with no pyro
 * process alive (a Pod with restartPolicy Never then stays Succeeded, its processes gone;
 * a Sandbox also has `shutdownTime`). Builtins only but `date`, once per poll.
 */
export const POD_INIT = `trap 'exit 0' TERM INT
f=${META_DIR}/expires_at
while :; do
  t=0; [ -r "$f" ] && read -r t < "$f"
  case "$t" in ''|*[!0-9]*) t=0;; esac
  if [ "$t" -gt 0 ] && [ "$(date +%s)" -ge $((t + ${EXPIRY_GRACE_S})) ]; then
    echo "pyro: sandbox expired at $t" >&2; exit 0
  fi
  sleep 5 & wait $!
done`;

/**
 * Network off: a policy that selects the sandbox's pod and allows nothing either way. With
 * network: egress to everything but pyro's default-closed ranges and the caller's deny
 * list, plus the caller's allow list and DNS. Enforced only where the CNI enforces
 * NetworkPolicy (the bridge CNI of the test cluster does not; docs/kubernetes.md says so).
 */
export function networkPolicy(cfg: K8sConfig, id: string, spec: Pick<SandboxSpec, "network" | "net">) {
  refuseUnenforceable(spec);
  // biome-ignore lint/suspicious/noExplicitAny: NetworkPolicy rules are open JSON
  const egress: any[] = [];
  if (spec.network) {
    const net = spec.net;
    egress.push({
      to: [{ ipBlock: { cidr: "0.0.0.0/0", except: [...DEFAULT_DENY, ...(net?.deny_cidrs ?? [])] } }],
    });
    for (const cidr of net?.allow_cidrs ?? []) egress.push({ to: [{ ipBlock: { cidr } }] });
    egress.push({
      to: [{ namespaceSelector: {} }],
      ports: [
        { protocol: "UDP", port: 53 },
        { protocol: "TCP", port: 53 },
      ],
    });
  }
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name: netpolName(id), namespace: cfg.namespace, labels: labelsFor(cfg, id, "network") },
    spec: {
      podSelector: { matchLabels: { [LABEL.owner]: cfg.owner, [LABEL.id]: id } },
      policyTypes: ["Ingress", "Egress"],
      ingress: [],
      egress,
    },
  } satisfies KubeObject;
}

/** What a NetworkPolicy cannot say is refused, never silently dropped. */
function refuseUnenforceable(spec: Pick<SandboxSpec, "network" | "net">): void {
  const net: NetworkSpec | undefined = spec.net;
  if (!spec.network || !net) return;
  if (net.allow_hosts.length)
    throw new PyroError(
      "engine_unavailable",
      "the kubernetes engine cannot limit egress to host names: a NetworkPolicy knows addresses only",
      "use allow_cidr with the addresses, or the gVisor engine (PYRO_ENGINE=gvisor) for allow_host",
    );
  if (net.publish.length)
    throw new PyroError(
      "engine_unavailable",
      "the kubernetes engine cannot publish ports on this host",
      "reach the pod through a Service of your own, or use the gVisor engine (PYRO_ENGINE=gvisor)",
    );
}

export function workspacePvc(cfg: K8sConfig, id: string): KubeObject {
  return {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name: pvcName(id), namespace: cfg.namespace, labels: labelsFor(cfg, id, "workspace") },
    spec: {
      accessModes: ["ReadWriteOnce"],
      resources: { requests: { storage: cfg.workspaceSize } },
      ...(cfg.storageClass ? { storageClassName: cfg.storageClass } : {}),
    },
  };
}

export interface PodShape {
  /** The workspace's files live on its PVC (survives a stop); else an emptyDir. */
  pvc: boolean;
}

/** The pod spec every sandbox runs (inside a Sandbox's podTemplate, or a Pod of its own). */
export function podSpec(cfg: K8sConfig, spec: SandboxSpec, shape: PodShape) {
  const cpu = Math.max(1, spec.vcpuCount);
  return {
    ...(cfg.runtimeClass ? { runtimeClassName: cfg.runtimeClass } : {}),
    restartPolicy: "Never",
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    terminationGracePeriodSeconds: 1,
    hostname: "pyro",
    // No network: no resolver either (the deny-all policy would drop it where enforced).
    ...(spec.network ? {} : { dnsPolicy: "None", dnsConfig: { nameservers: ["127.0.0.1"] } }),
    containers: [
      {
        name: CONTAINER,
        image: imageFor(cfg, spec.environment),
        imagePullPolicy: cfg.imagePullPolicy,
        command: ["/bin/sh", "-c", POD_INIT],
        workingDir: "/workspace",
        env: [{ name: "HOME", value: "/root" }],
        resources: {
          // Requests stay small so a node takes as many sandboxes as pyro on one host would;
          // the limits are the sandbox's size.
          requests: { cpu: "10m", memory: "16Mi" },
          limits: { cpu: String(cpu), memory: `${spec.memMib}Mi` },
        },
        volumeMounts: [
          { name: "workspace", mountPath: "/workspace" },
          { name: "pyro-meta", mountPath: META_DIR, readOnly: true },
        ],
      },
    ],
    volumes: [
      shape.pvc
        ? { name: "workspace", persistentVolumeClaim: { claimName: pvcName(spec.id) } }
        : { name: "workspace", emptyDir: {} },
      {
        name: "pyro-meta",
        downwardAPI: {
          items: [
            { path: "expires_at", fieldRef: { fieldPath: `metadata.annotations['${EXPIRES_ANNOTATION}']` } },
          ],
        },
      },
    ],
  };
}

function podMeta(cfg: K8sConfig, spec: SandboxSpec, role: string) {
  return {
    labels: labelsFor(cfg, spec.id, role),
    annotations: { [EXPIRES_ANNOTATION]: String(expirySeconds(spec.expiresAt)) },
  };
}

export function plainPod(cfg: K8sConfig, spec: SandboxSpec, shape: PodShape): KubeObject {
  const role = spec.id.startsWith("ws_") ? "workspace" : "vm";
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: objectName(spec.id), namespace: cfg.namespace, ...podMeta(cfg, spec, role) },
    spec: podSpec(cfg, spec, shape),
  };
}

/** agent-sandbox's shutdownTime for an expiry: the same grace as the in-pod watchdog. */
export function shutdownTime(expiresAt: string | undefined): string | undefined {
  if (!expiresAt) return undefined;
  return new Date(Date.parse(expiresAt) + EXPIRY_GRACE_S * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/**
 * An agent-sandbox Sandbox: one pod from the template, stopped with `operatingMode:
 * Suspended` (the pod goes, the object and the PVC stay), ended at `shutdownTime`.
 */
export function sandboxObject(cfg: K8sConfig, spec: SandboxSpec, shape: PodShape): KubeObject {
  const role = spec.id.startsWith("ws_") ? "workspace" : "vm";
  const st = shutdownTime(spec.expiresAt);
  return {
    apiVersion: SANDBOX_API,
    kind: "Sandbox",
    metadata: { name: objectName(spec.id), namespace: cfg.namespace, labels: labelsFor(cfg, spec.id, role) },
    spec: {
      podTemplate: { metadata: podMeta(cfg, spec, role), spec: podSpec(cfg, spec, shape) },
      operatingMode: "Running",
      ...(st ? { shutdownTime: st, shutdownPolicy: "Delete" } : {}),
    },
  };
}

/** A claim on an agent-sandbox warm pool for a one-shot run; deleting it deletes its sandbox. */
export function sandboxClaim(
  cfg: K8sConfig,
  id: string,
  pool: string,
  expiresAt: string | undefined,
): KubeObject {
  const st = shutdownTime(expiresAt);
  return {
    apiVersion: EXT_API,
    kind: "SandboxClaim",
    metadata: { name: objectName(id), namespace: cfg.namespace, labels: labelsFor(cfg, id, "claim") },
    spec: {
      // No additionalPodMetadata: agent-sandbox refuses labels outside its allow-list
      // (InvalidMetadata for pyro.dev/*); the claim carries the labels and owns the sandbox.
      warmPoolRef: { name: pool },
      ...(st ? { lifecycle: { shutdownTime: st, shutdownPolicy: "Delete" } } : {}),
    },
  };
}

/**
 * A SandboxTemplate + SandboxWarmPool pair for one-shot runs (what an operator installs once;
 * the e2e tests and the bench make their own). The template's network policy denies egress.
 */
export function warmPoolObjects(
  cfg: K8sConfig,
  name: string,
  replicas: number,
  spec: Pick<SandboxSpec, "environment" | "vcpuCount" | "memMib">,
): KubeObject[] {
  const labels = { [LABEL.managedBy]: "pyro", [LABEL.owner]: cfg.owner, [LABEL.role]: "warm-pool" };
  // Not the owner label on the pool's pods: they are no sandbox of pyro's until claimed, and
  // the owner's label selector must not list them.
  const podLabels = { [LABEL.managedBy]: "pyro", [LABEL.role]: "warm-pool", "pyro.dev/pool": name };
  const fake: SandboxSpec = {
    id: "vm_0000000000000000",
    environment: spec.environment,
    rootfs: "",
    sandboxDir: "",
    vcpuCount: spec.vcpuCount,
    memMib: spec.memMib,
    network: false,
  };
  return [
    {
      apiVersion: EXT_API,
      kind: "SandboxTemplate",
      metadata: { name, namespace: cfg.namespace, labels },
      spec: {
        podTemplate: {
          metadata: { labels: podLabels },
          spec: podSpec(cfg, fake, { pvc: false }),
        },
        networkPolicy: { ingress: [], egress: [] },
      },
    },
    {
      apiVersion: EXT_API,
      kind: "SandboxWarmPool",
      metadata: { name, namespace: cfg.namespace, labels },
      spec: { replicas, sandboxTemplateRef: { name } },
    },
  ];
}
