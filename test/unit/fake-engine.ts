// An in-memory Engine for unit tests of the managers (no runsc, no VM): it keeps one entry
// per sandbox id, answers inspect/orphanAlive from it, and records every call so a test can
// check what the manager asked of the engine. Not a test file (run-tests.mjs picks *.test.ts).
import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PyroError } from "../../src/core/errors.js";
import { resolvePaths } from "../../src/core/paths.js";
import type {
  Engine,
  EngineName,
  EngineTraits,
  ExecOutcome,
  ExecRequest,
  ExecutionMode,
  OneShotOutcome,
  ProbeResult,
  SandboxHandle,
  SandboxInspect,
  SandboxSpec,
} from "../../src/engines/types.js";
import { NO_TRAITS } from "../../src/engines/types.js";
import { DEFAULT_RUNTIME } from "../../src/environments/runtime-config.js";
import type { EnvironmentStore } from "../../src/environments/store.js";
import type { RuntimeDeps } from "../../src/sandbox/context.js";
import type { EngineRegistry } from "../../src/sandbox/engines.js";
import { currentOwner } from "../../src/sandbox/owner.js";
import { readJson, writeJsonAtomic } from "../../src/util/json-store.js";

export interface FakeSandbox {
  spec: SandboxSpec;
  running: boolean;
}

export interface FakeCall {
  op: "create" | "exec" | "destroy" | "inspect" | "removeOrphan" | "orphanAlive" | "setExpiry";
  id: string;
  argv?: string[];
}

/** What a command prints and returns; the default echoes its argv. */
export type FakeCommand = (req: ExecRequest) => { exitCode?: number; stdout?: string; stderr?: string };

export class FakeEngine implements Engine {
  readonly executionMode: ExecutionMode;
  readonly sandboxes = new Map<string, FakeSandbox>();
  readonly calls: FakeCall[] = [];
  /** Set to make the next create throw (engine_failure). */
  failNextCreate = false;
  command: FakeCommand = (req) => ({ stdout: `${req.argv.join(" ")}\n` });

  /**
   * As the engine it is named after behaves where the managers ask (a VM-like engine with its
   * own disk by default; the host's shared directory when named "host"), never pooled.
   */
  readonly traits: EngineTraits;

  constructor(readonly name: EngineName = "qemu") {
    this.executionMode = name === "host" ? "host_compat" : name;
    const host = name === "host";
    this.traits = host
      ? { ...NO_TRAITS, sharedWorkspaceDir: true }
      : { ...NO_TRAITS, isolated: true, userNetwork: true, sessionsOverExec: true };
  }

  /** How often the manager called `op` (for `id`, when given). */
  count(op: FakeCall["op"], id?: string): number {
    return this.calls.filter((c) => c.op === op && (id === undefined || c.id === id)).length;
  }

  /** A sandbox left running with no record holding its handle (what a killed create leaves). */
  leaveOrphan(spec: Pick<SandboxSpec, "id" | "sandboxDir">): void {
    this.sandboxes.set(spec.id, {
      spec: { environment: "fake", rootfs: "/", vcpuCount: 1, memMib: 64, network: false, ...spec },
      running: true,
    });
  }

  /** The sandbox dies under the manager (an OOM kill, a host reboot). */
  kill(id: string): void {
    const s = this.sandboxes.get(id);
    if (s) s.running = false;
  }

  async probe(): Promise<ProbeResult> {
    return {
      engine: this.name,
      available: true,
      detail: "fake",
      capabilities: { vm_boot: true, guest_exec: true, guest_network: false },
    };
  }

  async create(spec: SandboxSpec): Promise<SandboxHandle> {
    this.calls.push({ op: "create", id: spec.id });
    if (this.failNextCreate) {
      this.failNextCreate = false;
      throw new PyroError("engine_failure", `fake engine: create of ${spec.id} failed`);
    }
    this.sandboxes.set(spec.id, { spec, running: true });
    return {
      engine: this.name,
      id: spec.id,
      sandboxDir: spec.sandboxDir,
      ...(spec.workspaceDir ? { workspaceDir: spec.workspaceDir } : {}),
      data: {},
    };
  }

