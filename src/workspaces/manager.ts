import { mkdir, open, readdir, rm, stat } from "node:fs/promises";
import { join, posix } from "node:path";
import * as z from "zod";
import { ExecutionModeSchema } from "../contract/common.js";
import { NetworkSpecRecord } from "../contract/network.js";
import {
  type CommandLogEntryT,
  LastCommand,
  SeedInfo,
  type WorkspaceCreateInputT,
  type WorkspaceExecInputT,
  type WorkspaceExecResultT,
  type WorkspaceLogsInputT,
  type WorkspaceLogsResultT,
  type WorkspaceStatusResultT,
  type WorkspaceSyncInputT,
  type WorkspaceSyncResultT,
  type WorkspaceUpdateInputT,
} from "../contract/workspace.js";
import { resultNotes } from "../engines/notes.js";
import type { Engine, SandboxHandle, SandboxSpec } from "../engines/types.js";
import { chownTree, userOf } from "../environments/runtime-config.js";
import { PyroError, toPyroError } from "../errors.js";
import { resolveHostPath } from "../host-paths.js";
import { checkId, isValidId, newId } from "../ids.js";
import { sandboxNetInfo } from "../network/info.js";
import { networkFromInput, networkUpdate } from "../network/input.js";
import { legacyNetwork } from "../network/policy.js";
import { finishRecording, streamInto } from "../output/command.js";
import type { StreamSnapshot } from "../output/recorder.js";
import { type StreamName, workspaceOutputId, workspaceOutputPath } from "../output/store.js";
import { outputFields, snapshotOf } from "../output/view.js";
import { claimWorkspaceSlot } from "../pool/workspace-pool.js";
import type { ProjectSeed } from "../project/source.js";
import { displayCommand, toArgv } from "../runtime/command.js";
import { type CallContext, isoPlusSeconds, isPast, nowIso, type RuntimeDeps } from "../runtime/context.js";
import { allEngines, engineByName, selectEngine } from "../runtime/engine-select.js";
import { currentOwner, ownerAlive } from "../runtime/owner.js";
import { REAP_LOCK_WAIT_MS, type RecordEntry, RecordStore } from "../runtime/record-store.js";
import {
  asHandle,
  HandleSchema,
  handleProblem,
  OwnerSchema,
  removeRecordSandbox,
} from "../runtime/sandbox-record.js";
import { readSecrets, withSecretEnv, writeSecrets } from "../secrets/guest.js";
import { SecretRecordSchema, secretValuesCache } from "../secrets/keeper.js";
import { deferredRedactingSinks, redactError, redactOutcome } from "../secrets/redact-op.js";
import { redactText, type SecretValue } from "../secrets/redactor.js";
import { parseSecretEnv, type ResolvedSecret, rereadSource, resolveSecrets } from "../secrets/spec.js";
import { readJson, writeJsonAtomic } from "../util/json-store.js";
import { classifySource, importIntoFreshDir, inspectSource, tarStreamOf } from "./archive.js";
import { baselineAfterStart, baselineBeforeStart, baselineDir, updateBaseline } from "./baseline.js";
import {
  appendCommandLog,
  CANCELLED_OUTCOME,
  discardCommand,
  execResult,
  expiryCapped,
  expiryNeedsPush,
  markActive,
  markFailed,
  nextExpiry,
  type StoredLogEntry,
  startCommand,
} from "./command-log.js";
import {
  createDisk,
  DISK_FAULT_WAY_OUT,
  diskFault,
  isMounted,
  removeDisk,
  removeWorkspaceDir,
} from "./disk.js";
import { pushDestination } from "./files.js";
import { Guest, relToWorkspace } from "./guest.js";
import { ensureCreateSpace, hostSpace } from "./host-space.js";
import {
  interruptedTransition,
  type LifecycleOutcome,
  notRunningError,
  pauseDir,
  WorkspaceLifecycle,
} from "./lifecycle.js";
import { checkLabels, checkName, labelsMatch, looksLikeName } from "./naming.js";
import { recoverInterruptedOp } from "./snapshots.js";

