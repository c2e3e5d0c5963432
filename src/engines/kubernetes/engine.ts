import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable, Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { c as tarCreate } from "tar";
import { PyroError, toPyroError } from "../../core/errors.js";
import type { PyroPaths } from "../../core/paths.js";
import { ignore } from "../../util/best-effort.js";
import { CappedBuffer, capturedOutput, DEFAULT_MAX_OUTPUT_BYTES } from "../../util/proc.js";
import type {
  Engine,
  EngineTraits,
  ExecOutcome,
  ExecRequest,
  OneShotOutcome,
  ProbeOptions,
  ProbeResult,
  SandboxHandle,
  SandboxInspect,
  SandboxSpec,
} from "../types.js";
import { NO_TRAITS } from "../types.js";
import { apiMessage, apiStatus, type ExecStream, type KubeApi, kubeApi } from "./client.js";
import { type K8sConfig, k8sConfig } from "./config.js";
import { type ExecStatus, exitFromStatus, killArgv, wrapArgv } from "./exec-wrap.js";
import { type K8sHandleData, k8sData, k8sDataProblem } from "./handle.js";
import {
  CONTAINER,
  EXPIRES_ANNOTATION,
  EXT_API,
  expirySeconds,
  KINDS,
  type KubeObject,
  networkPolicy,
  objectName,
  ownedBy,
  plainPod,
  SANDBOX_API,
  sandboxClaim,
  sandboxObject,
  selector,
  shutdownTime,
  workspacePvc,
} from "./objects.js";

/** The engine's own note in the sandbox directory, written before any object is made. */
const INTENT_FILE = "k8s-intent.json";
/**
 * Written by `halt`: the sandbox is stopped on purpose and its volume (and Sandbox object) are
 * the workspace's files, so a recovery's `removeOrphan` ends only what runs. `destroy`
 * removes everything whatever the note says.
 */
const HALTED_FILE = "k8s-halted";
/** Claim reasons agent-sandbox will not recover from: fail at once instead of waiting. */
const TERMINAL_CLAIM_REASONS = new Set([
  "InvalidMetadata",
  "EnvVarsInjectionRejected",
  "VolumeClaimTemplatesError",
  "ClaimExpired",
  "SandboxExpired",
]);

/**
 * Sandboxes as pods of a Kubernetes cluster (docs/kubernetes.md), reached only through the
 * API server with @kubernetes/client-node: agent-sandbox `Sandbox`es when its CRDs are served
 * (stop = `operatingMode: Suspended`, TTL = `shutdownTime`), plain Pods with the RuntimeClass
 * otherwise (stop = delete the pod, keep the PVC). Like QEMU the guest has its own
 * /workspace (a PVC): seeds, sync, file tools, diff and export travel as tar and scripts over
 * exec. Every object carries the owner's labels and is made after the engine's intent note,
 * so a kill -9 at any moment leaves nothing the reaper cannot find by label.
 */
export class KubernetesEngine implements Engine {
  readonly name = "kubernetes" as const;
  readonly executionMode = "kubernetes" as const;
  readonly traits: EngineTraits = { ...NO_TRAITS, isolated: true };
  private cfgMemo: K8sConfig | undefined;
  private modeMemo: Promise<"sandbox" | "pod"> | undefined;

