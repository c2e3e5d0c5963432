import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { PyroError } from "../../core/errors.js";
import { clientNode, kubeconfigFile } from "./client.js";
import { k8sConfig } from "./config.js";

/**
 * Where `pyro doctor` looks for the kubernetes engine's cluster: the same choices the engine
 * makes (its config.ts and client.ts), so the doctor checks what the engine will use:
 * - `KUBECONFIG` (its first file), else client-node's default: `~/.kube/config`, then the
 *   in-cluster config of a pod (the mounted service-account token, KubeConfig.loadFromCluster);
 * - `PYRO_K8S_NAMESPACE` (default `pyro`);
 * - `PYRO_K8S_RUNTIME_CLASS` (default `gvisor`; empty: none);
 * - `PYRO_K8S_MODE` (`auto`: Sandboxes when agent-sandbox is served, else Pods; `sandbox`; `pod`);
 * - `PYRO_K8S_WARM_POOL`: the SandboxWarmPool one-shot runs claim from (none: cold starts).
 */
export const DEFAULT_NAMESPACE = "pyro";
export const DEFAULT_RUNTIME_CLASS = "gvisor";
const SA_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token";

// biome-ignore lint/suspicious/noExplicitAny: client-node is reached untyped, as the engine does (client.ts)
export type Any = any;

export interface KubernetesSettings {
  /** client-node's KubeConfig. */
  kc: Any;
  /** What the config came from: a file path, or `in-cluster`. */
  source: string;
  context: string | null;
  server: string | null;
  namespace: string;
  runtimeClass: string | null;
  mode: "auto" | "sandbox" | "pod";
  warmPool: string | null;
}

/** client-node, loaded once for the engine and doctor alike (client.ts). */
export const loadClient = clientNode;

export async function kubernetesSettings(env: NodeJS.ProcessEnv = process.env): Promise<KubernetesSettings> {
  const k8s = await loadClient();
  const kc = new k8s.KubeConfig();
  const file = kubeconfigFile(env);
  const home = join(env.HOME || homedir(), ".kube", "config");
  const inCluster = !!env.KUBERNETES_SERVICE_HOST && existsSync(SA_TOKEN);
  const source = file ?? (existsSync(home) ? home : inCluster ? "in-cluster" : undefined);
  if (!source)
    throw new PyroError(
      "engine_unavailable",
      "no Kubernetes config: KUBECONFIG is unset, ~/.kube/config does not exist and pyro is not in a pod",
      "set KUBECONFIG to your cluster's kubeconfig (or run pyro in the cluster with the manifests of deploy/kubernetes/)",
    );
  try {
    if (file) kc.loadFromFile(file);
    else kc.loadFromDefault();
  } catch (e) {
    throw new PyroError(
      "engine_unavailable",
      `cannot load the Kubernetes config from ${source}: ${(e as Error).message}`,
      "point KUBECONFIG at a readable kubeconfig file",
    );
  }
  // The engine's own reading of the settings (config.ts): doctor checks what the engine uses.
  const cfg = k8sConfig(env, "");
  return {
    kc,
    source,
    context: source === "in-cluster" ? null : kc.getCurrentContext() || null,
    server: kc.getCurrentCluster()?.server ?? null,
    namespace: cfg.namespace,
    runtimeClass: cfg.runtimeClass ?? null,
    mode: cfg.mode,
    warmPool: cfg.warmPool ?? null,
  };
}
