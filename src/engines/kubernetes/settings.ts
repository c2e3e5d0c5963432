import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import type { KubeConfig } from "@kubernetes/client-node";
import { PyroError } from "../../core/errors.js";
import { noted } from "../../util/best-effort.js";

/**
 * Where the kubernetes engine points, from the environment:
 * - `KUBECONFIG` (the first file of a list), else in-cluster config when pyro runs in a pod
 *   (`KUBERNETES_SERVICE_HOST` and the mounted service-account token), else `~/.kube/config`;
 * - `PYRO_K8S_NAMESPACE`, else the kubeconfig context's namespace, else (in a pod) the pod's
 *   own namespace, else `default`;
 * - `PYRO_K8S_RUNTIME_CLASS` (default `gvisor`): the RuntimeClass every sandbox pod names.
 */
export const DEFAULT_RUNTIME_CLASS = "gvisor";
const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

export interface KubernetesSettings {
  kc: KubeConfig;
  /** What the config came from: a file path, or `in-cluster`. */
  source: string;
  context: string | null;
  server: string | null;
  namespace: string;
  runtimeClass: string;
}

/** The client library, loaded on first use: it is large and only this engine needs it. */
export async function loadClient(): Promise<typeof import("@kubernetes/client-node")> {
  return import("@kubernetes/client-node");
}

export async function kubernetesSettings(env: NodeJS.ProcessEnv = process.env): Promise<KubernetesSettings> {
  const k8s = await loadClient();
  const kc = new k8s.KubeConfig();
  const file = env.KUBECONFIG?.split(delimiter).find((f) => f !== "");
  const home = join(env.HOME ?? homedir(), ".kube", "config");
  let source: string;
  try {
    if (file) {
      source = file;
      kc.loadFromFile(file);
    } else if (env.KUBERNETES_SERVICE_HOST && existsSync(join(SA_DIR, "token"))) {
      source = "in-cluster";
      kc.loadFromCluster();
    } else if (existsSync(home)) {
      source = home;
      kc.loadFromFile(home);
    } else {
      throw new PyroError(
        "engine_unavailable",
        "no Kubernetes config: KUBECONFIG is unset, pyro is not in a pod and ~/.kube/config does not exist",
        "set KUBECONFIG to your cluster's kubeconfig (or run pyro in the cluster with the manifests of deploy/kubernetes/)",
      );
    }
  } catch (e) {
    if (e instanceof PyroError) throw e;
    throw new PyroError(
      "engine_unavailable",
      `cannot load the Kubernetes config from ${file ?? "the cluster"}: ${(e as Error).message}`,
      "point KUBECONFIG at a readable kubeconfig file",
    );
  }
  const ctx = kc.getContextObject(kc.getCurrentContext());
  const namespace =
    nonEmpty(env.PYRO_K8S_NAMESPACE) ?? nonEmpty(ctx?.namespace) ?? podNamespace(source) ?? "default";
  return {
    kc,
    source,
    context: source === "in-cluster" ? null : kc.getCurrentContext() || null,
    server: kc.getCurrentCluster()?.server ?? null,
    namespace,
    runtimeClass: nonEmpty(env.PYRO_K8S_RUNTIME_CLASS) ?? DEFAULT_RUNTIME_CLASS,
  };
}

function nonEmpty(s: string | undefined): string | undefined {
  return s && s.trim() !== "" ? s.trim() : undefined;
}

function podNamespace(source: string): string | undefined {
  if (source !== "in-cluster") return undefined;
  try {
    return nonEmpty(readFileSync(join(SA_DIR, "namespace"), "utf8"));
  } catch (e) {
    noted("no service-account namespace file in this pod: the namespace falls back to default", e);
    return undefined;
  }
}
