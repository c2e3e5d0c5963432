import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import { PyroError } from "../../core/errors.js";

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

const MODULE = "@kubernetes/client-node";
let loaded: Any;

/**
 * The client library, on first use. A name in a variable, so neither tsc (its types stay out
 * of pyro's .d.ts) nor the CLI bundler touch it; `require` of the ES module (Node >= 20.19)
 * rather than `import()`, which inside the CLI's vm-compiled bundles needs an experimental
 * loader that prints a warning.
 */
export async function loadClient(): Promise<Any> {
  const name = MODULE;
  if (loaded) return loaded;
  try {
    loaded = createRequire(import.meta.url)(name);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ERR_REQUIRE_ESM")
      throw new PyroError(
        "engine_unavailable",
        `the kubernetes engine needs ${MODULE}, which could not be loaded: ${(e as Error).message}`,
        "reinstall pyro with its dependencies (npm install)",
      );
    loaded = await import(name);
  }
  return loaded;
}

export async function kubernetesSettings(env: NodeJS.ProcessEnv = process.env): Promise<KubernetesSettings> {
  const k8s = await loadClient();
  const kc = new k8s.KubeConfig();
  const file = env.KUBECONFIG?.split(delimiter).find((f) => f !== "");
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
  const mode = env.PYRO_K8S_MODE || "auto";
  if (mode !== "auto" && mode !== "sandbox" && mode !== "pod")
    throw new PyroError(
      "invalid_argument",
      `PYRO_K8S_MODE=${JSON.stringify(mode)} is not valid`,
      "use auto, sandbox or pod",
    );
  const rc = env.PYRO_K8S_RUNTIME_CLASS ?? DEFAULT_RUNTIME_CLASS;
  return {
    kc,
    source,
    context: source === "in-cluster" ? null : kc.getCurrentContext() || null,
    server: kc.getCurrentCluster()?.server ?? null,
    namespace: env.PYRO_K8S_NAMESPACE || DEFAULT_NAMESPACE,
    runtimeClass: rc === "" ? null : rc,
    mode,
    warmPool: env.PYRO_K8S_WARM_POOL || null,
  };
}
