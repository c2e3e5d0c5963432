import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { PyroError } from "../../core/errors.js";

/**
 * How the kubernetes engine reaches its cluster and what it makes there, read once from the
 * environment (no file of its own: a pod running `pyro mcp serve` gets these from its
 * manifest). Pure: tested without a cluster.
 */
export interface K8sConfig {
  /** The one namespace every object of pyro's lives in (PYRO_K8S_NAMESPACE, default `pyro`). */
  namespace: string;
  /** Image per environment name; `*` is the default (PYRO_K8S_IMAGE, PYRO_K8S_IMAGES). */
  images: Record<string, string>;
  /** The pods' RuntimeClass (PYRO_K8S_RUNTIME_CLASS, default `gvisor`; empty: none). */
  runtimeClass: string | undefined;
  /** `auto`: agent-sandbox `Sandbox`es when its CRDs answer, else plain Pods (PYRO_K8S_MODE). */
  mode: "auto" | "sandbox" | "pod";
  /** A SandboxWarmPool one-shot runs claim from (PYRO_K8S_WARM_POOL); none: cold starts. */
  warmPool: string | undefined;
  /** The workspace volume: a PVC of this class (PYRO_K8S_STORAGE_CLASS; unset: the default class). */
  storageClass: string | undefined;
  /** Its size (PYRO_K8S_WORKSPACE_SIZE, default 1Gi). */
  workspaceSize: string;
  /** `emptyDir` keeps workspaces off PVCs (files do not survive a stop) (PYRO_K8S_WORKSPACE_VOLUME). */
  workspaceVolume: "pvc" | "emptyDir";
  imagePullPolicy: "Always" | "IfNotPresent" | "Never";
  /** Who made an object: a hash of the state dir unless PYRO_K8S_OWNER names it. */
  owner: string;
  /** The tenant label (PYRO_K8S_TENANT; default the owner). */
  tenant: string;
  /** How long a pod may take to be ready before create fails (PYRO_K8S_READY_TIMEOUT_S, default 120). */
  readyTimeoutMs: number;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function bad(name: string, value: string, hint: string): PyroError {
  return new PyroError("invalid_argument", `${name}=${JSON.stringify(value)} is not valid`, hint);
}

export function ownerOf(stateDir: string): string {
  return createHash("sha256").update(stateDir).digest("hex").slice(0, 16);
}

export function k8sConfig(env: NodeJS.ProcessEnv, stateDir: string): K8sConfig {
  const namespace = env.PYRO_K8S_NAMESPACE || "pyro";
  if (namespace.length > 63 || !DNS_LABEL.test(namespace))
    throw bad("PYRO_K8S_NAMESPACE", namespace, "name a namespace (lower-case letters, digits and '-')");
  const images: Record<string, string> = { "*": env.PYRO_K8S_IMAGE || "debian:12" };
  if (env.PYRO_K8S_IMAGES) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(env.PYRO_K8S_IMAGES);
    } catch {
      parsed = undefined;
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed))
      throw bad("PYRO_K8S_IMAGES", env.PYRO_K8S_IMAGES, 'give a JSON object {"environment": "image", ...}');
    for (const [k, v] of Object.entries(parsed)) {
      if (typeof v !== "string" || !v)
        throw bad("PYRO_K8S_IMAGES", env.PYRO_K8S_IMAGES, `the image for ${k} must be a non-empty string`);
      images[k] = v;
    }
  }
  const mode = (env.PYRO_K8S_MODE || "auto") as K8sConfig["mode"];
  if (!["auto", "sandbox", "pod"].includes(mode))
    throw bad("PYRO_K8S_MODE", mode, "use auto, sandbox or pod");
  const volume = (env.PYRO_K8S_WORKSPACE_VOLUME || "pvc") as K8sConfig["workspaceVolume"];
  if (!["pvc", "emptyDir"].includes(volume))
    throw bad("PYRO_K8S_WORKSPACE_VOLUME", volume, "use pvc or emptyDir");
  const pull = (env.PYRO_K8S_PULL_POLICY || "IfNotPresent") as K8sConfig["imagePullPolicy"];
  if (!["Always", "IfNotPresent", "Never"].includes(pull))
    throw bad("PYRO_K8S_PULL_POLICY", pull, "use Always, IfNotPresent or Never");
  const owner = env.PYRO_K8S_OWNER || ownerOf(stateDir);
  const tenant = env.PYRO_K8S_TENANT || owner;
  for (const [n, v] of [
    ["PYRO_K8S_OWNER", owner],
    ["PYRO_K8S_TENANT", tenant],
  ] as const)
    if (v.length > 63 || !LABEL_VALUE.test(v))
      throw bad(n, v, "use at most 63 letters, digits, '-', '_' or '.'");
  const readyS = Number(env.PYRO_K8S_READY_TIMEOUT_S || 120);
  if (!Number.isFinite(readyS) || readyS <= 0)
    throw bad("PYRO_K8S_READY_TIMEOUT_S", String(env.PYRO_K8S_READY_TIMEOUT_S), "give a number of seconds");
  const rc = env.PYRO_K8S_RUNTIME_CLASS ?? "gvisor";
  return {
    namespace,
    images,
    runtimeClass: rc === "" ? undefined : rc,
    mode,
    warmPool: env.PYRO_K8S_WARM_POOL || undefined,
    storageClass: env.PYRO_K8S_STORAGE_CLASS || undefined,
    workspaceSize: env.PYRO_K8S_WORKSPACE_SIZE || "1Gi",
    workspaceVolume: volume,
    imagePullPolicy: pull,
    owner,
    tenant,
    readyTimeoutMs: readyS * 1000,
  };
}

export function imageFor(cfg: K8sConfig, environment: string): string {
  return cfg.images[environment] ?? cfg.images["*"]!;
}

/**
 * Whether a cluster is configured at all (cheap, no network): a kubeconfig file, or the
 * service-account token of a pod. The per-call engine check; `pyro doctor` asks the API.
 */
export function clusterConfigured(env: NodeJS.ProcessEnv): boolean {
  const files = env.KUBECONFIG
    ? env.KUBECONFIG.split(":").filter(Boolean)
    : [join(env.HOME || homedir(), ".kube", "config")];
  if (files.some((f) => existsSync(f))) return true;
  return !!env.KUBERNETES_SERVICE_HOST && existsSync("/var/run/secrets/kubernetes.io/serviceaccount/token");
}
