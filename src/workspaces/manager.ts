import { mkdir, readdir, rm, stat } from "node:fs/promises";
import { join, posix } from "node:path";
import * as z from "zod";
import { outcomeFields } from "../engines/outcome.js";
import type { Engine, SandboxHandle } from "../engines/types.js";
import { PyroError, toPyroError } from "../errors.js";
import { resolveHostPath } from "../host-paths.js";
import { checkId, newId } from "../ids.js";
import {
  type CommandLogEntryT,
  ExecutionModeSchema,
  LastCommand,
  SeedInfo,
  type WorkspaceCreateInputT,
  type WorkspaceExecInputT,
  type WorkspaceExecResultT,
  type WorkspaceStatusResultT,
  type WorkspaceSyncInputT,
  type WorkspaceSyncResultT,
} from "../operations/schemas.js";
import { displayCommand, toArgv } from "../runtime/command.js";
import { type CallContext, isoPlusSeconds, isPast, nowIso, type RuntimeDeps } from "../runtime/context.js";
import { allEngines, engineByName, selectEngine } from "../runtime/engine-select.js";
import { currentOwner, ownerAlive } from "../runtime/owner.js";
import { type RecordEntry, RecordStore } from "../runtime/record-store.js";
import { asHandle, HandleSchema, handleProblem, OwnerSchema } from "../runtime/sandbox-record.js";
import { readJson, writeJsonAtomic } from "../util/json-store.js";
import { classifySource, importIntoFreshDir, inspectSource, tarStreamOf } from "./archive.js";
import { baselineAfterStart, baselineBeforeStart, baselineDir, updateBaseline } from "./baseline.js";
import { Guest, relToWorkspace } from "./guest.js";

export const WORKSPACE_ROOT = "/workspace";

/**
 * The stored record, validated on every load (see RecordStore). `creating` is written before
 * anything else exists, with the creating process as `owner`, so a sandbox whose creator
 * died at any moment is still found, shown and deleted. Loose: fields a newer pyro added
 * survive a read-modify-write by this one.
 */
const WorkspaceRecordSchema = z.looseObject({
  workspace_id: z.string(),
  environment: z.string(),
  state: z.enum(["creating", "running", "stopped", "expired", "failed"]),
  reason: z.string().nullable(),
  created_at: z.string(),
  expires_at: z.string(),
  vcpu_count: z.number().int(),
  mem_mib: z.number().int(),
  network: z.boolean(),
  engine: z.enum(["firecracker", "qemu", "gvisor", "host"]),
  execution_mode: ExecutionModeSchema,
  handle: HandleSchema.nullable(),
  owner: OwnerSchema.nullable().optional(),
  command_count: z.number().int().nonnegative(),
  last_command: LastCommand.nullable(),
  workspace_seed: SeedInfo,
});
type WorkspaceRecord = z.infer<typeof WorkspaceRecordSchema>;

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
 *   commands/        one JSON file per finished command: the log
 * The lock is held only around record updates, never while a command runs, so two execs
 * on one workspace run side by side and each appends its own log entry.
 */
export class WorkspaceManager {
  private readonly records: RecordStore<WorkspaceRecord>;

