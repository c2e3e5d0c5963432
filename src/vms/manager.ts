import { mkdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import * as z from "zod";
import { ExecutionModeSchema } from "../contract/common.js";
import { NetworkSpecRecord } from "../contract/network.js";
import {
  type RunInputT,
  type RunResultT,
  type VmCreateInputT,
  type VmExecInputT,
  type VmListEntryT,
  VmStatusResult,
  type VmStatusResultT,
} from "../contract/vm.js";
import { displayCommand, toArgv } from "../core/command.js";
import { PyroError, toPyroError } from "../core/errors.js";
import { checkId, newId } from "../core/ids.js";
import type { Engine, EngineName, SandboxHandle, SandboxSpec } from "../engines/types.js";
import { processOf, userOf } from "../environments/runtime-config.js";
import { sandboxNetInfo } from "../network/info.js";
import { networkFromInput } from "../network/input.js";
import { finishRecording, runResult, streamInto } from "../output/command.js";
import { CommandRecorder } from "../output/recorder.js";
import { oneShotOutputPath, pruneOneShotOutputs } from "../output/store.js";
import { runFromPool } from "../pool/run.js";
import { type CallContext, isoPlusSeconds, nowIso, type RuntimeDeps } from "../sandbox/context.js";
import { currentOwner, type Owner, ownerAlive } from "../sandbox/owner.js";
import { REAP_LOCK_WAIT_MS, type RecordStore } from "../sandbox/record-store.js";
import { SandboxRecords } from "../sandbox/records.js";
import { asHandle, HandleSchema, OwnerSchema, sizedView } from "../sandbox/sandbox-record.js";
import { ignore } from "../util/best-effort.js";
import { readJson, writeJsonAtomic } from "../util/json-store.js";
import { removeTree } from "../util/remove-tree.js";

/** Validated on every load; `starting` carries the owner so an interrupted start is found. */
const VmRecordSchema = z.looseObject({
  // As its status shows them, except the state: "damaged" and "deleted" are never stored.
  ...VmStatusResult.pick({
    vm_id: true,
    environment: true,
    reason: true,
    created_at: true,
    expires_at: true,
    vcpu_count: true,
    mem_mib: true,
    network: true,
  }).shape,
  state: z.enum(["created", "starting", "running", "stopped", "expired", "failed"]),
  /** The network policy asked for (absent in records made before policies). */
  network_spec: NetworkSpecRecord.optional(),
  allow_host_compat: z.boolean(),
  engine: z.enum(["firecracker", "qemu", "gvisor", "kubernetes", "host"]).nullable(),
  execution_mode: ExecutionModeSchema.nullable(),
  handle: HandleSchema.nullable(),
  owner: OwnerSchema.nullable().optional(),
  // The remote tenant (token id) that created it (src/remote/); absent for local callers.
  tenant: z.string().optional(),
});
type VmRecord = z.infer<typeof VmRecordSchema>;

/**
 * What a one-shot run writes before its sandbox starts (`oneshot.json` in its VM directory):
 * a killed run is cleaned up from it, and vm_list shows the run in flight from it. Fields
 * after `engine` are absent in markers of older pyro.
 */
interface OneShotMarker {
  owner: Owner;
  engine: string;
  /** The remote tenant (token id) whose run it is; absent for a local caller. */
  tenant?: string;
  started_at?: string;
  environment?: string;
  command?: string;
  vcpu_count?: number;
  mem_mib?: number;
  network?: boolean;
  timeout_seconds?: number;
  /** A warm-pool sandbox's handle (the run's sandbox is not in this directory then). */
  handle?: SandboxHandle;
}

/** A one-shot run this process is running: vm_delete ends it through its own cancel. */
interface LiveRun {
  end: AbortController;
  finished: Promise<unknown>;
}

/** The VM half of the runtime: one-shot runs and the vm_* lifecycle. */
export class VmManager {
  /** The record core (src/sandbox/records.ts): store, intent `starting`, expiry, reaper rounds. */
  private readonly core: SandboxRecords<VmRecord>;
  private readonly records: RecordStore<VmRecord>;
  /** One-shot runs in flight in this process, by vm id. */
  private readonly live = new Map<string, LiveRun>();

  constructor(private readonly d: RuntimeDeps) {
    this.core = new SandboxRecords<VmRecord>({
      root: d.paths.vmsDir,
      kind: "vm",
      file: "vm.json",
      idOf: (r) => r.vm_id,
      schema: VmRecordSchema,
      noun: "VM",
      ops: { list: "vm_list", delete: "vm_delete", idArg: "vm_id" },
      notFoundMore: "; a VM used by vm_exec is deleted after its command",
      intent: { state: "starting", verb: "started", wait: "wait for it to start, then delete it" },
      engines: d.engines,
    });
    this.records = this.core.store;
  }

  private dir(id: string): string {
    return this.records.dir(id);
  }

  /**
   * A one-shot run: its sandbox exists only while the command runs. While it does it is
   * listed (vm_list, kind "run") and vm_delete ends it, from this process or another.
   */
  async run(input: RunInputT, callCtx: CallContext = {}): Promise<RunResultT> {
    const end = new AbortController();
    const ctx: CallContext = {
      ...callCtx,
      signal: callCtx.signal ? AbortSignal.any([callCtx.signal, end.signal]) : end.signal,
    };
    const ids: string[] = [];
    const running = this.runInner(input, ctx, (id, marker) => {
      ids.push(id);
      this.live.set(id, { end, finished: running.catch(ignore("the run's own caller gets its outcome")) });
      return this.markRun(id, input, ctx, marker);
    });
    try {
      return await running;
    } catch (e) {
      // Ended by vm_delete: said as such, not as a cancel the caller did not make.
      if (end.signal.aborted && !callCtx.signal?.aborted) throw toPyroError(end.signal.reason);
      throw e;
    } finally {
      for (const id of ids) {
        this.live.delete(id);
        // Its marker goes with it (engines remove a run's directory; this covers any that do not).
        await rm(this.dir(id), { recursive: true, force: true });
      }
    }
  }

  /** Writes the run's marker (`oneshot.json`), before its sandbox starts. */
  private async markRun(
    id: string,
    input: RunInputT,
    ctx: CallContext,
    extra: Partial<OneShotMarker> & { engine: string },
  ): Promise<void> {
    const dir = this.dir(id);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeJsonAtomic(join(dir, "oneshot.json"), {
      owner: currentOwner(),
      ...(ctx.tenant ? { tenant: ctx.tenant } : {}),
      started_at: nowIso(),
      environment: input.environment,
      command: displayCommand(input.command),
      vcpu_count: input.vcpu_count,
      mem_mib: input.mem_mib,
      network: input.network,
      timeout_seconds: input.timeout_seconds,
      ...extra,
    } satisfies OneShotMarker);
  }

  private async runInner(
    input: RunInputT,
    ctx: CallContext,
    mark: (id: string, marker: Partial<OneShotMarker> & { engine: string }) => Promise<void>,
  ): Promise<RunResultT> {
    const t0 = performance.now();
    const engine = await this.d.engines.select({ allowHostCompat: input.allow_host_compat });
    const env = await this.d.envs.ensure(input.environment, {
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      onProgress: (p) => ctx.onProgress?.({ message: `${input.environment}: ${p.message}` }),
    });
    await this.d.privateState();
    // A warm sandbox from the pool, when one is kept for these settings (src/pool/).
    let pooledId: string | undefined;
    const pooled = await runFromPool(this.d, engine, env, input, ctx, async (id, handle) => {
      pooledId = id;
      await mark(id, { engine: engine.name, handle });
      return this.recorder(id, input.max_output_bytes, ctx);
    }).finally(async () => {
      // The pooled sandbox lives in the pool's directories: only the marker is ours.
      if (pooledId) await rm(this.dir(pooledId), { recursive: true, force: true });
    });
    if (pooled) {
      pooled.duration_ms = Math.round(performance.now() - t0);
      return pooled;
    }
    const net = await networkFromInput(input);
    const vm_id = newId("vm");
    const sandboxDir = this.dir(vm_id);
    // Intent first: lets the reaper clean up after a pyro process killed mid-run.
    await mark(vm_id, { engine: engine.name });
    const spec: SandboxSpec = {
      id: vm_id,
      environment: input.environment,
      rootfs: env.rootfs,
      sandboxDir,
      vcpuCount: input.vcpu_count,
      memMib: input.mem_mib,
      network: net.policy !== "off",
      net,
      ...userOf(env.runtime),
    };
    const rec = await this.recorder(vm_id, input.max_output_bytes, ctx);
    let out: Awaited<ReturnType<typeof engine.runOnce>>;
    try {
      out = await engine.runOnce(spec, {
        argv: toArgv(input.command),
        ...processOf(env.runtime),
        timeoutMs: input.timeout_seconds * 1000,
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        ...streamInto(rec),
      });
    } catch (e) {
      rec.close();
      throw e;
    }
    finishRecording(rec, out);
    return runResult(vm_id, input, out, rec, engine.executionMode, {
      duration_ms: Math.round(performance.now() - t0),
      boot_ms: out.bootMs,
    });
  }

  /**
   * Where a one-shot command's full output goes: <state>/outputs/<vm_id>.*, paged with
   * output_read; older logs past the retention limit are dropped first.
   */
  private async recorder(vmId: string, budget: number, ctx: CallContext): Promise<CommandRecorder> {
    await mkdir(this.d.paths.outputsDir, { recursive: true, mode: 0o700 });
    await pruneOneShotOutputs(this.d.paths).catch(
      ignore("pruning old one-shot outputs: the next run prunes again"),
    );
    return new CommandRecorder({
      stdoutPath: oneShotOutputPath(this.d.paths, vmId, "stdout"),
      stderrPath: oneShotOutputPath(this.d.paths, vmId, "stderr"),
      keep: budget,
      onStdout: ctx.onStdout,
      onStderr: ctx.onStderr,
    });
  }

  async create(input: VmCreateInputT, ctx: CallContext = {}): Promise<VmStatusResultT> {
    const engine = await this.d.engines.select({ allowHostCompat: input.allow_host_compat });
    await this.d.envs.ensure(input.environment, {
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      onProgress: (p) => ctx.onProgress?.({ message: `${input.environment}: ${p.message}` }),
    });
    await this.d.privateState();
    const net = await networkFromInput(input);
    const vm_id = newId("vm");
    const rec: VmRecord = {
      ...(ctx.tenant ? { tenant: ctx.tenant } : {}),
      vm_id,
      environment: input.environment,
      state: "created",
      reason: null,
      created_at: nowIso(),
      expires_at: isoPlusSeconds(input.ttl_seconds),
      vcpu_count: input.vcpu_count,
      mem_mib: input.mem_mib,
      network: net.policy !== "off",
      network_spec: net,
      allow_host_compat: input.allow_host_compat,
      engine: engine.name,
      execution_mode: engine.executionMode,
      handle: null,
    };
    await this.records.write(vm_id, rec);
    return this.view(rec);
  }

  private engineFor(rec: VmRecord) {
    return this.core.engineFor(rec);
  }

  private usable(id: string): Promise<VmRecord> {
    return this.core.unexpired(id);
  }

  async start(id: string, _ctx: CallContext = {}): Promise<VmStatusResultT> {
    checkId("vm", id);
    // Intent first (`starting` with this process as owner), then the sandbox, then the
    // handle: the lock is not held while the engine works, and a process killed in between
    // leaves a record that says what to clean up.
    const rec = await this.records.update(id, async (r) => {
      if (r.state === "expired")
        throw new PyroError("expired", `VM ${id} expired`, [
          "delete it with ",
          { op: "vm_delete", args: { vm_id: id } },
        ]);
      if (r.state === "starting" && ownerAlive(r.owner))
        throw new PyroError("invalid_state", `VM ${id} is being started by pyro process ${r.owner?.pid}`);
      if (r.state === "running" && r.handle) return;
      r.state = "starting";
      r.owner = currentOwner();
    });
    if (rec.state === "running") return this.view(rec);
    const engine = this.engineFor(rec);
    const sandboxDir = join(this.dir(id), "sandbox");
    try {
      if (rec.handle)
        await engine
          .destroy(asHandle(rec.handle))
          .catch(
            ignore(
              "destroying the stopped VM's old sandbox before a start: it may be gone already; removeOrphan follows",
            ),
          );
      await engine.removeOrphan(id, sandboxDir);
      const env = await this.d.envs.ensure(rec.environment);
      const handle = await engine.create({
        id: rec.vm_id,
        environment: rec.environment,
        rootfs: env.rootfs,
        sandboxDir,
        vcpuCount: rec.vcpu_count,
        memMib: rec.mem_mib,
        network: rec.network,
        ...(rec.network_spec ? { net: rec.network_spec } : {}),
        expiresAt: rec.expires_at,
        ...userOf(env.runtime),
      });
      return this.view(
        await this.records.update(id, (r) => {
          r.handle = handle;
          r.state = "running";
          r.reason = null;
          r.owner = null;
        }),
      );
    } catch (e) {
      await engine
        .removeOrphan(id, sandboxDir)
        .catch(ignore("removing a leftover sandbox of a failed start: the start error is the one reported"));
      await this.records
        .update(id, (r) => {
          r.state = "failed";
          r.reason = `start failed: ${toPyroError(e).message}`;
          r.handle = null;
          r.owner = null;
        })
        .catch(ignore("recording the failed start: the start error is the one thrown"));
      throw toPyroError(e);
    }
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
      const recorder = await this.recorder(id, input.max_output_bytes, ctx);
      const runtime = await this.d.envs.runtimeConfig(rec.environment);
      let out: Awaited<ReturnType<Engine["exec"]>>;
      try {
        out = await this.engineFor(rec).exec(asHandle(rec.handle!), {
          argv: toArgv(input.command),
          ...processOf(runtime),
          ...userOf(runtime),
          timeoutMs: input.timeout_seconds * 1000,
          ...(ctx.signal ? { signal: ctx.signal } : {}),
          ...streamInto(recorder),
        });
      } catch (e) {
        recorder.close();
        throw e;
      }
      finishRecording(recorder, out);
      const ran = { ...input, environment: rec.environment, vcpu_count: rec.vcpu_count };
      return runResult(id, ran, out, recorder, rec.execution_mode ?? "gvisor", {
        duration_ms: Math.round(performance.now() - t0),
        boot_ms: bootMs,
      });
    } finally {
      await this.delete(id);
    }
  }

  async stop(id: string): Promise<VmStatusResultT> {
    checkId("vm", id);
    await this.usable(id);
    const rec = await this.records.update(id, async (r) => {
      if (r.handle) await this.engineFor(r).destroy(asHandle(r.handle));
      r.handle = null;
      r.state = "stopped";
      r.reason = "stopped by request";
    });
    return this.view(rec);
  }

  async delete(id: string): Promise<{ vm_id: string; deleted: boolean }> {
    checkId("vm", id);
    const first = await this.records.read(id);
    if (first.problem === "missing") {
      if (await this.endRun(id)) return { vm_id: id, deleted: true };
      throw this.records.notFoundError(id);
    }
    await this.core.delete(id, removeTree);
    return { vm_id: id, deleted: true };
  }

  async status(id: string): Promise<VmStatusResultT> {
    checkId("vm", id);
    return this.view(await this.core.checked(await this.core.expiredNow(await this.records.load(id))));
  }

  async networkInfo(id: string) {
    const rec = await this.records.load(checkId("vm", id));
    const info = sandboxNetInfo(
      this.engineFor(rec),
      rec.handle ? asHandle(rec.handle) : null,
      rec.state === "running",
      rec.network_spec,
      rec.network,
    );
    return {
      vm_id: id,
      network: rec.network,
      // Before start: the mode the engine will give it.
      mode:
        info?.mode ?? (!rec.network ? "none" : this.engineFor(rec).traits.userNetwork ? "user" : "namespace"),
      execution_mode: rec.execution_mode,
      network_info: info,
    };
  }

  /**
   * Ends the one-shot run `id` (vm_delete of a run): through its own cancel when this process
   * runs it, else by its engine, as the reaper ends a dead process's run. False when no such
   * run is in flight.
   */
  private async endRun(id: string): Promise<boolean> {
    const mine = this.live.get(id);
    if (mine) {
      mine.end.abort(new PyroError("cancelled", `run ${id} was ended by vm_delete; its sandbox was removed`));
      await mine.finished;
      return true;
    }
    const dir = this.dir(id);
    const marker = await this.marker(dir);
    if (!marker) return false;
    for (const engine of this.core.enginesFor(marker.engine as EngineName | undefined)) {
      const pooled = poolHandle(marker);
      if (pooled) await engine.destroy(pooled);
      else await engine.removeOrphan(id, dir);
    }
    // The run's own process notices and cleans up after itself; what it has not, goes here.
    await removeTree(dir);
    return true;
  }

  private marker(dir: string): Promise<Partial<OneShotMarker> | undefined> {
    return readJson<Partial<OneShotMarker>>(join(dir, "oneshot.json")).catch(
      ignore("no readable oneshot.json: not a one-shot run's directory"),
    );
  }

  /** A one-shot run in flight as a vm_list entry; undefined for a directory that is not one. */
  private async runEntry(id: string, dir: string): Promise<VmListEntryT | undefined> {
    const m = await this.marker(dir);
    if (!m?.owner) return undefined;
    const st = await stat(dir).catch(ignore("the run ended meanwhile: not listed"));
    if (!st) return undefined;
    const started = m.started_at ?? new Date(st.mtimeMs).toISOString();
    const alive = ownerAlive(m.owner as Owner);
    const engine = this.core.enginesFor(m.engine as EngineName | undefined)[0];
    return {
      vm_id: id,
      environment: m.environment ?? "unknown",
      state: alive ? "running" : "failed",
      reason: alive
        ? `one-shot run by pyro process ${m.owner.pid}; vm_delete ends it`
        : `interrupted: the pyro process running it (pid ${m.owner.pid}) died; the next reap removes what it left`,
      created_at: started,
      expires_at: isoPlusSeconds(m.timeout_seconds ?? 0, Date.parse(started)),
      vcpu_count: m.vcpu_count ?? 0,
      mem_mib: m.mem_mib ?? 0,
      network: m.network ?? false,
      execution_mode: engine?.executionMode ?? null,
      kind: "run",
      owner: m.tenant ?? null,
      age_seconds: ageSeconds(started),
      command: m.command ?? null,
    };
  }

  list(): Promise<VmListEntryT[]> {
    return this.records.list(
      async (rec) => ({
        ...this.view(await this.core.expiredNow(rec)),
        kind: "vm" as const,
        owner: rec.tenant ?? null,
        age_seconds: ageSeconds(rec.created_at),
        command: null,
      }),
      async (e) => {
        // A one-shot run's directory has no vm.json by design: listed as a run while it runs.
        if (e.problem === "missing") return this.runEntry(e.id, e.dir);
        const st = await stat(e.dir).catch(ignore("VM dir gone: the damaged view uses the current time"));
        const at = new Date(st?.mtimeMs ?? Date.now()).toISOString();
        return {
          kind: "vm" as const,
          owner: null,
          age_seconds: ageSeconds(at),
          command: null,
          vm_id: e.id,
          environment: "unknown",
          state: "damaged",
          reason: `${e.problem ? e.why : "damaged"}; delete it (its sandbox is found and removed too)`,
          created_at: at,
          expires_at: at,
          vcpu_count: 0,
          mem_mib: 0,
          network: false,
          execution_mode: null,
        };
      },
    );
  }

  /**
   * Expires VMs past their TTL, fails starts whose process died (removing what they left),
   * and removes what killed one-shot runs left behind. Damaged records are left for delete.
   */
  reap(): Promise<string[]> {
    return this.core.reap({
      // An interrupted start: what it left is removed and the VM is failed (it can be started again).
      interrupted: async (rec) => {
        await this.engineFor(rec).removeOrphan(rec.vm_id, this.core.sandboxDir(rec.vm_id));
        const done = await this.records.updateIfFree(
          rec.vm_id,
          (r) => {
            if (!this.core.interrupted(r)) return;
            r.state = "failed";
            r.reason = `interrupted: the pyro process starting it (pid ${r.owner?.pid}) died`;
            r.owner = null;
          },
          REAP_LOCK_WAIT_MS,
        );
        return done !== undefined;
      },
      orphan: async (e) => {
        if (e.problem !== "missing") return false;
        const one = await this.marker(e.dir);
        const st = await stat(e.dir).catch(ignore("VM dir gone meanwhile: not an orphan by age"));
        const orphan = one?.owner
          ? !ownerAlive(one.owner)
          : st !== undefined && Date.now() - st.mtimeMs > 10 * 60_000;
        if (!orphan) return false;
        // A one-shot run's sandbox dir is the VM dir itself (a pooled run's: its handle's).
        for (const engine of this.core.enginesFor(one?.engine as EngineName | undefined))
          if (one && poolHandle(one)) await engine.destroy(poolHandle(one)!);
          else await engine.removeOrphan(e.id, e.dir);
        await removeTree(e.dir);
        return true;
      },
    });
  }

  private view(r: VmRecord): VmStatusResultT {
    return {
      vm_id: r.vm_id,
      ...sizedView(r),
      network: r.network,
      execution_mode: r.execution_mode,
    };
  }
}

/** Whole seconds since `iso` (0 for a time not yet come or unreadable). */
function ageSeconds(iso: string): number {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? 0 : Math.max(0, Math.floor((Date.now() - t) / 1000));
}

/** A pooled run's sandbox handle from its marker (checked: markers are read back after crashes). */
function poolHandle(m: Partial<OneShotMarker>): SandboxHandle | undefined {
  const h = HandleSchema.safeParse(m.handle);
  return h.success ? asHandle(h.data) : undefined;
}