export const WORKSPACE_ROOT = "/workspace";

/** The seed as stored: records from before the origin fields lack them (see seedView). */
const SeedRecord = SeedInfo.partial({
  origin_kind: true,
  origin_ref: true,
  origin_commit: true,
  origin_url: true,
});

/** The stored seed with its origin filled in for records written before origins existed. */
function seedView(s: z.infer<typeof SeedRecord>): z.infer<typeof SeedInfo> {
  return {
    ...s,
    origin_kind: s.origin_kind ?? (s.mode === "empty" ? "none" : "seed_path"),
    origin_ref: s.origin_ref ?? null,
    origin_commit: s.origin_commit ?? null,
    origin_url: s.origin_url ?? null,
  };
}

/**
 * The stored record, validated on every load (see RecordStore). `creating` is written before
 * anything else exists, with the creating process as `owner`, so a sandbox whose creator
 * died at any moment is still found, shown and deleted. Loose: fields a newer pyro added
 * survive a read-modify-write by this one.
 */
const WorkspaceRecordSchema = z.looseObject({
  workspace_id: z.string(),
  environment: z.string(),
  // stopping/starting: a lifecycle step in progress (owner), see lifecycle.ts; paused: see `pause`.
  state: z.enum(["creating", "running", "stopping", "stopped", "starting", "paused", "expired", "failed"]),
  reason: z.string().nullable(),
  created_at: z.string(),
  expires_at: z.string(),
  ttl_seconds: z.number().int().positive().default(600),
  max_expires_at: z.string().optional(),
  last_activity_at: z.string().optional(),
  vcpu_count: z.number().int(),
  mem_mib: z.number().int(),
  disk_mib: z.number().int().positive().default(4096),
  disk_enforced: z.boolean().default(false),
  network: z.boolean(),
  /** The network policy asked for (absent in records made before policies: `network` alone). */
  network_spec: NetworkSpecRecord.optional(),
  engine: z.enum(["firecracker", "qemu", "gvisor", "host"]),
  execution_mode: ExecutionModeSchema,
  handle: HandleSchema.nullable(),
  owner: OwnerSchema.nullable().optional(),
  command_count: z.number().int().nonnegative(),
  last_command: LastCommand.nullable(),
  workspace_seed: SeedRecord,
  /** Names, sizes and where values came from; never a value (see src/secrets/). */
  secrets: z.array(SecretRecordSchema).optional(),
  // The remote tenant (token id) that created it (src/remote/); absent for local callers.
  tenant: z.string().optional(),
  name: z.string().nullable().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  pause: z.object({ with_memory: z.boolean(), at: z.string() }).nullable().optional(),
  ended_sessions: z
    .object({ shells: z.array(z.string()), services: z.array(z.string()) })
    .nullable()
    .optional(),
});
export type WorkspaceRecord = z.infer<typeof WorkspaceRecordSchema>;

/** Files and baseline for a workspace made from another's state (fork; see createFrom). */
export interface PreparedFiles {
  seed: WorkspaceRecord["workspace_seed"];
  /** More record fields (e.g. where it was forked from). */
  extra?: Record<string, unknown>;
  /** Fills the new, empty files/ directory (while the sandbox starts: no guest command runs yet). */
  into(filesDir: string, signal?: AbortSignal): Promise<void>;
  /** Records the baseline (while the sandbox starts). */
  baseline(wsDir: string): Promise<void>;
}

/** Entries written before output went to files carried it inline (capped at 1 MiB). */
interface LegacyOutput {
  stdout?: string;
  stderr?: string;
}

/** Head and tail (`keep` bytes each) of an output file; an empty stream if it is missing. */
async function fileSnapshot(path: string, keep: number): Promise<StreamSnapshot> {
  const fh = await open(path, "r").catch(() => undefined);
  if (!fh) return snapshotOf(Buffer.alloc(0));
  try {
    const size = (await fh.stat()).size;
    const read = async (pos: number, len: number) => {
      const b = Buffer.alloc(len);
      const { bytesRead } = await fh.read(b, 0, len, pos);
      return b.subarray(0, bytesRead);
    };
    const head = await read(0, Math.min(keep, size));
    const tail = size <= keep ? head : await read(size - keep, keep);
    return { bytes: size, logged: size, head, tail };
  } finally {
    await fh.close();
  }
}