  constructor(
    private readonly paths: Pick<PyroPaths, "stateDir">,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  get config(): K8sConfig {
    this.cfgMemo ??= k8sConfig(this.env, this.paths.stateDir);
    return this.cfgMemo;
  }

  api(): Promise<KubeApi> {
    return kubeApi(this.env);
  }

  /** Sandbox when agent-sandbox's CRDs answer (mode auto), else Pod; asked once per process. */
  resolveMode(): Promise<"sandbox" | "pod"> {
    const cfg = this.config;
    if (cfg.mode !== "auto") return Promise.resolve(cfg.mode);
    this.modeMemo ??= (async () => {
      const api = await this.api();
      try {
        await api.list(SANDBOX_API, "Sandbox", cfg.namespace, selector(cfg));
        return "sandbox" as const;
      } catch (e) {
        // Only "no such API" means no agent-sandbox; anything else (an unreachable server) is
        // not remembered as an answer.
        if (apiStatus(e) === 404 || /Unrecognized API version/.test(String(e))) return "pod" as const;
        throw this.apiError("listing agent-sandbox Sandboxes", e);
      }
    })().catch((e: unknown) => {
      this.modeMemo = undefined;
      throw e;
    });
    return this.modeMemo;
  }

  async probe(_opts: ProbeOptions): Promise<ProbeResult> {
    const caps = { vm_boot: false, guest_exec: false, guest_network: false };
    const t0 = performance.now();
    try {
      const cfg = this.config;
      const api = await this.api();
      await api.list("v1", "Pod", cfg.namespace, selector(cfg));
      const mode = await this.resolveMode();
      const rc = cfg.runtimeClass
        ? await api
            .read("node.k8s.io/v1", "RuntimeClass", "", cfg.runtimeClass)
            .then((o) => (o ? "present" : "missing"))
            .catch(() => "not readable")
        : "none";
      return {
        engine: "kubernetes",
        available: rc !== "missing",
        detail:
          rc === "missing"
            ? `RuntimeClass ${cfg.runtimeClass} does not exist on ${api.server}`
            : `cluster ${api.server}, namespace ${cfg.namespace}, ${mode === "sandbox" ? "agent-sandbox Sandboxes" : "plain Pods"}, RuntimeClass ${cfg.runtimeClass ?? "none"} (${rc})`,
        probeMs: Math.round(performance.now() - t0),
        capabilities: { vm_boot: true, guest_exec: true, guest_network: true },
        extra: { namespace: cfg.namespace, mode, runtime_class: cfg.runtimeClass ?? null, owner: cfg.owner },
      };
    } catch (e) {
      return { engine: "kubernetes", available: false, detail: toPyroError(e).message, capabilities: caps };
    }
  }

  private apiError(what: string, e: unknown): PyroError {
    const status = apiStatus(e);
    if (status === 403)
      return new PyroError(
        "engine_unavailable",
        `${what} was refused by the cluster (403): ${apiMessage(e)}`,
        `grant pyro's service account the Role in deploy/kubernetes/ in namespace ${this.config.namespace}`,
      );
    if (e instanceof PyroError) return e;
    const msg = apiMessage(e);
    if (/ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|ECONNRESET|certificate/.test(msg))
      return new PyroError(
        "engine_unavailable",
        `${what} failed: the Kubernetes API server cannot be reached (${msg})`,
        "check KUBECONFIG and that the cluster is up (`pyro doctor` checks it)",
        { cause: e },
      );
    return new PyroError("engine_failure", `${what} failed: ${msg}`, undefined, { cause: e });
  }

  async create(spec: SandboxSpec): Promise<SandboxHandle> {
    const cfg = this.config;
    const api = await this.api();
    const mode = await this.resolveMode();
    const name = objectName(spec.id);
    const pvc = spec.workspaceDir !== undefined && cfg.workspaceVolume === "pvc";
    const data: K8sHandleData = {
      namespace: cfg.namespace,
      kind: mode === "sandbox" ? "Sandbox" : "Pod",
      name,
      pod: name,
      owner: cfg.owner,
      pvc,
    };
    const handle: SandboxHandle = {
      engine: "kubernetes",
      id: spec.id,
      sandboxDir: spec.sandboxDir,
      ...(spec.workspaceDir ? { workspaceDir: spec.workspaceDir } : {}),
      data,
    };
    if (spec.restart) {
      await this.restart(api, handle, data, spec);
      await rm(join(spec.sandboxDir, HALTED_FILE), { force: true });
      return handle;
    }
    // Intent first: what the objects will be called and whose they are, before any exists.
    await mkdir(spec.sandboxDir, { recursive: true });
    await writeFile(join(spec.sandboxDir, INTENT_FILE), `${JSON.stringify(data)}\n`);
    try {
      await this.make(api, networkPolicy(cfg, spec.id, spec), "the sandbox's NetworkPolicy");
      if (pvc) await this.make(api, workspacePvc(cfg, spec.id), "the workspace's PersistentVolumeClaim");
      await this.make(
        api,
        mode === "sandbox" ? sandboxObject(cfg, spec, { pvc }) : plainPod(cfg, spec, { pvc }),
        `the sandbox's ${data.kind}`,
      );
      await this.waitReady(api, data, spec.id);
      if (spec.workspaceDir && (await readdir(spec.workspaceDir).catch(() => [])).length > 0) {
        // Not `portable`: that resets modes (a 0444 file would show as changed in a diff).
        const tar = tarCreate({ cwd: spec.workspaceDir, portable: false, follow: false }, [
          ".",
        ]) as unknown as Readable;
        await this.putArchive(handle, tar, "/workspace");
      }
      return handle;
    } catch (e) {
      await this.removeOrphan(spec.id, spec.sandboxDir).catch(
        ignore("cleaning up a failed create: the reaper finds what is left by label"),
      );
      throw toPyroError(e);
    }
  }

  private async make(api: KubeApi, obj: KubeObject, what: string): Promise<void> {
    try {
      await api.create(obj);
    } catch (e) {
      if (apiStatus(e) === 409)
        throw new PyroError(
          "engine_failure",
          `${what} ${obj.metadata.name} already exists in namespace ${obj.metadata.namespace}`,
          "another pyro made an object of that name; pyro never adopts one",
        );
      throw this.apiError(`creating ${what}`, e);
    }
  }

  /** Start again on the PVC a stop kept. */
  private async restart(
    api: KubeApi,
    handle: SandboxHandle,
    d: K8sHandleData,
    spec: SandboxSpec,
  ): Promise<void> {
    const cfg = this.config;
    const found = await this.owned(
      api,
      d,
      d.kind === "Sandbox" ? SANDBOX_API : "v1",
      d.kind === "Sandbox" ? "Sandbox" : "PersistentVolumeClaim",
      d.kind === "Sandbox" ? d.name : `${d.name}-ws`,
    );
    if (!found && (d.kind === "Sandbox" || d.pvc))
      throw new PyroError("sandbox_dead", `the sandbox ${d.name} of ${handle.id} is gone from the cluster`);
    if (d.kind === "Sandbox") {
      const st = shutdownTime(spec.expiresAt);
      await api.patch({
        apiVersion: SANDBOX_API,
        kind: "Sandbox",
        metadata: { name: d.name, namespace: d.namespace },
        spec: {
          operatingMode: "Running",
          podTemplate: {
            metadata: { annotations: { [EXPIRES_ANNOTATION]: String(expirySeconds(spec.expiresAt)) } },
          },
          ...(st ? { shutdownTime: st } : {}),
        },
      });
    } else {
      await this.waitGone(api, d);
      await this.make(api, plainPod(cfg, spec, { pvc: d.pvc }), "the sandbox's Pod");
    }
    await this.waitReady(api, d, handle.id);
  }

  /** An object of this sandbox, if it exists and is ours; one of another owner is refused. */
  private async owned(api: KubeApi, d: K8sHandleData, apiVersion: string, kind: string, name: string) {
    const o = await api.read(apiVersion, kind, d.namespace, name);
    if (o && o.metadata.labels?.["pyro.dev/owner"] !== d.owner)
      throw new PyroError(
        "invalid_state",
        `${kind} ${name} in ${d.namespace} is not this pyro's`,
        "it is left alone",
      );
    return o;
  }

  /** Polls (25 ms rising to 250 ms) until the pod's container runs; fails on a terminal pod state. */
  private async waitReady(api: KubeApi, d: K8sHandleData, id: string): Promise<void> {
    const deadline = Date.now() + this.config.readyTimeoutMs;
    let wait = 25;
    let last = "not created yet";
    while (Date.now() < deadline) {
      const pod = await api.read("v1", "Pod", d.namespace, d.pod);
      if (pod && !pod.metadata.deletionTimestamp) {
        const cs = (pod.status?.containerStatuses ?? []).find((c: { name: string }) => c.name === CONTAINER);
        if (pod.status?.phase === "Running" && cs?.state?.running) return;
        if (pod.status?.phase === "Failed" || pod.status?.phase === "Succeeded")
          throw new PyroError(
            "engine_failure",
            `the pod of ${id} ended before it was ready: ${podReason(pod)}`,
          );
        const waiting = cs?.state?.waiting;
        if (
          waiting &&
          /ErrImagePull|ImagePullBackOff|InvalidImageName|CreateContainerConfigError/.test(
            waiting.reason ?? "",
          )
        )
          throw new PyroError(
            "engine_failure",
            `the pod of ${id} cannot start: ${waiting.reason}: ${waiting.message ?? ""}`.trim(),
            "check PYRO_K8S_IMAGE: the image must be on the node or pullable",
          );
        last = podReason(pod);
      }
      await sleep(wait);
      wait = Math.min(250, wait * 2);
    }
    throw new PyroError(
      "timeout",
      `the pod of ${id} was not running after ${Math.round(this.config.readyTimeoutMs / 1000)} s (${last})`,
      "check the cluster's nodes and the RuntimeClass; PYRO_K8S_READY_TIMEOUT_S sets the wait",
    );
  }

  private async waitGone(api: KubeApi, d: K8sHandleData, ms = 60_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (!(await api.read("v1", "Pod", d.namespace, d.pod))) return;
      await sleep(200);
    }
    throw new PyroError("timeout", `pod ${d.pod} was still there after ${ms / 1000} s`);
  }