  async exec(handle: SandboxHandle, req: ExecRequest): Promise<ExecOutcome> {
    this.calls.push({ op: "exec", id: handle.id, argv: req.argv });
    if (!this.sandboxes.get(handle.id)?.running)
      throw new PyroError("sandbox_dead", `fake engine: sandbox ${handle.id} is not running`);
    const r = this.command(req);
    const stdout = r.stdout ?? "";
    const stderr = r.stderr ?? "";
    if (stdout) req.onStdout?.(Buffer.from(stdout));
    if (stderr) req.onStderr?.(Buffer.from(stderr));
    return {
      exitCode: r.exitCode ?? 0,
      stdout,
      stderr,
      stdoutTruncated: false,
      stderrTruncated: false,
      timedOut: false,
      execMs: 1,
    };
  }

  async putArchive(): Promise<void> {
    throw new PyroError("engine_failure", "fake engine: putArchive is not implemented");
  }

  async stop(handle: SandboxHandle): Promise<void> {
    this.kill(handle.id);
  }

  async destroy(handle: SandboxHandle): Promise<void> {
    this.calls.push({ op: "destroy", id: handle.id });
    this.sandboxes.delete(handle.id);
  }

  async inspect(handle: SandboxHandle): Promise<SandboxInspect> {
    this.calls.push({ op: "inspect", id: handle.id });
    const s = this.sandboxes.get(handle.id);
    if (!s) return { state: "missing", reason: "fake engine: no such sandbox" };
    return s.running ? { state: "running" } : { state: "stopped", reason: "fake engine: sandbox killed" };
  }

  async runOnce(spec: SandboxSpec, req: ExecRequest): Promise<OneShotOutcome> {
    const h = await this.create(spec);
    try {
      return { ...(await this.exec(h, req)), bootMs: 1 };
    } finally {
      await this.destroy(h);
    }
  }

  async orphanAlive(id: string): Promise<boolean> {
    this.calls.push({ op: "orphanAlive", id });
    return this.sandboxes.get(id)?.running ?? false;
  }

  async removeOrphan(id: string): Promise<void> {
    this.calls.push({ op: "removeOrphan", id });
    this.sandboxes.delete(id);
  }

  async setExpiry(handle: SandboxHandle): Promise<void> {
    this.calls.push({ op: "setExpiry", id: handle.id });
  }
}

/** A registry of one engine: what the Runtime hands the managers, with the fake in it. */
export function fakeRegistry(engine: Engine): EngineRegistry {
  return {
    select: async () => engine,
    byName: (name) => (name === engine.name ? engine : undefined),
    all: () => [engine],
  };
}

/**
 * RuntimeDeps over a fresh state dir in /tmp, the fake engine, and an environment store
 * that builds nothing (every environment is "ready", with the default runtime config).
 */
export async function fakeDeps(
  engine: Engine,
): Promise<{ deps: RuntimeDeps; root: string; cleanup: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), "pyro-unit-managers-"));
  const env: NodeJS.ProcessEnv = {
    HOME: root,
    PYRO_STATE_DIR: join(root, "state"),
    PYRO_CACHE_DIR: join(root, "cache"),
    PYRO_SHARED_CACHE: "",
    PATH: process.env.PATH,
  };
  const envs = {
    ensure: async () => ({ rootfs: join(root, "rootfs"), runtime: DEFAULT_RUNTIME, pulled: false }),
    runtimeConfig: async () => DEFAULT_RUNTIME,
  } as unknown as EnvironmentStore;
  return {
    deps: {
      paths: resolvePaths(env),
      envs,
      env,
      engines: fakeRegistry(engine),
      privateState: async () => {},
    },
    root,
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}

/** This process, with a start time that is not its own: an owner that died (its pid reused). */
export function deadOwner() {
  const me = currentOwner();
  return { pid: me.pid, start: me.start + 1 };
}

/** Changes a record file in place, as a hand edit or another process's write would. */
export async function editRecord(path: string, change: (r: Record<string, unknown>) => void): Promise<void> {
  const r = (await readJson<Record<string, unknown>>(path))!;
  change(r);
  await writeJsonAtomic(path, r);
}

export async function gone(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) === undefined;
}

/** The code of the PyroError `p` rejects with (fails when it resolves or throws anything else). */
export async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof PyroError, `not a PyroError: ${e}`);
    return e.code;
  }
  assert.fail("expected an error");
}