/** Maps a user's --dest onto a normalised guest path that stays inside /workspace. */
export function resolveWorkspaceDest(dest: string): string {
  if (dest.includes("\0")) throw new PyroError("invalid_argument", "destination contains a NUL byte");
  const abs = dest.startsWith("/")
    ? posix.normalize(dest)
    : posix.normalize(posix.join(WORKSPACE_ROOT, dest));
  const clean = abs.length > 1 ? abs.replace(/\/+$/, "") : abs;
  if (clean !== WORKSPACE_ROOT && !clean.startsWith(`${WORKSPACE_ROOT}/`)) {
    throw new PyroError(
      "invalid_argument",
      `destination ${JSON.stringify(dest)} is outside ${WORKSPACE_ROOT}`,
      `use ${WORKSPACE_ROOT} or a path under it (relative paths are relative to ${WORKSPACE_ROOT})`,
    );
  }
  return clean;
}

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
export interface AttachedWorkspace {
  workspaceId: string;
  /** The workspace's state directory on the host. */
  dir: string;
  engine: Engine;
  handle: SandboxHandle;
  env: Record<string, string>;
  user?: { uid: number; gid: number };
  /** pyro's cache (where the static sandbox init is found or built). */
  cacheDir: string;
  /** Names of the workspace's secrets (for secret_env and the supervisor's redaction). */
  secretNames: string[];
  /** Their values (read back once per process), to redact what pyro writes itself. */
  secretValues: () => Promise<SecretValue[]>;
}

export class WorkspaceManager {
  private readonly records: RecordStore<WorkspaceRecord>;
  /** stop/start/pause/resume (lifecycle.ts), over this manager's records and engines. */
  readonly lifecycle: WorkspaceLifecycle<WorkspaceRecord>;

