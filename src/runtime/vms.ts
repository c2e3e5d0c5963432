import { mkdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { outcomeFields } from "../engines/outcome.js";
import type { EngineName, ExecutionMode, SandboxHandle, SandboxSpec } from "../engines/types.js";
import { processOf, userOf } from "../environments/runtime-config.js";
import { PyroError } from "../errors.js";
import { checkId, newId } from "../ids.js";
import type {
  RunInputT,
  RunResultT,
  VmCreateInputT,
  VmExecInputT,
  VmStatusResultT,
} from "../operations/schemas.js";
import { readJson } from "../util/json-store.js";
import { pidAlive } from "../util/proc.js";
import { displayCommand, toArgv } from "./command.js";
import { type CallContext, isoPlusSeconds, nowIso, type RuntimeDeps } from "./context.js";
import { engineByName, selectEngine } from "./engine-select.js";
import { RecordStore } from "./record-store.js";

interface VmRecord {
  vm_id: string;
  environment: string;
  state: "created" | "running" | "stopped" | "expired" | "failed";
  reason: string | null;
  created_at: string;
  expires_at: string;
  vcpu_count: number;
  mem_mib: number;
  network: boolean;
  allow_host_compat: boolean;
  engine: EngineName | null;
  execution_mode: ExecutionMode | null;
  handle: SandboxHandle | null;
}

/** The VM half of the runtime: one-shot runs and the vm_* lifecycle. */
export class VmManager {
  private readonly records: RecordStore<VmRecord>;

  constructor(private readonly d: RuntimeDeps) {
    this.records = new RecordStore<VmRecord>({
      root: d.paths.vmsDir,
      kind: "vm",
      file: "vm.json",
      idOf: (r) => r.vm_id,
      notFound: (id) =>
        new PyroError(
          "not_found",
          `no VM with id ${id}`,
          "list VMs with `pyro vm list`; a VM used by vm_exec is deleted after its command",
        ),
    });
  }

  private dir(id: string): string {
    return this.records.dir(id);
  }

  async run(input: RunInputT, ctx: CallContext = {}): Promise<RunResultT> {
    const t0 = performance.now();
    const engine = await selectEngine(this.d.paths, { allowHostCompat: input.allow_host_compat }, this.d.env);
    const env = await this.d.envs.ensure(input.environment, {
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      onProgress: (p) => ctx.onProgress?.({ message: `${input.environment}: ${p.message}` }),
    });
    const vm_id = newId("vm");
    const sandboxDir = this.dir(vm_id);
    await mkdir(sandboxDir, { recursive: true });
    // Lets the reaper clean up after a pyro process that was killed mid-run.
    await writeFile(
      join(sandboxDir, "oneshot.json"),
      JSON.stringify({ pid: process.pid, engine: engine.name }),
    );
    const spec: SandboxSpec = {
      id: vm_id,
      environment: input.environment,
      rootfs: env.rootfs,
      sandboxDir,
      vcpuCount: input.vcpu_count,
      memMib: input.mem_mib,
      network: input.network,
      ...userOf(env.runtime),
    };
    const out = await engine.runOnce(spec, {
      argv: toArgv(input.command),
      ...processOf(env.runtime),
      timeoutMs: input.timeout_seconds * 1000,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    });
    return {
      vm_id,
      environment: input.environment,
      command: displayCommand(input.command),
      ...outcomeFields(out),
      duration_ms: Math.round(performance.now() - t0),
      boot_ms: out.bootMs,
      exec_ms: out.execMs,
      execution_mode: engine.executionMode,
      cleaned_up: true,
    };
  }

  async create(input: VmCreateInputT, ctx: CallContext = {}): Promise<VmStatusResultT> {
    const engine = await selectEngine(this.d.paths, { allowHostCompat: input.allow_host_compat }, this.d.env);
    await this.d.envs.ensure(input.environment, {
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      onProgress: (p) => ctx.onProgress?.({ message: `${input.environment}: ${p.message}` }),
    });
    const vm_id = newId("vm");
    const rec: VmRecord = {
      vm_id,
      environment: input.environment,
      state: "created",
      reason: null,
      created_at: nowIso(),
      expires_at: isoPlusSeconds(input.ttl_seconds),
      vcpu_count: input.vcpu_count,
      mem_mib: input.mem_mib,
      network: input.network,
      allow_host_compat: input.allow_host_compat,
      engine: engine.name,
      execution_mode: engine.executionMode,
      handle: null,
    };
    await this.records.write(vm_id, rec);
    return this.view(rec);
  }

  private engineFor(rec: VmRecord) {
    const e = engineByName(rec.engine ?? "gvisor", this.d.paths, this.d.env);
    if (!e) throw new PyroError("engine_unavailable", `engine ${rec.engine} is not available in this build`);
    return e;
  }

  private expireIfDue(rec: VmRecord): Promise<VmRecord> {
    return this.records.expireIfDue(rec, async (r) => {
      if (r.handle)
        await this.engineFor(r)
          .destroy(r.handle)
          .catch(() => undefined);
      r.handle = null;
      r.state = "expired";
      r.reason = `ttl elapsed at ${r.expires_at}`;
    });
  }

  private async usable(id: string): Promise<VmRecord> {
    const rec = await this.expireIfDue(await this.records.load(id));
    if (rec.state === "expired")
      throw new PyroError(
        "expired",
        `VM ${id} expired (${rec.reason})`,
        `delete it with \`pyro vm delete ${id}\``,
      );
    return rec;
  }

  async start(id: string, _ctx: CallContext = {}): Promise<VmStatusResultT> {
    checkId("vm", id);
    const rec = await this.records.update(id, async (r) => {
      if (r.state === "expired")
        throw new PyroError("expired", `VM ${id} expired`, `delete it with \`pyro vm delete ${id}\``);
      if (r.state === "running" && r.handle) return;
      const engine = this.engineFor(r);
      if (r.handle) await engine.destroy(r.handle).catch(() => undefined);
      const env = await this.d.envs.ensure(r.environment);
      r.handle = await engine.create({
        id: r.vm_id,
        environment: r.environment,
        rootfs: env.rootfs,
        sandboxDir: join(this.dir(r.vm_id), "sandbox"),
        vcpuCount: r.vcpu_count,
        memMib: r.mem_mib,
        network: r.network,
        ...userOf(env.runtime),
      });
      r.state = "running";
      r.reason = null;
    });
    return this.view(rec);
  }

  /** Runs one command in the VM (starting it if needed), then deletes the VM, as the contract says. */
  async exec(input: VmExecInputT, ctx: CallContext = {}): Promise<RunResultT> {
    const t0 = performance.now();
    const id = checkId("vm", input.vm_id);
    let rec = await this.usable(id);
    let bootMs = 0;
    if (rec.state !== "running" || !rec.handle) {
      const b0 = performance.now();
      await this.start(id);
      bootMs = Math.round(performance.now() - b0);
      rec = await this.records.load(id);
    }
    try {
      const runtime = await this.d.envs.runtimeConfig(rec.environment);
      const out = await this.engineFor(rec).exec(rec.handle!, {
        argv: toArgv(input.command),
        ...processOf(runtime),
        ...userOf(runtime),
        timeoutMs: input.timeout_seconds * 1000,
        ...(ctx.signal ? { signal: ctx.signal } : {}),
      });
      return {
        vm_id: id,
        environment: rec.environment,
        command: displayCommand(input.command),
        ...outcomeFields(out),
        duration_ms: Math.round(performance.now() - t0),
        boot_ms: bootMs,
        exec_ms: out.execMs,
        execution_mode: rec.execution_mode ?? "gvisor",
        cleaned_up: true,
      };
    } finally {
      await this.delete(id);
    }
  }

  async stop(id: string): Promise<VmStatusResultT> {
    checkId("vm", id);
    await this.usable(id);
    const rec = await this.records.update(id, async (r) => {
      if (r.handle) await this.engineFor(r).destroy(r.handle);
      r.handle = null;
      r.state = "stopped";
      r.reason = "stopped by request";
    });
    return this.view(rec);
  }

  async delete(id: string): Promise<{ vm_id: string; deleted: boolean }> {
    checkId("vm", id);
    const rec = await this.records.load(id);
    await this.records.locked(id, async () => {
      if (rec.handle) await this.engineFor(rec).destroy(rec.handle);
      await rm(this.dir(id), { recursive: true, force: true });
    });
    await this.records.removeLock(id);
    return { vm_id: id, deleted: true };
  }

  async status(id: string): Promise<VmStatusResultT> {
    checkId("vm", id);
    let rec = await this.expireIfDue(await this.records.load(id));
    if (rec.state === "running" && rec.handle) {
      const i = await this.engineFor(rec).inspect(rec.handle);
      if (i.state !== "running") {
        rec = await this.records.update(id, (r) => {
          r.state = "failed";
          r.reason = i.reason ?? `sandbox ${i.state}`;
        });
      }
    }
    return this.view(rec);
  }

  async networkInfo(id: string) {
    const rec = await this.records.load(checkId("vm", id));
    return {
      vm_id: id,
      network: rec.network,
      mode: rec.network ? ("host" as const) : ("none" as const),
      execution_mode: rec.execution_mode,
    };
  }

  list(): Promise<VmStatusResultT[]> {
    return this.records.list(async (rec) => this.view(await this.expireIfDue(rec)));
  }

  /** Expires VMs past their TTL and removes what killed one-shot runs left behind. */
  reap(): Promise<string[]> {
    return this.records.reap(
      (rec) => this.expireIfDue(rec),
      async (n, dir) => {
        const one = await readJson<{ pid: number; engine: EngineName }>(join(dir, "oneshot.json")).catch(
          () => undefined,
        );
        const st = await stat(dir).catch(() => undefined);
        const orphan = one ? !pidAlive(one.pid) : st !== undefined && Date.now() - st.mtimeMs > 10 * 60_000;
        if (!orphan) return false;
        await engineByName(one?.engine ?? "gvisor", this.d.paths, this.d.env)?.removeOrphan?.(n);
        await rm(dir, { recursive: true, force: true });
        return true;
      },
    );
  }

  private view(r: VmRecord): VmStatusResultT {
    return {
      vm_id: r.vm_id,
      environment: r.environment,
      state: r.state,
      reason: r.reason,
      created_at: r.created_at,
      expires_at: r.expires_at,
      vcpu_count: r.vcpu_count,
      mem_mib: r.mem_mib,
      network: r.network,
      execution_mode: r.execution_mode,
    };
  }
}