  constructor(private readonly d: RuntimeDeps) {
    this.records = new RecordStore<WorkspaceRecord>({
      root: d.paths.workspacesDir,
      kind: "ws",
      file: "workspace.json",
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
    const src = seedPath ? await classifySource(seedPath, "seed path") : undefined;
    const stats = src ? await inspectSource(src, ctx.signal) : { entry_count: 0, bytes_written: 0 };
    const env = await this.d.envs.ensure(input.environment, {
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      onProgress: (p) => ctx.onProgress?.({ message: `${input.environment}: ${p.message}` }),
    });
    await this.d.privateState();
    const id = newId("ws");
    const dir = this.dir(id);
    const filesDir = join(dir, "files");
    const sandboxDir = join(dir, "sandbox");
    // Intent first: the record exists (state `creating`, this process as owner) before any
    // file or sandbox does, so whatever moment this process dies at, list/status/delete and
    // the reaper find what it left.
    const rec: WorkspaceRecord = {
      workspace_id: id,
      environment: input.environment,
      state: "creating",
      reason: null,
      created_at: nowIso(),
      expires_at: isoPlusSeconds(input.ttl_seconds),
      vcpu_count: input.vcpu_count,
      mem_mib: input.mem_mib,
      network: input.network,
      engine: engine.name,
      execution_mode: engine.executionMode,
      handle: null,
      owner: currentOwner(),
      command_count: 0,
      last_command: null,
      workspace_seed: {
        mode: src ? src.kind : "empty",
        seed_path: src ? src.path : null,
        destination: WORKSPACE_ROOT,
        entry_count: stats.entry_count,
        bytes_written: stats.bytes_written,
      },
    };
    let handle: SandboxHandle | undefined;
    let baseline: Promise<void> | undefined;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await this.records.write(id, rec);
      await mkdir(filesDir, { recursive: true });
      if (src) {
        ctx.onProgress?.({ message: `seeding /workspace from ${src.path} (${stats.entry_count} entries)` });
        await importIntoFreshDir(src, filesDir, ctx.signal);
      }
      // The seeded tree is the baseline diff and export --changed-only compare against. It is
      // copied while the sandbox starts: no guest command can run before create returns.
      baseline = baselineBeforeStart(dir, engine.name, ctx.signal);
      baseline.catch(() => undefined);
      ctx.signal?.throwIfAborted();
      ctx.onProgress?.({ message: `starting the ${engine.name} sandbox` });
      handle = await engine.create({
        id,
        environment: input.environment,
        rootfs: env.rootfs,
        sandboxDir,
        workspaceDir: filesDir,
        vcpuCount: input.vcpu_count,
        memMib: input.mem_mib,
        network: input.network,
        expiresAt: rec.expires_at,
      });
      await baseline;
      await baselineAfterStart(dir, engine.name);
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
      await rm(dir, { recursive: true, force: true });
      throw toPyroError(e);
    }
  }

  /** A record whose creator died before it finished: nothing usable, found and removable. */
  private interrupted(r: WorkspaceRecord): boolean {
    return r.state === "creating" && !ownerAlive(r.owner);
  }

  /** Past its TTL: the sandbox and files go, a tombstone record stays until delete. */
  private expireIfDue(rec: WorkspaceRecord): Promise<WorkspaceRecord> {
    return this.records.expireIfDue(rec, async (r) => {
      if (r.state === "expired") return;
      if (r.handle)
        await this.engineFor(r)
          .destroy(r.handle)
          .catch(() => undefined);
      await rm(join(this.dir(r.workspace_id), "files"), { recursive: true, force: true });
      await rm(baselineDir(this.dir(r.workspace_id)), { recursive: true, force: true });
      r.handle = null;
      r.state = "expired";
      r.reason = `ttl elapsed at ${r.expires_at}; sandbox and files removed`;
    });
  }

  /** A workspace that can take commands, or a clear error saying why not. */
  private async usable(id: string): Promise<WorkspaceRecord> {
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
    if (rec.state !== "running" || !rec.handle) {
      throw new PyroError("sandbox_dead", `workspace ${id} is ${rec.state}: ${rec.reason ?? "no sandbox"}`, [
        "delete it with ",
        { op: "workspace_delete", args: { workspace_id: id } },
        " and create a new one",
      ]);
    }
    return rec;
  }

  private async markFailed(id: string, reason: string): Promise<void> {
    await this.records
      .update(id, (r) => {
        if (r.state === "running") {
          r.state = "failed";
          r.reason = reason;
        }
      })
      .catch(() => undefined);
  }

  async exec(input: WorkspaceExecInputT, ctx: CallContext = {}): Promise<WorkspaceExecResultT> {
    const t0 = performance.now();
    const rec = await this.usable(input.workspace_id);
    const started_at = nowIso();
    const command = displayCommand(input.command);
    let out: Awaited<ReturnType<Engine["exec"]>>;
    try {
      out = await this.engineFor(rec).exec(asHandle(rec.handle!), {
        argv: toArgv(input.command),
        cwd: WORKSPACE_ROOT,
        timeoutMs: input.timeout_seconds * 1000,
        ...(ctx.signal ? { signal: ctx.signal } : {}),
      });
    } catch (e) {
      const pe = toPyroError(e);
      if (pe.code === "sandbox_dead") await this.markFailed(rec.workspace_id, pe.message);
      // An interrupted command still ran (and may have changed files): the history says so.
      if (pe.code === "cancelled") {
        const cancelled = {
          exitCode: 130,
          stdout: "",
          stderr: `[pyro] ${pe.message}\n`,
          stdoutTruncated: false,
          stderrTruncated: false,
          timedOut: false,
          execMs: 0,
        };
        await this.appendLog(
          rec.workspace_id,
          command,
          cancelled,
          started_at,
          Math.round(performance.now() - t0),
        ).catch(() => undefined);
      }
      throw pe;
    }
    const duration_ms = Math.round(performance.now() - t0);
    const sequence = await this.appendLog(rec.workspace_id, command, out, started_at, duration_ms);
    return {
      workspace_id: rec.workspace_id,
      sequence,
      environment: rec.environment,
      command,
      ...outcomeFields(out),
      duration_ms,
      boot_ms: 0,
      exec_ms: out.execMs,
      execution_mode: rec.execution_mode,
    };
  }

  /** Appends one finished command to the log under the lock; returns its sequence number. */
  private async appendLog(
    id: string,
    command: string,
    out: Awaited<ReturnType<Engine["exec"]>>,
    started_at: string,
    duration_ms: number,
  ): Promise<number> {
    let sequence = 0;
    await this.records.update(id, async (r) => {
      sequence = r.command_count + 1;
      const entry: CommandLogEntryT = {
        sequence,
        command,
        ...outcomeFields(out),
        started_at,
        duration_ms,
      };
      await writeJsonAtomic(
        join(this.dir(id), "commands", `${String(sequence).padStart(8, "0")}.json`),
        entry,
      );
      r.command_count = sequence;
      r.last_command = { sequence, command, exit_code: out.exitCode, started_at, duration_ms };
    });
    return sequence;
  }

  async syncPush(input: WorkspaceSyncInputT, ctx: CallContext = {}): Promise<WorkspaceSyncResultT> {
    const destination = resolveWorkspaceDest(input.dest);
    const rec = await this.usable(input.workspace_id);
    const srcPath = await resolveHostPath(input.source_path, "source_path", ctx);
    const src = await classifySource(srcPath, "source path");
    const stats = await inspectSource(src, ctx.signal);
    ctx.onProgress?.({ message: `copying ${stats.entry_count} entries into ${destination}` });
    try {
      await this.engineFor(rec).putArchive(asHandle(rec.handle!), tarStreamOf(src), destination);
    } catch (e) {
      const pe = toPyroError(e);
      if (pe.code === "sandbox_dead") await this.markFailed(rec.workspace_id, pe.message);
      throw pe;
    }
    if (input.update_baseline)
      await updateBaseline(this.dir(rec.workspace_id), relToWorkspace(destination), tarStreamOf(src));
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

  async status(id: string): Promise<WorkspaceStatusResultT> {
    const e = await this.records.read(checkId("ws", id));
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

  /** The record brought up to date: expired past its TTL, failed if its sandbox is gone. */
  private async current(rec: WorkspaceRecord): Promise<WorkspaceRecord> {
    const r = await this.expireIfDue(rec);
    if (this.interrupted(r)) {
      return {
        ...r,
        state: "failed",
        reason: `interrupted: the pyro process creating it (pid ${r.owner?.pid}) died; delete it`,
      };
    }
    if (r.state !== "running" || !r.handle) return r;
    const i = await this.engineFor(r).inspect(asHandle(r.handle));
    if (i.state === "running") return r;
    await this.markFailed(r.workspace_id, i.reason ?? `sandbox ${i.state}`);
    return this.records.load(r.workspace_id);
  }

  async logs(id: string): Promise<{ workspace_id: string; commands: CommandLogEntryT[] }> {
    await this.records.load(id);
    const dir = join(this.dir(id), "commands");
    const names = (await readdir(dir).catch(() => [] as string[]))
      .filter((n) => /^\d{8}\.json$/.test(n))
      .sort();
    const commands: CommandLogEntryT[] = [];
    for (const n of names) {
      const e = await readJson<CommandLogEntryT>(join(dir, n)).catch(() => undefined);
      if (e) commands.push(e);
    }
    return { workspace_id: id, commands };
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
      await rm(dir, { recursive: true, force: true });
    });
    await this.records.removeLock(id);
    return { workspace_id: id, deleted: true };
  }

  /**
   * Ends the workspace's sandbox and checks that it is gone: through the handle when the
   * record has one, else (interrupted create, damaged record) by asking every engine that
   * could have made it. Throws rather than let a delete report success over a live sandbox.
   */
  private async removeSandbox(id: string, e: RecordEntry<WorkspaceRecord>): Promise<void> {
    const sandboxDir = join(this.dir(id), "sandbox");
    if (e.rec?.handle) {
      const engine = this.engineFor(e.rec);
      const handle = asHandle(e.rec.handle);
      await engine.destroy(handle);
      const after = await engine.inspect(handle).catch(() => undefined);
      if (after?.state === "running")
        throw new PyroError("engine_failure", `the sandbox of workspace ${id} is still running after delete`);
    }
    const known = e.rec ? engineByName(e.rec.engine, this.d.paths, this.d.env) : undefined;
    for (const engine of known ? [known] : allEngines(this.d.paths, this.d.env)) {
      await engine.removeOrphan(id, sandboxDir);
    }
  }

  list(): Promise<WorkspaceStatusResultT[]> {
    return this.records.list(
      async (rec) => this.view(await this.current(rec)),
      async (e) => ((await stat(e.dir).catch(() => undefined)) ? this.damagedView(e) : undefined),
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
        if (this.interrupted(rec)) {
          await this.records.locked(rec.workspace_id, async () => {
            await this.removeSandbox(rec.workspace_id, {
              id: rec.workspace_id,
              dir: this.dir(rec.workspace_id),
              rec,
            });
            await rm(this.dir(rec.workspace_id), { recursive: true, force: true });
          });
          await this.records.removeLock(rec.workspace_id);
          return true;
        }
        if (rec.state === "expired" || !isPast(rec.expires_at)) return false;
        await this.expireIfDue(rec);
        return true;
      },
      async (e) => {
        if (e.problem !== "missing") return false;
        const st = await stat(e.dir).catch(() => undefined);
        if (!st || Date.now() - st.mtimeMs <= 10 * 60_000) return false;
        const sandboxDir = join(e.dir, "sandbox");
        for (const engine of allEngines(this.d.paths, this.d.env))
          if (await engine.orphanAlive(e.id, sandboxDir)) return false;
        await rm(e.dir, { recursive: true, force: true });
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
      environment: "unknown",
      state: "damaged",
      reason: `${e.problem === "missing" ? "no record" : e.problem === "damaged" ? e.why : "damaged"}; delete it (its sandbox is found and removed too)`,
      created_at: at,
      expires_at: at,
      vcpu_count: 0,
      mem_mib: 0,
      network: false,
      execution_mode: null,
      command_count: 0,
      last_command: null,
      workspace_seed: {
        mode: "empty",
        seed_path: null,
        destination: WORKSPACE_ROOT,
        entry_count: 0,
        bytes_written: 0,
      },
    };
  }

  private view(r: WorkspaceRecord): WorkspaceStatusResultT {
    return {
      workspace_id: r.workspace_id,
      environment: r.environment,
      state: r.state,
      reason: r.reason,
      created_at: r.created_at,
      expires_at: r.expires_at,
      vcpu_count: r.vcpu_count,
      mem_mib: r.mem_mib,
      network: r.network,
      execution_mode: r.execution_mode,
      command_count: r.command_count,
      last_command: r.last_command,
      workspace_seed: r.workspace_seed,
    };
  }
}