  async exec(handle: SandboxHandle, req: ExecRequest): Promise<ExecOutcome> {
    return this.execIn(handle, req, req.stdin ? Readable.from([req.stdin]) : null);
  }

  /** One command over the API server's exec, wrapped (exec-wrap.ts) for cwd, env, deadline and kill. */
  private async execIn(
    handle: SandboxHandle,
    req: ExecRequest,
    stdin: Readable | null,
  ): Promise<ExecOutcome> {
    const d = k8sData(handle);
    const api = await this.api();
    const t0 = performance.now();
    const max = req.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    const out = new CappedBuffer(max);
    const err = new CappedBuffer(max);
    const sink = (buf: CappedBuffer, cb?: (c: Buffer) => void) =>
      new Writable({
        write(chunk: Buffer, _enc, done) {
          buf.push(chunk);
          cb?.(chunk);
          done();
        },
      });
    const tag = randomBytes(8).toString("hex");
    let status: ExecStatus | undefined;
    if (req.signal?.aborted) throw new PyroError("cancelled", "operation cancelled");
    let stream: ExecStream;
    try {
      stream = await api.exec(d.namespace, d.pod, CONTAINER, wrapArgv(req, tag), {
        stdout: sink(out, req.onStdout),
        stderr: sink(err, req.onStderr),
        stdin,
        onStatus: (s) => {
          status = s;
        },
      });
    } catch (e) {
      await this.throwIfDead(handle);
      throw this.apiError(`exec in pod ${d.pod}`, e);
    }
    let timedOut = false;
    let aborted = false;
    let killing: Promise<void> | undefined;
    const kill = () => {
      // The process outlives a closed stream: kill its group first, then close.
      killing ??= this.killTagged(api, d, tag).finally(() => stream.close());
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, req.timeoutMs);
    const onAbort = () => {
      aborted = true;
      kill();
    };
    req.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await stream.closed;
    } finally {
      clearTimeout(timer);
      req.signal?.removeEventListener("abort", onAbort);
    }
    if (killing) await killing;
    if (aborted) throw new PyroError("cancelled", "operation cancelled");
    const execMs = Math.round(performance.now() - t0);
    const captured = capturedOutput(out, err);
    if (timedOut) return { exitCode: 124, ...captured, timedOut: true, execMs };
    if (!status) {
      await this.throwIfDead(handle);
      throw new PyroError("engine_failure", `the exec stream to pod ${d.pod} ended without an exit status`);
    }
    const r = exitFromStatus(status);
    if ("error" in r) {
      await this.throwIfDead(handle);
      throw new PyroError("engine_failure", `exec in pod ${d.pod} failed: ${r.error}`);
    }
    return { exitCode: r.exitCode, ...captured, timedOut: false, execMs };
  }

  private async killTagged(api: KubeApi, d: K8sHandleData, tag: string): Promise<void> {
    try {
      const s = await api.exec(d.namespace, d.pod, CONTAINER, killArgv(tag), {
        stdout: new Writable({ write: (_c, _e, done) => done() }),
        stderr: new Writable({ write: (_c, _e, done) => done() }),
        stdin: null,
        onStatus: () => undefined,
      });
      await Promise.race([s.closed, sleep(10_000)]);
      s.close();
    } catch (e) {
      ignore("killing a cancelled command: its in-pod deadline ends it anyway")(e);
    }
  }

  private async throwIfDead(handle: SandboxHandle): Promise<void> {
    const st = await this.inspect(handle).catch(
      ignore("the sandbox's state is unknown: the exec's own error stands"),
    );
    if (st && st.state !== "running")
      throw new PyroError(
        "sandbox_dead",
        `the sandbox of ${handle.id} is ${st.state}: ${st.reason ?? "gone"}`,
      );
  }

  async putArchive(handle: SandboxHandle, tar: Readable, dest: string): Promise<void> {
    const r = await this.execIn(
      handle,
      {
        argv: [
          "/bin/sh",
          "-c",
          'mkdir -p -- "$1" && exec tar -x -f - -C "$1" --no-same-owner',
          "pyro-put",
          dest,
        ],
        cwd: "/",
        timeoutMs: 300_000,
        maxOutputBytes: 64 * 1024,
      },
      tar,
    );
    if (r.exitCode !== 0)
      throw new PyroError(
        "engine_failure",
        `unpacking into ${dest} failed (exit ${r.exitCode}): ${r.stderr.trim().slice(-300)}`,
      );
  }

  /** Ends the pod and keeps what `create` with `restart` starts again (the Sandbox object, the PVC). */
  async halt(handle: SandboxHandle): Promise<void> {
    const d = k8sData(handle);
    const api = await this.api();
    if (d.kind === "Sandbox") {
      await api.patch({
        apiVersion: SANDBOX_API,
        kind: "Sandbox",
        metadata: { name: d.name, namespace: d.namespace },
        spec: { operatingMode: "Suspended" },
      });
    } else if (d.kind === "Pod") {
      await api.remove("v1", "Pod", d.namespace, d.pod);
    } else {
      await this.destroy(handle);
      return;
    }
    await writeFile(join(handle.sandboxDir, HALTED_FILE), `${new Date().toISOString()}\n`);
    await this.waitGone(api, d);
  }

  async stop(handle: SandboxHandle): Promise<void> {
    await this.halt(handle);
  }

  async destroy(handle: SandboxHandle): Promise<void> {
    // A damaged handle still names the id: everything is found by label.
    const known = k8sDataProblem(handle.data) ? undefined : (handle.data as K8sHandleData);
    await this.removeOrphan(handle.id, handle.sandboxDir, known, true);
  }

  async inspect(handle: SandboxHandle): Promise<SandboxInspect> {
    const d = k8sData(handle);
    const api = await this.api();
    if (d.kind === "Sandbox") {
      const sb = await api.read(SANDBOX_API, "Sandbox", d.namespace, d.name);
      if (!sb) return { state: "missing", reason: `Sandbox ${d.name} is gone` };
      if (sb.spec?.operatingMode === "Suspended") return { state: "stopped", reason: "suspended" };
    }
    const pod = await api.read("v1", "Pod", d.namespace, d.pod);
    if (pod && !pod.metadata.deletionTimestamp && pod.status?.phase === "Running")
      return { state: "running" };
    if (pod) return { state: "stopped", reason: podReason(pod) };
    if (
      d.kind === "Pod" &&
      d.pvc &&
      (await api.read("v1", "PersistentVolumeClaim", d.namespace, `${d.name}-ws`))
    )
      return { state: "stopped", reason: "the pod is gone; the workspace volume is kept" };
    return { state: "missing", reason: `pod ${d.pod} is gone` };
  }

  async setExpiry(handle: SandboxHandle, expiresAt: string): Promise<void> {
    const d = k8sData(handle);
    const api = await this.api();
    const annotations = { [EXPIRES_ANNOTATION]: String(expirySeconds(expiresAt)) };
    if (d.kind === "Sandbox")
      await api.patch({
        apiVersion: SANDBOX_API,
        kind: "Sandbox",
        metadata: { name: d.name, namespace: d.namespace },
        spec: { podTemplate: { metadata: { annotations } }, shutdownTime: shutdownTime(expiresAt) },
      });
    await api.patch({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: d.pod, namespace: d.namespace, annotations },
    });
  }

  async runOnce(spec: SandboxSpec, req: ExecRequest): Promise<OneShotOutcome> {
    const t0 = performance.now();
    let handle: SandboxHandle | undefined;
    try {
      handle = (await this.claimWarm(spec)) ?? (await this.create(spec));
      const bootMs = Math.round(performance.now() - t0);
      const out = await this.exec(handle, req);
      return { ...out, bootMs };
    } finally {
      if (handle)
        await this.destroy(handle).catch(ignore("destroying the one-shot sandbox: the run's outcome stands"));
      else await rm(spec.sandboxDir, { recursive: true, force: true });
    }
  }

  /**
   * A one-shot sandbox from the agent-sandbox warm pool PYRO_K8S_WARM_POOL, as pyro's own
   * pool works: only for a run that asks nothing the pool's template lacks (no network, no
   * files), used once and deleted with its claim. Undefined: no pool, or nothing claimed in
   * time (the run then starts cold).
   */
  async claimWarm(spec: SandboxSpec): Promise<SandboxHandle | undefined> {
    const cfg = this.config;
    if (!cfg.warmPool || spec.network || spec.workspaceDir !== undefined) return undefined;
    if ((await this.resolveMode()) !== "sandbox") return undefined;
    const api = await this.api();
    await mkdir(spec.sandboxDir, { recursive: true });
    const name = objectName(spec.id);
    const intent: K8sHandleData = {
      namespace: cfg.namespace,
      kind: "SandboxClaim",
      name,
      pod: name,
      owner: cfg.owner,
      pvc: false,
    };
    await writeFile(join(spec.sandboxDir, INTENT_FILE), `${JSON.stringify(intent)}\n`);
    try {
      await this.make(
        api,
        sandboxClaim(cfg, spec.id, cfg.warmPool, spec.expiresAt),
        "the run's SandboxClaim",
      );
      const pod = await this.waitClaim(api, cfg.namespace, name, Math.min(cfg.readyTimeoutMs, 30_000));
      return { engine: "kubernetes", id: spec.id, sandboxDir: spec.sandboxDir, data: { ...intent, pod } };
    } catch (e) {
      await this.removeOrphan(spec.id, spec.sandboxDir).catch(ignore("the failed claim is found by label"));
      ignore("no warm sandbox claimed: the run starts cold")(e);
      await mkdir(spec.sandboxDir, { recursive: true });
      return undefined;
    }
  }

  /** Until the claim is Ready: its sandbox's (and pod's) name. */
  async waitClaim(api: KubeApi, namespace: string, name: string, ms: number): Promise<string> {
    const deadline = Date.now() + ms;
    let wait = 10;
    while (Date.now() < deadline) {
      const c = await api.read(EXT_API, "SandboxClaim", namespace, name);
      const conds: { type: string; status: string; reason?: string; message?: string }[] =
        c?.status?.conditions ?? [];
      const ready = conds.find((x) => x.type === "Ready");
      if (ready?.status === "True" && c?.status?.sandbox?.name) return c.status.sandbox.name as string;
      const terminal = conds.find((x) => x.reason && TERMINAL_CLAIM_REASONS.has(x.reason));
      if (terminal)
        throw new PyroError("engine_failure", `claim ${name}: ${terminal.reason}: ${terminal.message ?? ""}`);
      await sleep(wait);
      wait = Math.min(100, wait * 2);
    }
    throw new PyroError("timeout", `claim ${name} was not ready after ${ms} ms`);
  }

  /** Everything of this owner labelled with `id` (or all of the owner's), kind by kind. */
  async listOwned(id?: string): Promise<KubeObject[]> {
    const cfg = this.config;
    const api = await this.api();
    const mode = await this.resolveMode().catch(() => "pod" as const);
    const found: KubeObject[] = [];
    for (const k of KINDS) {
      if (k.crd && mode !== "sandbox") continue;
      const items = await api.list(k.apiVersion, k.kind, cfg.namespace, selector(cfg, id));
      found.push(...items.filter((o) => ownedBy(cfg, o, id)));
    }
    return found;
  }

  /** A halted sandbox: what runs goes (a pod; a Sandbox is suspended), its files stay. */
  private async endRunning(api: KubeApi, id: string, ns: string): Promise<void> {
    for (const o of await this.listOwned(id)) {
      if (o.kind === "Sandbox" && o.spec?.operatingMode !== "Suspended")
        await api.patch({
          apiVersion: o.apiVersion,
          kind: o.kind,
          metadata: { name: o.metadata.name, namespace: ns },
          spec: { operatingMode: "Suspended" },
        });
      else if (o.kind === "Pod" && !o.metadata.deletionTimestamp)
        await api.remove("v1", "Pod", ns, o.metadata.name);
    }
  }

  async orphanAlive(id: string, _sandboxDir: string): Promise<boolean> {
    return (await this.listOwned(id)).length > 0;
  }

  async removeOrphan(
    id: string,
    sandboxDir: string,
    known?: K8sHandleData,
    everything = false,
  ): Promise<void> {
    const api = await this.api();
    const intent = known ?? (await readIntent(sandboxDir));
    const ns = intent?.namespace ?? this.config.namespace;
    if (!everything && existsSync(join(sandboxDir, HALTED_FILE))) return this.endRunning(api, id, ns);
    const objs = await this.listOwned(id);
    // A claim's sandbox and pod carry the claim's owner reference, not always our labels.
    if (intent?.kind === "SandboxClaim" && !objs.some((o) => o.kind === "SandboxClaim"))
      objs.unshift({
        apiVersion: EXT_API,
        kind: "SandboxClaim",
        metadata: { name: intent.name, namespace: ns },
      });
    for (const o of objs) {
      if (o.metadata.deletionTimestamp) continue;
      try {
        await api.remove(o.apiVersion, o.kind, o.metadata.namespace ?? ns, o.metadata.name);
      } catch (e) {
        throw this.apiError(`deleting ${o.kind} ${o.metadata.name}`, e);
      }
    }
    await rm(sandboxDir, { recursive: true, force: true });
  }
}

async function readIntent(sandboxDir: string): Promise<K8sHandleData | undefined> {
  try {
    const raw = JSON.parse(await readFile(join(sandboxDir, INTENT_FILE), "utf8"));
    return raw && typeof raw.namespace === "string" ? (raw as K8sHandleData) : undefined;
  } catch (e) {
    ignore("no intent note: the objects are found by label in the configured namespace")(e);
    return undefined;
  }
}

function podReason(pod: KubeObject): string {
  const cs = pod.status?.containerStatuses?.[0];
  const st = cs?.state ?? {};
  const detail = st.terminated
    ? `${st.terminated.reason ?? "terminated"} (exit ${st.terminated.exitCode})`
    : st.waiting
      ? `${st.waiting.reason ?? "waiting"}${st.waiting.message ? `: ${st.waiting.message}` : ""}`
      : (pod.status?.conditions ?? []).find((c: { status: string }) => c.status !== "True")?.message;
  return `phase ${pod.status?.phase ?? "unknown"}${detail ? `, ${detail}` : ""}`;
}