  constructor(private readonly d: RuntimeDeps) {
    this.records = new RecordStore<WorkspaceRecord>({
      root: d.paths.workspacesDir,
      kind: "ws",
      file: "workspace.json",
      // A removal killed before its disk was unmounted is finished by delete's own steps only.
      keepRemoving: (dir) => isMounted(join(dir, "files")),
      idOf: (r) => r.workspace_id,
      notFound: (id) =>
        new PyroError("not_found", `no workspace with id ${id}`, [
          "list workspaces with ",
          { op: "workspace_list" },
        ]),
      unreadable: (id, why) =>
        new PyroError("invalid_state", `workspace ${id} is damaged (${why})`, [
          "delete it with ",
          { op: "workspace_delete", args: { workspace_id: id } },
          " (its sandbox, if any, is found and removed too)",
        ]),
      schema: WorkspaceRecordSchema,
      check: (id, dir, rec) =>
        rec.workspace_id !== id
          ? `workspace_id ${JSON.stringify(rec.workspace_id)} is not ${id}`
          : handleProblem(id, dir, rec.handle, {
              sandboxDir: join(dir, "sandbox"),
              workspaceDir: join(dir, "files"),
            }),
    });
    this.lifecycle = new WorkspaceLifecycle<WorkspaceRecord>({
      records: this.records,
      dir: (id) => this.dir(id),
      engineFor: (r) => this.engineFor(r),
      spec: (r, restart) => this.sandboxSpec(r, restart),
      expireIfDue: (r) => this.expireIfDue(r),
      markActive: (r, at) => this.markActive(r, at),
    });
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

  /**
   * A workspace's id from its id or its name: what every workspace reference input accepts
   * (`invoke` calls this for each one, operations/refs.ts). Names belong to a tenant
   * (`CallContext.tenant`, the remote token of `pyro mcp serve --http`; undefined for local
   * callers, whose names are those of untenanted workspaces): a name is looked up among that
   * tenant's workspaces only, so another tenant's name is "no workspace named …" exactly like
   * an unknown one. `tenant` is a required parameter so no caller can forget it. Anything
   * that is not a name comes back unchanged, for checkId to refuse (and ids are checked
   * against the tenant by src/remote/tenancy.ts).
   */
  async resolveId(idOrName: string, tenant: string | undefined): Promise<string> {
    if (isValidId("ws", idOrName) || !looksLikeName(idOrName)) return idOrName;
    const ids = await this.idsNamed(idOrName, tenant);
    if (ids.length === 1) return ids[0]!;
    if (ids.length === 0)
      throw new PyroError("not_found", `no workspace named ${JSON.stringify(idOrName)}`, [
        "list workspaces (with their names) with ",
        { op: "workspace_list" },
      ]);
    throw new PyroError(
      "invalid_argument",
      `${ids.length} workspaces are named ${JSON.stringify(idOrName)} (${ids.join(", ")})`,
      "use the workspace id",
    );
  }

  /** The live workspaces of one tenant's namespace (undefined: the untenanted ones) with this name. */
  private async idsNamed(name: string, tenant: string | undefined, except?: string): Promise<string[]> {
    const ids: string[] = [];
    for await (const e of this.records.entries())
      if (e.rec?.name === name && e.rec.tenant === tenant && e.id !== except && e.rec.state !== "expired")
        ids.push(e.id);
    return ids;
  }

  /**
   * Names are unique among one tenant's workspaces (expired tombstones aside): two tenants may
   * each have a `main`, and a taken name tells nobody about another tenant's workspaces.
   */
  private async checkNameFree(name: string, tenant: string | undefined, self?: string): Promise<void> {
    const taken = await this.idsNamed(name, tenant, self);
    if (taken.length)
      throw new PyroError(
        "invalid_argument",
        `the name ${JSON.stringify(name)} is taken by workspace ${taken[0]}`,
        [
          "choose another name, or rename that one with ",
          { op: "workspace_update", args: { workspace_id: taken[0]! } },
        ],
      );
  }

  private dir(id: string): string {
    return this.records.dir(id);
  }

  private engineFor(rec: WorkspaceRecord): Engine {
    const e = engineByName(rec.engine, this.d.paths, this.d.env);
    if (!e) throw new PyroError("engine_unavailable", `engine ${rec.engine} is not available in this build`);
    return e;
  }

  async create(input: WorkspaceCreateInputT, ctx: CallContext = {}): Promise<WorkspaceStatusResultT> {
    const engine = await selectEngine(this.d.paths, { allowHostCompat: input.allow_host_compat }, this.d.env);
    // Everything about the seed is checked before anything is written.
    const seedPath =
      input.seed_path !== undefined ? await resolveHostPath(input.seed_path, "seed_path", ctx) : undefined;
    // Secrets are read (files, variables) before anything exists, and held in memory only.
    if (input.secrets?.length && engine.name === "host")
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

  /** For snapshots.ts (snapshot, reset, fork): the record store, deps and helpers. */
  internals() {
    return {
      records: this.records,
      deps: this.d,
      dir: (id: string) => this.dir(id),
      engineFor: (r: WorkspaceRecord) => this.engineFor(r),
      view: (r: WorkspaceRecord) => this.view(r),
      usable: (id: string) => this.usableRecord(id),
      spec: (r: WorkspaceRecord, restart: boolean) => this.sandboxSpec(r, restart),
    };
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
    await ensureCreateSpace(this.d, input.disk_mib, engine.name === "gvisor");
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
          await createDisk(dir, filesDir, input.disk_mib, engine.name === "gvisor", this.d.env)
        ).disk_enforced;
      }
      // A fork's files are written while its sandbox starts, like the baseline below.
      if (fill) {
        filling = fill.into(filesDir, ctx.signal);
        filling.catch(() => undefined);
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
      baseline = fill ? fill.baseline(dir) : baselineBeforeStart(dir, engine.name, ctx.signal);
      baseline.catch(() => undefined);
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
      if (!fill) await baselineAfterStart(dir, engine.name);
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
      if (handle) await engine.destroy(handle).catch(() => undefined);
      else await engine.removeOrphan(id, sandboxDir).catch(() => undefined);
      await baseline?.catch(() => undefined);
      await filling?.catch(() => undefined);
      await removeWorkspaceDir(dir).catch(() => undefined);
      throw toPyroError(e);
    }
  }

