import { createRequire } from "node:module";
import { delimiter } from "node:path";
import type { Readable, Writable } from "node:stream";
import { PyroError } from "../../core/errors.js";
import type { ExecStatus } from "./exec-wrap.js";
import type { KubeObject } from "./objects.js";

/**
 * The few calls the engine makes of the Kubernetes API, over `@kubernetes/client-node`. This
 * is the only file that loads it, lazily (most pyro commands never need a cluster, and the
 * module is large), and its types stay here: the package's public `.d.ts` must not pull
 * client-node's (and its newer @types/node) into TypeScript consumers, so the module is
 * loaded by a name tsc does not resolve and reached through this narrow interface.
 */
export interface KubeApi {
  /** Where the API server is (for messages). */
  readonly server: string;
  create(obj: KubeObject): Promise<KubeObject>;
  /** Undefined when it does not exist (404). */
  read(apiVersion: string, kind: string, namespace: string, name: string): Promise<KubeObject | undefined>;
  /** A JSON merge patch; undefined when the object does not exist. */
  patch(obj: KubeObject): Promise<KubeObject | undefined>;
  /** False when it was not there. */
  remove(apiVersion: string, kind: string, namespace: string, name: string): Promise<boolean>;
  list(apiVersion: string, kind: string, namespace: string, labelSelector: string): Promise<KubeObject[]>;
  /**
   * Starts a command in a pod's container over the API server's WebSocket exec; the status
   * (exit code) arrives through onStatus, and `closed` settles when the stream ends.
   */
  exec(
    namespace: string,
    pod: string,
    container: string,
    argv: string[],
    io: { stdout: Writable; stderr: Writable; stdin: Readable | null; onStatus: (s: ExecStatus) => void },
  ): Promise<ExecStream>;
}

export interface ExecStream {
  close(): void;
  readonly closed: Promise<void>;
}

/** The HTTP status of a failed API call (client-node's ApiException), if it has one. */
export function apiStatus(e: unknown): number | undefined {
  const code = (e as { code?: unknown })?.code;
  return typeof code === "number" ? code : undefined;
}

/** A short reason from an API error (its Status message when the body is one). */
export function apiMessage(e: unknown): string {
  const body = (e as { body?: unknown })?.body;
  if (typeof body === "string") {
    try {
      const parsed = JSON.parse(body) as { message?: string };
      if (parsed.message) return parsed.message;
    } catch {
      return body.slice(0, 300);
    }
  }
  if (body && typeof body === "object" && typeof (body as { message?: unknown }).message === "string")
    return (body as { message: string }).message;
  return e instanceof Error ? e.message.split("\n")[0]!.slice(0, 300) : String(e);
}

// biome-ignore lint/suspicious/noExplicitAny: client-node is reached untyped on purpose (above)
type Any = any;

const MODULE = "@kubernetes/client-node";
let loaded: Promise<Any> | undefined;

/** client-node itself, loaded on first use (also for doctor's checks, settings.ts). */
export async function clientNode(): Promise<Any> {
  // A name in a variable: tsc and the CLI bundler leave it to Node to resolve at run time.
  // require (of an ES module: Node >= 20.19) rather than import(): the CLI's bundles are
  // compiled through vm.Script, where import() works only with an experimental loader that
  // prints a warning.
  const name = MODULE;
  loaded ??= (async () => {
    try {
      return createRequire(import.meta.url)(name);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ERR_REQUIRE_ESM") throw e;
      return import(name);
    }
  })().catch((e: unknown) => {
    loaded = undefined;
    throw new PyroError(
      "engine_unavailable",
      `the kubernetes engine needs ${MODULE}, which could not be loaded: ${e instanceof Error ? e.message : String(e)}`,
      "reinstall pyro with its dependencies (npm install)",
    );
  });
  return loaded;
}

/**
 * The kubeconfig file KUBECONFIG names (its first non-empty entry), or undefined for
 * client-node's default (~/.kube/config, then a pod's service account). The engine and
 * doctor (settings.ts) read the same one.
 */
export function kubeconfigFile(env: NodeJS.ProcessEnv): string | undefined {
  return env.KUBECONFIG?.split(delimiter).find((f) => f !== "");
}

const clients = new Map<string, Promise<KubeApi>>();

/** One client per kubeconfig (KUBECONFIG or in-cluster), made on first use. */
export function kubeApi(env: NodeJS.ProcessEnv): Promise<KubeApi> {
  const key = env.KUBECONFIG ?? "";
  let c = clients.get(key);
  if (!c) {
    c = makeApi(env).catch((e: unknown) => {
      clients.delete(key);
      throw e;
    });
    clients.set(key, c);
  }
  return c;
}

async function makeApi(env: NodeJS.ProcessEnv): Promise<KubeApi> {
  const k8s = await clientNode();
  const kc = new k8s.KubeConfig();
  try {
    // client-node reads process.env.KUBECONFIG itself; a caller's env (tests) wins.
    const file = kubeconfigFile(env);
    if (file) kc.loadFromFile(file);
    else kc.loadFromDefault();
  } catch (e) {
    throw new PyroError(
      "engine_unavailable",
      `no usable Kubernetes configuration: ${e instanceof Error ? e.message : String(e)}`,
      "set KUBECONFIG to a kubeconfig file, or run pyro in a pod with a service account",
    );
  }
  const server: string = kc.getCurrentCluster()?.server ?? "(no cluster)";
  const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
  const execApi = new k8s.Exec(kc);
  const notFound = async <T>(p: Promise<T>): Promise<T | undefined> => {
    try {
      return await p;
    } catch (e) {
      if (apiStatus(e) === 404) return undefined;
      throw e;
    }
  };
  return {
    server,
    create: (obj) => objects.create(obj),
    read: (apiVersion, kind, namespace, name) =>
      notFound(objects.read({ apiVersion, kind, metadata: { name, namespace } })),
    patch: (obj) =>
      notFound(objects.patch(obj, undefined, undefined, "pyro", undefined, k8s.PatchStrategy.MergePatch)),
    remove: async (apiVersion, kind, namespace, name) =>
      (await notFound(
        objects.delete(
          { apiVersion, kind, metadata: { name, namespace } },
          undefined,
          undefined,
          0,
          undefined,
          "Background",
        ),
      )) !== undefined,
    list: async (apiVersion, kind, namespace, labelSelector) => {
      const r = await objects.list(
        apiVersion,
        kind,
        namespace,
        undefined,
        undefined,
        undefined,
        undefined,
        labelSelector,
      );
      // List items carry no apiVersion/kind of their own.
      return (r.items as KubeObject[]).map((o) => ({ ...o, apiVersion, kind }));
    },
    exec: async (namespace, pod, container, argv, io) => {
      const ws = await execApi.exec(
        namespace,
        pod,
        container,
        argv,
        io.stdout,
        io.stderr,
        io.stdin,
        false,
        io.onStatus,
      );
      const closed = new Promise<void>((resolve) => {
        if (ws.readyState === ws.CLOSED) resolve();
        else ws.on("close", () => resolve());
      });
      return { close: () => ws.close(), closed };
    },
  };
}
