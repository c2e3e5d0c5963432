import { mkdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type {
  WorkspaceCreateInputT,
  WorkspaceExecInputT,
  WorkspaceExecResultT,
  WorkspaceLogsInputT,
  WorkspaceLogsResultT,
  WorkspaceStatusResultT,
  WorkspaceSyncInputT,
  WorkspaceSyncResultT,
  WorkspaceUpdateInputT,
} from "../contract/workspace.js";
import { displayCommand, toArgv } from "../core/command.js";
import { PyroError, toPyroError } from "../core/errors.js";
import { resolveHostPath } from "../core/host-paths.js";
import { checkId, newId } from "../core/ids.js";
import { runningByPid } from "../engines/channel.js";
import { resultNotes } from "../engines/notes.js";
import type { Engine, SandboxHandle, SandboxSpec } from "../engines/types.js";
import { chownTree, userOf } from "../environments/runtime-config.js";
import { sandboxNetInfo } from "../network/info.js";
import { networkFromInput, networkUpdate } from "../network/input.js";
import { legacyNetwork } from "../network/policy.js";
import { claimWorkspaceSlot } from "../pool/workspace-pool.js";
import { classifySource, importIntoFreshDir, inspectSource } from "../project/archive.js";
import type { ProjectSeed } from "../project/source.js";
import { type CallContext, isoPlusSeconds, nowIso, type RuntimeDeps } from "../sandbox/context.js";
import {
  createDisk,
  DISK_FAULT_WAY_OUT,
  diskFault,
  isMounted,
  removeDisk,
  removeWorkspaceDir,
} from "../sandbox/disk.js";
import { ensureCreateSpace, hostSpace } from "../sandbox/host-space.js";
import { currentOwner, ownerAlive } from "../sandbox/owner.js";
import { REAP_LOCK_WAIT_MS, type RecordEntry, type RecordStore } from "../sandbox/record-store.js";
import { SandboxRecords } from "../sandbox/records.js";
import { asHandle, sizedView } from "../sandbox/sandbox-record.js";
import { readSecrets, withSecretEnv, writeSecrets } from "../secrets/guest.js";
import { secretValuesCache } from "../secrets/keeper.js";
import { deferredRedactingSinks, redactError, redactOutcome } from "../secrets/redact-op.js";
import { redactText, type SecretValue } from "../secrets/redactor.js";
import { parseSecretEnv, type ResolvedSecret, rereadSource, resolveSecrets } from "../secrets/spec.js";
import { ignore } from "../util/best-effort.js";
import { writeJsonAtomic } from "../util/json-store.js";
import { baselineAfterStart, baselineBeforeStart, baselineDir } from "./baseline.js";
import { expiryCapped, expiryNeedsPush, markActive, markFailed, nextExpiry } from "./command-log.js";
import { execRequest, runLoggedExec } from "./exec-flow.js";
import { Guest } from "./guest.js";
import { type LifecycleOutcome, notRunningError, pauseDir, WorkspaceLifecycle } from "./lifecycle.js";
import { byActivity, damagedReason, interruptedShown } from "./list-view.js";
import { readLogs } from "./logs.js";
import { checkLabels, checkName, checkNameFree, labelsMatch, resolveName } from "./naming.js";
import type { AttachedWorkspace, OpenedWorkspace, RecoveryHook, WorkspacePort } from "./port.js";
import { type PreparedFiles, seedView, type WorkspaceRecord, WorkspaceRecordSchema } from "./record.js";
import { pushSync, WORKSPACE_ROOT } from "./sync.js";

/**
 * Persistent workspaces. Layout of one workspace directory:
 *   workspace.json   the record (atomic writes, per-workspace lock for read-modify-write)
 *   files/           the host side of the guest's /workspace
 *   sandbox/         engine files (bundle, sockets)
 *   commands/        the log: per finished command <seq>.json (the entry) and its full
 *                    output, <seq>.stdout and <seq>.stderr (streamed to running-<tag>.*
 *                    while it runs, renamed when its sequence number is assigned)
 * The lock is held only around record updates, never while a command runs, so two execs
 * on one workspace run side by side and each appends its own log entry.
 */
export class WorkspaceManager {
  /** The record core (src/sandbox/records.ts): store, intent `creating`, expiry, reaper rounds. */
  private readonly core: SandboxRecords<WorkspaceRecord>;
  private readonly records: RecordStore<WorkspaceRecord>;
  /** stop/start/pause/resume (lifecycle.ts), over this manager's records and engines. */
  readonly lifecycle: WorkspaceLifecycle<WorkspaceRecord>;
  /** What capabilities (shells, services, snapshots, the file tools) may ask of a workspace. */
  readonly port: WorkspacePort;
  /** Intent hooks run before a workspace is used or shown (see addRecoveryHook). */
  private readonly recoveryHooks: RecoveryHook[] = [];

  constructor(private readonly d: RuntimeDeps) {
    this.core = new SandboxRecords<WorkspaceRecord>({
      root: d.paths.workspacesDir,
      kind: "ws",
      file: "workspace.json",
      // A removal killed before its disk was unmounted is finished by delete's own steps only.
      keepRemoving: (dir) => isMounted(join(dir, "files")),
      idOf: (r) => r.workspace_id,
      schema: WorkspaceRecordSchema,
      noun: "workspace",
      ops: { list: "workspace_list", delete: "workspace_delete", idArg: "workspace_id" },
      expiredMore: " and create a new one",
      intent: {
        state: "creating",
        verb: "created",
        wait: "wait for workspace create to return, then delete it",
      },
      filesDir: true,
      // Past its TTL the sandbox and files go; a tombstone record stays until delete.
      onExpire: async (_r, dir) => {
        await removeDisk(dir, join(dir, "files"));
        await rm(baselineDir(dir), { recursive: true, force: true });
        await rm(join(dir, "snapshots"), { recursive: true, force: true });
        await rm(pauseDir(dir), { recursive: true, force: true });
      },
      expiredNote: "; sandbox and files removed",
      engines: d.engines,
    });
    this.records = this.core.store;
    this.lifecycle = new WorkspaceLifecycle<WorkspaceRecord>({
      records: this.records,
      dir: (id) => this.dir(id),
      engineFor: (r) => this.engineFor(r),
      spec: (r, restart) => this.sandboxSpec(r, restart),
      expireIfDue: (r) => this.expireIfDue(r),
      markActive: (r, at) => this.markActive(r, at),
    });
    this.port = {
      records: this.records,
      dir: (id) => this.dir(id),
      engineFor: (r) => this.engineFor(r),
      spec: (r, restart) => this.sandboxSpec(r, restart),
      usable: (id) => this.usableRecord(id),
      running: (id) => this.usable(id),
      markFailed: (id, reason) => this.markFailed(id, reason),
      touch: (id, at) => this.touch(id, at),
      open: (id) => this.open(id),
      attach: (id) => this.attach(id),
      status: (id) => this.status(id),
      update: (input) => this.update(input),
      createFrom: (input, engine, fill, ctx) => this.createFrom(input, engine, fill, ctx),
      delete: (id) => this.delete(id),
    };
  }

  /**
   * A capability's intent hook (snapshots.ts: a snapshot or reset whose pyro process died),
   * run before a workspace is used (exec, push, open, attach) or shown (status).
   */
  addRecoveryHook(hook: RecoveryHook): void {
    this.recoveryHooks.push(hook);
  }

  /** Runs the recovery hooks; whether any of them recovered something. */
  private async recover(id: string): Promise<boolean> {
    let any = false;
    for (const hook of this.recoveryHooks) if (await hook(id)) any = true;
    return any;
  }

  /** The sandbox spec create used, from the record (for a restart on the kept files). */
  private async sandboxSpec(r: WorkspaceRecord, restart: boolean): Promise<SandboxSpec> {
    const env = await this.d.envs.ensure(r.environment);
    const dir = this.dir(r.workspace_id);
    return {
      id: r.workspace_id,
      environment: r.environment,
      rootfs: env.rootfs,
      sandboxDir: join(dir, "sandbox"),
      workspaceDir: join(dir, "files"),
      vcpuCount: r.vcpu_count,
      memMib: r.mem_mib,
      network: r.network,
      // The policy and published ports the workspace has now (create's, or update's since).
      ...(r.network_spec ? { net: r.network_spec } : {}),
      expiresAt: r.expires_at,
      restart,
      ...userOf(env.runtime),
    };
  }

  /** A lifecycle step's result: the status, and what the step did. */
  async lifecycleStep<A extends "stop" | "start" | "pause" | "resume">(
    step: A,
    id: string,
  ): Promise<WorkspaceStatusResultT & LifecycleOutcome & { action: A }> {
    // Secrets live in the sandbox's memory: kept in this process across the restart.
    if (step === "stop" || step === "pause") await this.secretValues(id).catch(() => []);
    const { rec, outcome } = await this.lifecycle[step](id);
    const fresh = (step === "start" || step === "resume") && outcome.resumed_with_memory !== true;
    const note = fresh && rec.state === "running" ? await this.restoreSecrets(id) : null;
    const out = { ...this.view(await this.current(rec)), action: step, ...outcome };
    if (note) out.notes = [...(out.notes ?? []), note];
    return out;
  }

  /**
   * After a sandbox restart (start, a resume without memory, reset): the secrets written into
   * the new sandbox. Values this process holds are used; file and variable sources are read
   * again; a literal value given to another pyro process is gone with the old sandbox, so it
   * leaves the record (and a note says so) rather than fail every later exec's read-back.
   */
  async restoreSecrets(id: string, captured?: readonly SecretValue[]): Promise<string | null> {
    const rec = await this.records.load(checkId("ws", id));
    if (!rec.secrets?.length || !rec.handle) return null;
    const known = captured ?? secretValuesCache.get(id) ?? [];
    const lost = rec.secrets
      .filter((m) => m.source.kind === "value" && !known.some((v) => v.name === m.name))
      .map((m) => m.name);
    if (lost.length)
      await this.records.update(id, (r) => {
        r.secrets = (r.secrets ?? []).filter((m) => !lost.includes(m.name));
      });
    try {
      await this.materialiseSecrets(id, known);
    } catch (e) {
      return `secrets not restored: ${toPyroError(e).message}`;
    }
    return lost.length
      ? `secret${lost.length > 1 ? "s" : ""} ${lost.join(", ")} (given as a literal value, which pyro does not keep) did not survive the restart`
      : null;
  }

  /** A workspace's id from its id or its name, among `tenant`'s workspaces (naming.ts resolveName). */
  resolveId(idOrName: string, tenant: string | undefined): Promise<string> {
    return resolveName(this.records, idOrName, tenant);
  }

  private checkNameFree(name: string, tenant: string | undefined, self?: string): Promise<void> {
    return checkNameFree(this.records, name, tenant, self);
  }

  private dir(id: string): string {
    return this.records.dir(id);
  }

  private engineFor(rec: WorkspaceRecord): Engine {
    return this.core.engineFor(rec);
  }

  async create(input: WorkspaceCreateInputT, ctx: CallContext = {}): Promise<WorkspaceStatusResultT> {
    const engine = await this.d.engines.select({ allowHostCompat: input.allow_host_compat });
    // Everything about the seed is checked before anything is written.
    const seedPath =
      input.seed_path !== undefined ? await resolveHostPath(input.seed_path, "seed_path", ctx) : undefined;
    // Secrets are read (files, variables) before anything exists, and held in memory only.
    if (input.secrets?.length && !engine.traits.isolated)
      throw new PyroError(
        "engine_unavailable",
        "secrets need an isolated engine: under host_compat /run/pyro-secrets would be the host's own /run",
        "run pyro where gVisor or QEMU works (see `pyro doctor`)",
      );
    const secrets = input.secrets?.length
      ? await resolveSecrets(input.secrets, { ...ctx, env: this.d.env })
      : [];
    // No seed_path on a server started for a project: the project's git-tracked files.
    const project = !seedPath && ctx.project ? await ctx.project.snapshot(ctx.signal) : undefined;
    try {
      return await this.createSeeded(input, ctx, engine, seedPath, project, secrets);
    } finally {
      await project?.cleanup();
    }
  }

  /**
   * A workspace whose files and baseline come from `fill` rather than a seed (fork, in
   * snapshots.ts), through the same intent-first create and the same cleanup on failure.
   */
  createFrom(
    input: WorkspaceCreateInputT,
    engine: Engine,
    fill: PreparedFiles,
    ctx: CallContext = {},
  ): Promise<WorkspaceStatusResultT> {
    return this.createSeeded(input, ctx, engine, undefined, undefined, [], fill);
  }

  private async createSeeded(
    input: WorkspaceCreateInputT,
    ctx: CallContext,
    engine: Engine,
    seedPath: string | undefined,
    project: ProjectSeed | undefined,
    secrets: ResolvedSecret[] = [],
    fill?: PreparedFiles,
  ): Promise<WorkspaceStatusResultT> {
    const src = project ? project.source : seedPath ? await classifySource(seedPath, "seed path") : undefined;
    const stats = src ? await inspectSource(src, ctx.signal) : { entry_count: 0, bytes_written: 0 };
    const env = await this.d.envs.ensure(input.environment, {
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      onProgress: (p) => ctx.onProgress?.({ message: `${input.environment}: ${p.message}` }),
    });
    await this.d.privateState();
    const name = input.name !== undefined ? checkName(input.name) : null;
    if (name) await this.checkNameFree(name, ctx.tenant);
    const labels = checkLabels(input.labels ?? {});
    const net = await networkFromInput(input);
    // The host must back the disk (and keep its floor) before any record or file exists;
    // createDisk checks again for the one it makes (host-space.ts).
    await ensureCreateSpace(this.d, input.disk_mib, engine.traits.diskImage);
    const freshId = newId("ws");
    // Intent first: the record exists (state `creating`, this process as owner) before any
    // file or sandbox does, so whatever moment this process dies at, list/status/delete and
    // the reaper find what it left.
    const rec: WorkspaceRecord = {
      ...(ctx.tenant ? { tenant: ctx.tenant } : {}),
      workspace_id: freshId,
      name,
      labels,
      environment: input.environment,
      state: "creating",
      reason: null,
      created_at: nowIso(),
      expires_at: nextExpiry(Date.now(), input.ttl_seconds, isoPlusSeconds(input.max_ttl_seconds)),
      ttl_seconds: input.ttl_seconds,
      max_expires_at: isoPlusSeconds(input.max_ttl_seconds),
      last_activity_at: nowIso(),
      vcpu_count: input.vcpu_count,
      mem_mib: input.mem_mib,
      disk_mib: input.disk_mib,
      disk_enforced: false,
      network: net.policy !== "off",
      network_spec: net,
      engine: engine.name,
      execution_mode: engine.executionMode,
      handle: null,
      owner: currentOwner(),
      command_count: 0,
      last_command: null,
      ...(fill?.extra ?? {}),
      workspace_seed: fill?.seed ?? {
        mode: project ? "project" : src ? src.kind : "empty",
        seed_path: project ? project.origin.root : src ? src.path : null,
        destination: WORKSPACE_ROOT,
        entry_count: stats.entry_count,
        bytes_written: stats.bytes_written,
        origin_kind: project ? project.origin.kind : src ? "seed_path" : "none",
        origin_ref: project?.origin.ref ?? null,
        origin_commit: project?.origin.commit ?? null,
        origin_url: project?.origin.url ?? null,
      },
    };
    // The warm pool (src/pool/workspace-pool.ts): a pre-started slot of these settings becomes
    // this workspace, renamed into place with this record (intent) already written in it.
    const slot = fill
      ? undefined
      : await claimWorkspaceSlot(this.d, engine, input, net, (slotId, slotDir) =>
          writeJsonAtomic(join(slotDir, "workspace.json"), { ...rec, workspace_id: slotId }),
        );
    const id = slot?.id ?? freshId;
    rec.workspace_id = id;
    const dir = this.dir(id);
    const filesDir = join(dir, "files");
    const sandboxDir = join(dir, "sandbox");
    let handle: SandboxHandle | undefined = slot?.handle;
    let baseline: Promise<void> | undefined;
    let filling: Promise<void> | undefined;
    try {
      if (slot) {
        ctx.onProgress?.({ message: "took a pre-started sandbox from the warm pool" });
        rec.disk_enforced = slot.disk_enforced;
        await engine.setExpiry?.(slot.handle, rec.expires_at);
      } else {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        await this.records.write(id, rec);
        // Only gVisor shares files/ with the guest; a microVM's /workspace is on its own disk.
        rec.disk_enforced = (
          await createDisk(dir, filesDir, input.disk_mib, engine.traits.diskImage, this.d.env)
        ).disk_enforced;
      }
      // A fork's files are written while its sandbox starts, like the baseline below.
      if (fill) {
        filling = fill.into(filesDir, ctx.signal);
        filling.catch(
          ignore(
            "a failed fork fill is awaited and reported by create; this only keeps it from being unhandled",
          ),
        );
      } else if (src) {
        const from = project
          ? `the ${project.origin.kind === "repo_url" ? "repository" : "project"} ${project.origin.url ?? project.origin.root}`
          : src.path;
        ctx.onProgress?.({ message: `seeding /workspace from ${from} (${stats.entry_count} entries)` });
        await importIntoFreshDir(src, filesDir, ctx.signal).catch((e: unknown) => {
          if (/ENOSPC|No space left/i.test(String((e as Error)?.message ?? e)))
            throw new PyroError(
              "seed_rejected",
              `the seed (${stats.bytes_written} bytes) does not fit the workspace disk of ${input.disk_mib} MiB`,
              "pass a larger --disk-mib (disk_mib)",
            );
          throw e;
        });
      }
      // An image that runs as a non-root User gets a /workspace it can write.
      if (env.runtime.uid !== 0 && !fill) await chownTree(filesDir, env.runtime.uid, env.runtime.gid);
      // The seeded tree is the baseline diff and export --changed-only compare against. It is
      // copied while the sandbox starts: no guest command can run before create returns.
      baseline = fill ? fill.baseline(dir) : baselineBeforeStart(dir, engine, ctx.signal);
      baseline.catch(
        ignore(
          "a failed baseline copy is awaited and reported by create; this only keeps it from being unhandled",
        ),
      );
      ctx.signal?.throwIfAborted();
      if (!handle) {
        ctx.onProgress?.({ message: `starting the ${engine.name} sandbox` });
        handle = await engine.create({
          id,
          environment: input.environment,
          rootfs: env.rootfs,
          sandboxDir,
          workspaceDir: filesDir,
          vcpuCount: input.vcpu_count,
          memMib: input.mem_mib,
          network: rec.network,
          net,
          expiresAt: rec.expires_at,
          ...userOf(env.runtime),
        });
      }
      await filling;
      await baseline;
      if (!fill) await baselineAfterStart(dir, engine);
      if (secrets.length) {
        ctx.onProgress?.({ message: `writing ${secrets.length} secret(s) to /run/pyro-secrets` });
        await writeSecrets(engine, handle, secrets, userOf(env.runtime).user);
        rec.secrets = secrets.map((s) => ({ name: s.name, bytes: s.value.length, source: s.source }));
        secretValuesCache.set(id, this.dir(id), secrets);
      }
      ctx.signal?.throwIfAborted();
      rec.handle = handle;
      rec.state = "running";
      rec.owner = null;
      await this.records.write(id, rec);
      return this.view(rec);
    } catch (e) {
      if (handle)
        await engine
          .destroy(handle)
          .catch(ignore("destroying the sandbox of a failed create: the create error is the one reported"));
      else
        await engine
          .removeOrphan(id, sandboxDir)
          .catch(ignore("removing a leftover sandbox of a failed create: it may not exist"));
      await baseline?.catch(
        ignore("the baseline copy of a failed create: the create error is the one reported"),
      );
      await filling?.catch(ignore("the fork fill of a failed create: the create error is the one reported"));
      await removeWorkspaceDir(dir).catch(
        ignore("removing the directory of a failed create: the create error is the one reported"),
      );
      throw toPyroError(e);
    }
  }

  /** Past its TTL: the sandbox and files go, a tombstone record stays until delete. */
  private expireIfDue(rec: WorkspaceRecord): Promise<WorkspaceRecord> {
    return this.core.expireIfDue(rec);
  }

  /** A workspace that can take commands, or a clear error saying why not. */
  private async usable(id: string): Promise<WorkspaceRecord> {
    // A snapshot or reset whose pyro process died is finished first (the recovery hooks).
    await this.recover(id);
    return this.usableRecord(id);
  }

  private async usableRecord(id: string): Promise<WorkspaceRecord> {
    const rec = await this.core.unexpired(id);
    if (rec.state === "creating") {
      throw new PyroError(
        "invalid_state",
        ownerAlive(rec.owner)
          ? `workspace ${id} is still being created (by pyro process ${rec.owner?.pid})`
          : `workspace ${id} was never finished: the pyro process creating it (pid ${rec.owner?.pid}) died`,
        ownerAlive(rec.owner)
          ? "wait for workspace create to return, then try again"
          : [
              "delete it with ",
              { op: "workspace_delete", args: { workspace_id: id } },
              " and create a new one",
            ],
      );
    }
    const stopped = notRunningError(rec);
    if (stopped) throw stopped;
    if (rec.state !== "running" || !rec.handle) {
      // A disk that went read-only is repaired by a start (its reason says so): say the same.
      const onDiskFault = rec.reason?.includes(DISK_FAULT_WAY_OUT);
      throw new PyroError(
        "sandbox_dead",
        `workspace ${id} is ${rec.state}: ${rec.reason ?? "no sandbox"}`,
        onDiskFault
          ? [
              "free space on the host, then start it with ",
              { op: "workspace_start", args: { workspace_id: id } },
              " (it repairs the disk first)",
            ]
          : [
              "delete it with ",
              { op: "workspace_delete", args: { workspace_id: id } },
              " and create a new one",
            ],
      );
    }
    return rec;
  }

  private markFailed(id: string, reason: string): Promise<void> {
    return markFailed(this.records, id, reason);
  }

  async exec(input: WorkspaceExecInputT, ctx: CallContext = {}): Promise<WorkspaceExecResultT> {
    const t0 = performance.now();
    let rec = await this.usable(input.workspace_id);
    // Only when the deadline would pass the expiry: the record write and expiry push cost
    // more than a tenth of a short exec, and the finished command moves the expiry anyway.
    if (expiryNeedsPush(rec, input.timeout_seconds))
      rec = await this.touch(rec.workspace_id, Date.now() + input.timeout_seconds * 1000);
    // The values, for redaction, are read back beside the command (see deferredRedactingSinks).
    const secretsRead = rec.secrets?.length ? this.secretValues(rec) : Promise.resolve([]);
    const secretEnv = parseSecretEnv(
      input.secret_env ?? [],
      (rec.secrets ?? []).map((s) => s.name),
      rec.workspace_id,
    );
    // An image's Env and User apply; its WorkingDir does not.
    const runtime = await this.d.envs.runtimeConfig(rec.environment);
    const handle = asHandle(rec.handle!);
    let sinks: ReturnType<typeof deferredRedactingSinks> | undefined;
    const result = await runLoggedExec({
      records: this.records,
      rec,
      dir: this.dir(rec.workspace_id),
      // The command as typed may hold a value too; redacted once the values are known.
      command: displayCommand(input.command),
      maxOutputBytes: input.max_output_bytes,
      t0,
      live: ctx,
      run: (recorder) => {
        // Every byte is redacted before the recorder logs it or a face sees it.
        sinks = deferredRedactingSinks(secretsRead, recorder);
        const argv = withSecretEnv(toArgv(input.command), secretEnv);
        return this.engineFor(rec).exec(
          handle,
          execRequest(argv, runtime, input.timeout_seconds, ctx.signal, sinks),
        );
      },
      scrub: async () => {
        const values = (await sinks?.done()) ?? [];
        return {
          text: (t) => redactText(values, t),
          outcome: (o) => redactOutcome(values, o),
          error: (e) => redactError(values, e) as PyroError,
        };
      },
      pushExpiry: (r) => this.pushExpiry(r),
      // A command that failed may have met a disk gone read-only (the host filled up): found
      // now, the next call says so with the way back instead of failing in the guest again.
      afterFailure: (r) =>
        this.diskChecked(r).then(
          () => undefined,
          () => undefined,
        ),
    });
    // The engine always runs it or throws.
    return result!;
  }

  /** `workspace sync push`: host files into /workspace (sync.ts). */
  syncPush(input: WorkspaceSyncInputT, ctx: CallContext = {}): Promise<WorkspaceSyncResultT> {
    return pushSync(this.port, input, ctx);
  }

  /**
   * A running workspace's sandbox for the capability modules (files, diff, export, summary),
   * with its directory on the host (baseline, exports log).
   */
  async open(id: string): Promise<OpenedWorkspace> {
    const rec = await this.usable(id);
    // The file tools run shell scripts against /workspace inside the sandbox; a host-compat
    // "sandbox" is the host itself, where /workspace would be the host's own directory.
    if (!this.engineFor(rec).traits.isolated)
      throw new PyroError(
        "engine_unavailable",
        `workspace ${id} runs without isolation (host_compat); the file, diff and export tools need an isolated engine`,
        `its files are on the host in ${join(this.dir(rec.workspace_id), "files")}`,
      );
    const guest = new Guest(this.engineFor(rec), asHandle(rec.handle!), rec.workspace_id, (why) =>
      this.markFailed(rec.workspace_id, why),
    );
    const dir = this.dir(rec.workspace_id);
    return { guest, dir, baseline: baselineDir(dir) };
  }

  /** Whether the expiry already sits at the hard maximum (nothing can extend it). */
  private capped(r: WorkspaceRecord): boolean {
    return expiryCapped(r);
  }

  /** Activity at `at`: the idle expiry moves to at + ttl (never past the hard maximum, never back). */
  private markActive(r: WorkspaceRecord, at: number): void {
    markActive(r, at);
  }

  /** Records activity (exec, push, and the file operations) and tells the sandbox its new expiry. */
  async touch(id: string, at: number): Promise<WorkspaceRecord> {
    const rec = await this.records.update(id, (r) => {
      if (r.state === "running") this.markActive(r, at);
    });
    await this.pushExpiry(rec);
    return rec;
  }

  /**
   * A running workspace's sandbox for shells and services (shells.ts, services.ts), with the
   * environment's Env and User; counts as activity, like exec.
   */
  async attach(id: string): Promise<AttachedWorkspace> {
    const rec = await this.usable(checkId("ws", id));
    if (!this.capped(rec)) await this.touch(rec.workspace_id, Date.now());
    const runtime = await this.d.envs.runtimeConfig(rec.environment);
    return {
      workspaceId: rec.workspace_id,
      dir: this.dir(rec.workspace_id),
      engine: this.engineFor(rec),
      handle: asHandle(rec.handle!),
      env: runtime.env,
      ...userOf(runtime),
      cacheDir: this.d.paths.cacheDir,
      secretNames: (rec.secrets ?? []).map((s) => s.name),
      secretValues: () => this.secretValues(rec.workspace_id),
    };
  }

  /**
   * The workspace's secret values, for redaction: [] when it has none or its sandbox is not
   * running (the values died with it). Read back from the sandbox once per process (one exec)
   * and kept in this process's memory only. Throws when the guest changed them (fail closed).
   */
  async secretValues(recOrId: WorkspaceRecord | string): Promise<SecretValue[]> {
    // A missing or damaged record has no sandbox whose output could hold a value.
    const rec =
      typeof recOrId === "string"
        ? await Promise.resolve()
            .then(() => this.records.read(checkId("ws", recOrId)))
            .then((e) => e.rec)
            .catch(ignore("missing or damaged record: no sandbox whose output could hold a secret"))
        : recOrId;
    if (!rec?.secrets?.length || rec.state !== "running" || !rec.handle) return [];
    const cached = secretValuesCache.get(rec.workspace_id);
    if (cached) return cached;
    const values = await readSecrets(
      this.engineFor(rec),
      asHandle(rec.handle),
      rec.secrets,
      rec.workspace_id,
    );
    secretValuesCache.set(rec.workspace_id, this.dir(rec.workspace_id), values);
    return values;
  }

  /**
   * Captures the values before the sandbox goes away (stop, reset, snapshot restore):
   * hand them to `materialiseSecrets` once the new sandbox runs. In memory only.
   */
  async captureSecrets(id: string): Promise<SecretValue[]> {
    return this.secretValues(id);
  }

  /**
   * Writes the workspace's secrets into its (new) sandbox under /run/pyro-secrets: for
   * stop/start, reset and restore. `values` are those `captureSecrets` returned in the same
   * process; without them, secrets given as a file or variable are read again, and one given
   * as a literal value is an error naming it (pyro never stored it).
   */
  async materialiseSecrets(id: string, values?: readonly SecretValue[]): Promise<void> {
    const rec = await this.records.load(checkId("ws", id));
    if (!rec.secrets?.length) return;
    if (!rec.handle)
      throw new PyroError("invalid_state", `workspace ${id} has no sandbox to write secrets into`);
    const out: SecretValue[] = [];
    for (const m of rec.secrets) {
      const v =
        values?.find((x) => x.name === m.name)?.value ?? (await rereadSource(m.name, m.source, this.d.env));
      out.push({ name: m.name, value: v });
    }
    const runtime = await this.d.envs.runtimeConfig(rec.environment);
    await writeSecrets(this.engineFor(rec), asHandle(rec.handle), out, userOf(runtime).user);
    // Sizes may differ when a file was re-read.
    await this.records.update(id, (r) => {
      r.secrets = (r.secrets ?? []).map((m) => ({
        ...m,
        bytes: out.find((x) => x.name === m.name)!.value.length,
      }));
    });
    secretValuesCache.set(id, this.dir(id), out);
  }

  /** Hands the record's expiry to the engine, which enforces it with no pyro process alive. */
  private async pushExpiry(rec: WorkspaceRecord): Promise<void> {
    if (!rec.handle || rec.state !== "running") return;
    await this.engineFor(rec)
      .setExpiry?.(asHandle(rec.handle), rec.expires_at)
      .catch(
        ignore("pushing the expiry into the sandbox: the reaper enforces the record's expiry regardless"),
      );
  }

  /** `workspace update`: new idle TTL and/or hard maximum; the expiry is recomputed from the last activity. */
  async update(input: WorkspaceUpdateInputT): Promise<WorkspaceStatusResultT> {
    const id = checkId("ws", input.workspace_id);
    // Names, labels and TTLs change in any state but expired (a stopped workspace too).
    const existing = await this.expireIfDue(await this.records.load(id));
    if (existing.state === "expired") await this.usable(id);
    const name = input.name !== undefined ? checkName(input.name) : undefined;
    // In the namespace of the workspace's own tenant (the record's, stamped at create).
    if (name) await this.checkNameFree(name, existing.tenant, id);
    const set = checkLabels(input.labels ?? {});
    const rec = await this.records.update(id, (r) => {
      if (name !== undefined) r.name = name;
      const labels = { ...(r.labels ?? {}) };
      for (const k of input.clear_labels ?? []) delete labels[k];
      r.labels = { ...labels, ...set };
      if (input.max_ttl_seconds !== undefined)
        r.max_expires_at = new Date(Date.parse(r.created_at) + input.max_ttl_seconds * 1000).toISOString();
      if (input.ttl_seconds !== undefined) r.ttl_seconds = input.ttl_seconds;
      const last = Date.parse(r.last_activity_at ?? r.created_at);
      r.expires_at = nextExpiry(last, r.ttl_seconds, r.max_expires_at);
    });
    await this.pushExpiry(rec);
    const cur = await this.current(rec);
    // A new network policy goes to the running sandbox first, then into the record.
    const net = await networkUpdate(cur.network_spec ?? legacyNetwork(cur.network), input);
    if (net) {
      const engine = this.engineFor(cur);
      if (cur.state !== "running" || !cur.handle || !engine.updateNetwork)
        throw new PyroError(
          "invalid_argument",
          `the network of workspace ${id} cannot be changed: ${cur.state !== "running" ? `it is ${cur.state}` : `the ${engine.name} engine cannot change a running sandbox's network`}`,
          "create a new workspace with the network policy you need",
        );
      const handle = asHandle(cur.handle);
      await engine.updateNetwork(handle, net);
      return this.view(
        await this.records.update(id, (r) => {
          r.network_spec = net;
          r.handle = handle;
        }),
      );
    }
    return this.view(cur);
  }

  async status(id: string): Promise<WorkspaceStatusResultT> {
    let e = await this.records.read(checkId("ws", id));
    if (e.rec && (await this.recover(id).catch(() => false))) e = await this.records.read(id);
    if (e.problem === "missing" && !(await stat(e.dir).catch(ignore("workspace dir missing: not found"))))
      throw this.notFound(id);
    if (!e.rec) return this.damagedView(e);
    return this.view(await this.current(e.rec));
  }

  private notFound(id: string): PyroError {
    return new PyroError("not_found", `no workspace with id ${id}`, [
      "list workspaces with ",
      { op: "workspace_list" },
    ]);
  }

  /**
   * The record brought up to date: expired past its TTL, failed if its sandbox is gone.
   * Never waits on another operation's lock (a list must not stall behind a delete that is
   * removing a sandbox): when the record is locked, what it derives is shown, not written.
   * A record deleted meanwhile is not_found.
   */
  private async current(rec: WorkspaceRecord, opts: { listing?: boolean } = {}): Promise<WorkspaceRecord> {
    const r = await this.core.expiredNow(rec);
    const interrupted = interruptedShown(r);
    if (interrupted) return { ...r, ...interrupted };
    // In a list, a running record whose sandbox is not plainly alive (engines/channel.ts
    // runningByPid) and that another operation holds (a delete removing its sandbox) is shown
    // as recorded: probing a sandbox on its way out costs a `runsc state` process per such
    // record (each holds a busy server's main thread 6-9 ms) to say what the delete settles
    // anyway. Status still asks.
    if (
      opts.listing &&
      r.state === "running" &&
      r.handle &&
      !runningByPid(r.handle) &&
      (await this.records.busy(r.workspace_id))
    )
      return r;
    return this.core.checked(r, (x) => this.diskChecked(x));
  }

  /**
   * A running workspace whose /workspace disk went read-only (the host filled up: disk.ts
   * diskFault) is `failed`, with the reason and the way back (`workspace start` repairs it).
   */
  private async diskChecked(r: WorkspaceRecord): Promise<WorkspaceRecord> {
    if (!r.disk_enforced) return r;
    const fault = await diskFault(join(this.dir(r.workspace_id), "files"));
    if (!fault) return r;
    const reason = `${fault}; ${DISK_FAULT_WAY_OUT}`;
    // Recorded when the host can still take the write; said either way (a full host is
    // exactly when the record cannot be written).
    const space = await hostSpace(this.dir(r.workspace_id));
    if (!space || space.free_mib > 0) {
      const failed = await this.core
        .failIfFree(r, reason)
        .catch(ignore("marking the record failed on a full host: the caller reports the failure either way"));
      if (failed) return failed;
    }
    return { ...r, state: "failed", reason };
  }

  /** The most recent commands, oldest first (logs.ts). */
  logs(input: WorkspaceLogsInputT): Promise<WorkspaceLogsResultT> {
    return readLogs(this.port, input);
  }

  async delete(id: string): Promise<{ workspace_id: string; deleted: boolean }> {
    checkId("ws", id);
    const dir = this.dir(id);
    if (!(await stat(dir).catch(ignore("workspace dir missing: not found")))) {
      throw new PyroError("not_found", `no workspace with id ${id} (already deleted?)`, [
        "list workspaces with ",
        { op: "workspace_list" },
      ]);
    }
    await this.core.delete(id, removeWorkspaceDir);
    secretValuesCache.delete(id);
    return { workspace_id: id, deleted: true };
  }

  /** Every workspace (matching every label given), most recently active first. */
  async list(filter: { labels?: Record<string, string> } = {}): Promise<WorkspaceStatusResultT[]> {
    const all = await this.records.list(
      async (rec) => this.view(await this.current(rec, { listing: true })),
      async (e) =>
        (await stat(e.dir).catch(ignore("workspace dir missing: nothing to show in the list")))
          ? this.damagedView(e)
          : undefined,
    );
    return all.filter((w) => labelsMatch(w.labels, filter.labels ?? {})).sort(byActivity);
  }

  /**
   * Expires workspaces past their TTL and cleans up after creates whose process died.
   * Damaged records are never touched (they may hold a live sandbox's files: only an
   * explicit delete removes them); a directory without any record only once nothing of its
   * sandbox runs and it is old enough not to be a create in progress.
   */
  reap(): Promise<string[]> {
    return this.core.reap({
      // An interrupted create: nothing of it is usable, so all of it goes.
      interrupted: async (rec) => {
        const id = rec.workspace_id;
        const done = await this.records.lockedIfFree(
          id,
          async () => {
            await this.core.removeSandbox(id, { id, dir: this.dir(id), rec });
            await removeWorkspaceDir(this.dir(id));
          },
          REAP_LOCK_WAIT_MS,
        );
        if (!done) return false;
        await this.records.removeLock(id);
        return true;
      },
      orphan: async (e) => {
        if (e.problem !== "missing") return false;
        const st = await stat(e.dir).catch(ignore("workspace dir missing: no orphan to reap"));
        if (!st || Date.now() - st.mtimeMs <= 10 * 60_000) return false;
        const sandboxDir = join(e.dir, "sandbox");
        for (const engine of this.core.enginesFor(undefined))
          if (await engine.orphanAlive(e.id, sandboxDir)) return false;
        await removeWorkspaceDir(e.dir);
        return true;
      },
    });
  }

  /** What list and status show for a record that cannot be trusted: enough to find and delete it. */
  private async damagedView(e: RecordEntry<WorkspaceRecord>): Promise<WorkspaceStatusResultT> {
    const st = await stat(e.dir).catch(ignore("workspace dir gone: the damaged view uses the current time"));
    const at = new Date(st?.mtimeMs ?? Date.now()).toISOString();
    return {
      workspace_id: e.id,
      name: null,
      labels: {},
      paused_with_memory: null,
      environment: "unknown",
      state: "damaged",
      reason: damagedReason(e),
      created_at: at,
      expires_at: at,
      vcpu_count: 0,
      mem_mib: 0,
      disk_mib: 0,
      disk_enforced: false,
      ttl_seconds: 0,
      notes: [],
      max_expires_at: at,
      last_activity_at: at,
      network: false,
      network_info: null,
      execution_mode: null,
      command_count: 0,
      last_command: null,
      workspace_seed: {
        mode: "empty",
        seed_path: null,
        destination: WORKSPACE_ROOT,
        entry_count: 0,
        bytes_written: 0,
        origin_kind: "none",
        origin_ref: null,
        origin_commit: null,
        origin_url: null,
      },
      secrets: [],
    };
  }

  private view(r: WorkspaceRecord): WorkspaceStatusResultT {
    return {
      workspace_id: r.workspace_id,
      name: r.name ?? null,
      labels: r.labels ?? {},
      paused_with_memory: r.state === "paused" ? (r.pause?.with_memory ?? false) : null,
      ...sizedView(r),
      disk_mib: r.disk_mib,
      disk_enforced: r.disk_enforced,
      ttl_seconds: r.ttl_seconds,
      notes: resultNotes(r.execution_mode, r.vcpu_count),
      max_expires_at: r.max_expires_at ?? r.expires_at,
      last_activity_at: r.last_activity_at ?? r.created_at,
      network: r.network,
      network_info: sandboxNetInfo(
        this.engineFor(r),
        r.handle ? asHandle(r.handle) : null,
        r.state === "running",
        r.network_spec,
        r.network,
      ),
      execution_mode: r.execution_mode,
      command_count: r.command_count,
      last_command: r.last_command,
      workspace_seed: seedView(r.workspace_seed),
      secrets: (r.secrets ?? []).map((s) => ({ name: s.name, bytes: s.bytes })),
    };
  }
}