  /** A record whose creator died before it finished: nothing usable, found and removable. */
  private interrupted(r: WorkspaceRecord): boolean {
    return r.state === "creating" && !ownerAlive(r.owner);
  }

  /** Past its TTL: the sandbox and files go, a tombstone record stays until delete. */
  private expireIfDue(rec: WorkspaceRecord): Promise<WorkspaceRecord> {
    return this.records.expireIfDue(rec, (r) => this.expire(r));
  }

  private async expire(r: WorkspaceRecord): Promise<void> {
    if (r.state === "expired") return;
    if (r.handle)
      await this.engineFor(r)
        .destroy(r.handle)
        .catch(() => undefined);
    await removeDisk(this.dir(r.workspace_id), join(this.dir(r.workspace_id), "files"));
    await rm(baselineDir(this.dir(r.workspace_id)), { recursive: true, force: true });
    await rm(join(this.dir(r.workspace_id), "snapshots"), { recursive: true, force: true });
    await rm(pauseDir(this.dir(r.workspace_id)), { recursive: true, force: true });
    r.handle = null;
    r.state = "expired";
    r.reason = `ttl elapsed at ${r.expires_at}; sandbox and files removed`;
  }

  /** A workspace that can take commands, or a clear error saying why not. */
  private async usable(id: string): Promise<WorkspaceRecord> {
    // A snapshot or reset whose pyro process died is finished first (snapshots.ts).
    await recoverInterruptedOp(this, id);
    return this.usableRecord(id);
  }

  private async usableRecord(id: string): Promise<WorkspaceRecord> {
    const rec = await this.expireIfDue(await this.records.load(id));
    if (rec.state === "expired") {
      throw new PyroError("expired", `workspace ${id} expired (${rec.reason})`, [
        "delete it with ",
        { op: "workspace_delete", args: { workspace_id: id } },
        " and create a new one",
      ]);
    }
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
    // The command as typed may hold a value too; redacted once the values are known.
    let command = displayCommand(input.command);
    let secrets: SecretValue[] = [];
    const cmd = await startCommand(this.dir(rec.workspace_id), input.max_output_bytes, ctx);
    const { recorder } = cmd;
    let out: Awaited<ReturnType<Engine["exec"]>>;
    // An image's Env and User apply; its WorkingDir does not: workspaces work in /workspace.
    const runtime = await this.d.envs.runtimeConfig(rec.environment);
    // Every byte is redacted before the recorder logs it or a face sees it.
    const sinks = deferredRedactingSinks(secretsRead, recorder);
    try {
      out = await this.engineFor(rec).exec(asHandle(rec.handle!), {
        argv: withSecretEnv(toArgv(input.command), secretEnv),
        cwd: WORKSPACE_ROOT,
        ...(Object.keys(runtime.env).length ? { env: runtime.env } : {}),
        ...userOf(runtime),
        timeoutMs: input.timeout_seconds * 1000,
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        ...streamInto(recorder),
        onStdout: sinks.onStdout,
        onStderr: sinks.onStderr,
      });
    } catch (e) {
      secrets = await sinks.done().catch(() => []);
      command = redactText(secrets, command);
      const pe = redactError(secrets, toPyroError(e)) as PyroError;
      if (pe.code === "sandbox_dead") await this.markFailed(rec.workspace_id, pe.message);
      // An interrupted command still ran (and may have changed files): the history says so,
      // with the output it had produced.
      if (pe.code === "cancelled") {
        // Into the log only: the caller is told by the error itself.
        recorder.stderr.push(Buffer.from(`[pyro] ${pe.message}\n`));
        recorder.close();
        await appendCommandLog(this.records, rec.workspace_id, cmd, command, CANCELLED_OUTCOME, t0)
          .then((l) => this.pushExpiry(l.rec))
          .catch(() => undefined);
      } else await discardCommand(cmd);
      throw pe;
    }
    try {
      secrets = await sinks.done();
    } catch (e) {
      // The command ran, but its output cannot be redacted: none of it is kept or shown.
      await discardCommand(cmd);
      throw e;
    }
    command = redactText(secrets, command);
    out = redactOutcome(secrets, out);
    finishRecording(recorder, out);
    const logged = await appendCommandLog(this.records, rec.workspace_id, cmd, command, out, t0);
    await this.pushExpiry(logged.rec);
    // A command that failed may have met a disk gone read-only (the host filled up): found
    // now, the next call says so with the way back instead of failing in the guest again.
    if (out.exitCode !== 0) await this.diskChecked(logged.rec).catch(() => undefined);
    return execResult(rec, cmd, logged, command, out, input.max_output_bytes);
  }

  async syncPush(input: WorkspaceSyncInputT, ctx: CallContext = {}): Promise<WorkspaceSyncResultT> {
    const destination = resolveWorkspaceDest(input.dest);
    const rec = await this.usable(input.workspace_id);
    const srcPath = await resolveHostPath(input.source_path, "source_path", ctx);
    const src = await classifySource(srcPath, "source path");
    const stats = await inspectSource(src, ctx.signal);
    ctx.onProgress?.({ message: `copying ${stats.entry_count} entries into ${destination}` });
    // The destination is made and resolved inside the sandbox first (a guest symlink out of
    // /workspace is refused), and the archive goes to its real location. Host-compat has
    // no sandbox: its /workspace is a host directory the operator's own commands write.
    let real = destination;
    try {
      if (rec.engine !== "host")
        real = await pushDestination(
          new Guest(this.engineFor(rec), asHandle(rec.handle!), rec.workspace_id, (why) =>
            this.markFailed(rec.workspace_id, why),
          ),
          destination,
          ctx.signal,
        );
      await this.engineFor(rec).putArchive(asHandle(rec.handle!), tarStreamOf(src), real);
    } catch (e) {
      const pe = toPyroError(e);
      if (pe.code === "sandbox_dead") await this.markFailed(rec.workspace_id, pe.message);
      throw pe;
    }
    await this.touch(rec.workspace_id, Date.now());
    if (input.update_baseline)
      await updateBaseline(this.dir(rec.workspace_id), relToWorkspace(real), tarStreamOf(src));
    return {
      workspace_id: rec.workspace_id,
      source_path: src.path,
      mode: src.kind,
      destination,
      ...stats,
      baseline_updated: input.update_baseline,
    };
  }

  /**
   * A running workspace's sandbox for the capability modules (files, diff, export, summary),
   * with its directory on the host (baseline, exports log).
   */
  async open(id: string): Promise<{ guest: Guest; dir: string; baseline: string }> {
    const rec = await this.usable(id);
    // The file tools run shell scripts against /workspace inside the sandbox; a host-compat
    // "sandbox" is the host itself, where /workspace would be the host's own directory.
    if (rec.engine === "host")
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
            .catch(() => undefined)
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
      .catch(() => undefined);
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
    if (e.rec && (await recoverInterruptedOp(this, id).catch(() => false))) e = await this.records.read(id);
    if (e.problem === "missing" && !(await stat(e.dir).catch(() => undefined))) throw this.notFound(id);
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
  private async current(rec: WorkspaceRecord): Promise<WorkspaceRecord> {
    const r =
      (await this.records.expireIfDueIfFree(rec, (x) => this.expire(x))) ??
      ({ ...rec, state: "expired", reason: `ttl elapsed at ${rec.expires_at}` } as WorkspaceRecord);
    if (this.interrupted(r)) {
      return {
        ...r,
        state: "failed",
        reason: `interrupted: the pyro process creating it (pid ${r.owner?.pid}) died; delete it`,
      };
    }
    if (interruptedTransition(r))
      return {
        ...r,
        state: "stopped",
        reason: `interrupted: the pyro process ${r.state === "stopping" ? "stopping" : "starting"} it (pid ${r.owner?.pid}) died; start it again or delete it`,
      };
    if (r.state !== "running" || !r.handle) return r;
    const i = await this.engineFor(r).inspect(asHandle(r.handle));
    if (i.state === "running") return this.diskChecked(r);
    return this.failIfFree(r, i.reason ?? `sandbox ${i.state}`);
  }

  /**
   * `r` as failed for `reason`: recorded unless another operation holds the record (a view
   * never waits behind it), shown either way.
   */
  private async failIfFree(r: WorkspaceRecord, reason: string): Promise<WorkspaceRecord> {
    const failed = await this.records.updateIfFree(r.workspace_id, (x) => {
      if (x.state === "running") {
        x.state = "failed";
        x.reason = reason;
      }
    });
    return failed ?? { ...r, state: "failed", reason };
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
      const failed = await this.failIfFree(r, reason).catch(() => undefined);
      if (failed) return failed;
    }
    return { ...r, state: "failed", reason };
  }

  /**
   * The most recent `limit` commands, oldest first. Output only on request, within the
   * budget shared by all entries returned.
   */
  async logs(input: WorkspaceLogsInputT): Promise<WorkspaceLogsResultT> {
    const id = input.workspace_id;
    const rec = await this.records.load(id);
    const dir = join(this.dir(id), "commands");
    const names = (await readdir(dir).catch(() => [] as string[]))
      .filter((n) => /^\d{8}\.json$/.test(n))
      .sort()
      .slice(-input.limit);
    const commands: CommandLogEntryT[] = [];
    const perEntry = Math.max(64, Math.floor(input.max_output_bytes / Math.max(1, names.length)));
    for (const n of names) {
      const e = await readJson<StoredLogEntry & LegacyOutput>(join(dir, n)).catch(() => undefined);
      if (!e) continue;
      const outputId = e.output_id ?? workspaceOutputId(id, e.sequence);
      const snap = async (s: StreamName) =>
        typeof e[s] === "string"
          ? snapshotOf(Buffer.from(e[s]))
          : await fileSnapshot(workspaceOutputPath(dir, e.sequence, s), perEntry);
      const [out, err] = input.include_output
        ? [await snap("stdout"), await snap("stderr")]
        : [undefined, undefined];
      const view = out && err ? outputFields(out, err, perEntry, outputId) : undefined;
      commands.push({
        sequence: e.sequence,
        command: e.command,
        exit_code: e.exit_code,
        timed_out: e.timed_out,
        started_at: e.started_at,
        duration_ms: e.duration_ms,
        stdout_bytes: e.stdout_bytes ?? Buffer.byteLength(e.stdout ?? ""),
        stderr_bytes: e.stderr_bytes ?? Buffer.byteLength(e.stderr ?? ""),
        output_id: outputId,
        ...(view
          ? {
              stdout: view.stdout,
              stderr: view.stderr,
              stdout_truncated: view.stdout_truncated,
              stderr_truncated: view.stderr_truncated,
              stdout_encoding: view.stdout_encoding,
              stderr_encoding: view.stderr_encoding,
              stdout_omitted_bytes: view.stdout_omitted_bytes,
              stderr_omitted_bytes: view.stderr_omitted_bytes,
            }
          : {}),
      });
    }
    return { workspace_id: id, command_count: rec.command_count, commands };
  }

  async delete(id: string): Promise<{ workspace_id: string; deleted: boolean }> {
    checkId("ws", id);
    const dir = this.dir(id);
    if (!(await stat(dir).catch(() => undefined))) {
      throw new PyroError("not_found", `no workspace with id ${id} (already deleted?)`, [
        "list workspaces with ",
        { op: "workspace_list" },
      ]);
    }
    await this.records.locked(id, async () => {
      const e = await this.records.read(id);
      if (e.rec?.state === "creating" && ownerAlive(e.rec.owner)) {
        throw new PyroError(
          "invalid_state",
          `workspace ${id} is being created by pyro process ${e.rec.owner?.pid}`,
          "wait for workspace create to return, then delete it",
        );
      }
      await this.removeSandbox(id, e);
      await removeWorkspaceDir(dir);
    });
    secretValuesCache.delete(id);
    await this.records.removeLock(id);
    return { workspace_id: id, deleted: true };
  }

  /**
   * Ends the workspace's sandbox and checks that it is gone: through the handle when the
   * record has one, else (interrupted create, damaged record) by asking every engine that
   * could have made it. Throws rather than let a delete report success over a live sandbox.
   */
  private removeSandbox(id: string, e: RecordEntry<WorkspaceRecord>): Promise<void> {
    return removeRecordSandbox(
      `workspace ${id}`,
      id,
      join(this.dir(id), "sandbox"),
      e.rec,
      this.d.paths,
      this.d.env,
    );
  }

  /** Every workspace (matching every label given), most recently active first. */
  async list(filter: { labels?: Record<string, string> } = {}): Promise<WorkspaceStatusResultT[]> {
    const all = await this.records.list(
      async (rec) => this.view(await this.current(rec)),
      async (e) => ((await stat(e.dir).catch(() => undefined)) ? this.damagedView(e) : undefined),
    );
    return all
      .filter((w) => labelsMatch(w.labels, filter.labels ?? {}))
      .sort(
        (a, b) =>
          b.last_activity_at.localeCompare(a.last_activity_at) ||
          a.workspace_id.localeCompare(b.workspace_id),
      );
  }

  /**
   * Expires workspaces past their TTL and cleans up after creates whose process died.
   * Damaged records are never touched (they may hold a live sandbox's files: only an
   * explicit delete removes them); a directory without any record only once nothing of its
   * sandbox runs and it is old enough not to be a create in progress.
   */
  reap(): Promise<string[]> {
    return this.records.reap(
      async (rec) => {
        // A record another operation holds for longer than REAP_LOCK_WAIT_MS is left for
        // the next reap, rather than stall every record after it.
        if (this.interrupted(rec)) {
          const done = await this.records.lockedIfFree(
            rec.workspace_id,
            async () => {
              await this.removeSandbox(rec.workspace_id, {
                id: rec.workspace_id,
                dir: this.dir(rec.workspace_id),
                rec,
              });
              await removeWorkspaceDir(this.dir(rec.workspace_id));
            },
            REAP_LOCK_WAIT_MS,
          );
          if (!done) return false;
          await this.records.removeLock(rec.workspace_id);
          return true;
        }
        if (rec.state === "expired" || !isPast(rec.expires_at)) return false;
        return (
          (await this.records.expireIfDueIfFree(rec, (x) => this.expire(x), REAP_LOCK_WAIT_MS)) !== undefined
        );
      },
      async (e) => {
        if (e.problem !== "missing") return false;
        const st = await stat(e.dir).catch(() => undefined);
        if (!st || Date.now() - st.mtimeMs <= 10 * 60_000) return false;
        const sandboxDir = join(e.dir, "sandbox");
        for (const engine of allEngines(this.d.paths, this.d.env))
          if (await engine.orphanAlive(e.id, sandboxDir)) return false;
        await removeWorkspaceDir(e.dir);
        return true;
      },
    );
  }

  /** What list and status show for a record that cannot be trusted: enough to find and delete it. */
  private async damagedView(e: RecordEntry<WorkspaceRecord>): Promise<WorkspaceStatusResultT> {
    const st = await stat(e.dir).catch(() => undefined);
    const at = new Date(st?.mtimeMs ?? Date.now()).toISOString();
    return {
      workspace_id: e.id,
      name: null,
      labels: {},
      paused_with_memory: null,
      environment: "unknown",
      state: "damaged",
      reason: `${e.problem === "missing" ? "no record" : e.problem === "damaged" ? e.why : "damaged"}; delete it (its sandbox is found and removed too)`,
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
      environment: r.environment,
      state: r.state,
      reason: r.reason,
      created_at: r.created_at,
      expires_at: r.expires_at,
      vcpu_count: r.vcpu_count,
      mem_mib: r.mem_mib,
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
