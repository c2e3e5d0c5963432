import { mkdir, readdir, rm, stat } from "node:fs/promises";
import { join, posix, resolve } from "node:path";
import { outcomeFields } from "../engines/outcome.js";
import type { Engine, EngineName, ExecutionMode, SandboxHandle } from "../engines/types.js";
import { chownTree, userOf } from "../environments/runtime-config.js";
import { PyroError, toPyroError } from "../errors.js";
import { checkId, newId } from "../ids.js";
import type {
  CommandLogEntryT,
  SeedInfoT,
  WorkspaceCreateInputT,
  WorkspaceExecInputT,
  WorkspaceExecResultT,
  WorkspaceStatusResultT,
  WorkspaceSyncInputT,
  WorkspaceSyncResultT,
} from "../operations/schemas.js";
import { displayCommand, toArgv } from "../runtime/command.js";
import { type CallContext, isoPlusSeconds, nowIso, type RuntimeDeps } from "../runtime/context.js";
import { engineByName, selectEngine } from "../runtime/engine-select.js";
import { RecordStore } from "../runtime/record-store.js";
import { readJson, writeJsonAtomic } from "../util/json-store.js";
import { classifySource, importIntoFreshDir, inspectSource, tarStreamOf } from "./archive.js";

export const WORKSPACE_ROOT = "/workspace";

interface WorkspaceRecord {
  workspace_id: string;
  environment: string;
  state: "running" | "stopped" | "expired" | "failed";
  reason: string | null;
  created_at: string;
  expires_at: string;
  vcpu_count: number;
  mem_mib: number;
  network: boolean;
  engine: EngineName;
  execution_mode: ExecutionMode;
  handle: SandboxHandle | null;
  command_count: number;
  last_command: WorkspaceStatusResultT["last_command"];
  workspace_seed: SeedInfoT;
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
        new PyroError(
          "not_found",
          `no workspace with id ${id}`,
          "list workspaces with `pyro workspace list`",
        ),
      unreadable: (id, e) =>
        new PyroError(
          "invalid_state",
          `workspace ${id} has an unreadable record: ${e.message}`,
          `delete it with \`pyro workspace delete ${id}\``,
        ),
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
      input.seed_path !== undefined ? resolve(ctx.cwd ?? process.cwd(), input.seed_path) : undefined;
    const src = seedPath ? await classifySource(seedPath, "seed path") : undefined;
    const stats = src ? await inspectSource(src) : { entry_count: 0, bytes_written: 0 };
    const env = await this.d.envs.ensure(input.environment, {
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      onProgress: (p) => ctx.onProgress?.({ message: `${input.environment}: ${p.message}` }),
    });
    const id = newId("ws");
    const dir = this.dir(id);
    const filesDir = join(dir, "files");
    let handle: SandboxHandle | undefined;
    try {
      await mkdir(filesDir, { recursive: true });
      if (src) {
        ctx.onProgress?.({ message: `seeding /workspace from ${src.path} (${stats.entry_count} entries)` });
        await importIntoFreshDir(src, filesDir);
      }
      // An image that runs as a non-root User gets a /workspace it can write.
      if (env.runtime.uid !== 0) await chownTree(filesDir, env.runtime.uid, env.runtime.gid);
      ctx.signal?.throwIfAborted();
      ctx.onProgress?.({ message: `starting the ${engine.name} sandbox` });
      handle = await engine.create({
        id,
        environment: input.environment,
        rootfs: env.rootfs,
        sandboxDir: join(dir, "sandbox"),
        workspaceDir: filesDir,
        vcpuCount: input.vcpu_count,
        memMib: input.mem_mib,
        network: input.network,
        ...userOf(env.runtime),
      });
      ctx.signal?.throwIfAborted();
      const rec: WorkspaceRecord = {
        workspace_id: id,
        environment: input.environment,
        state: "running",
        reason: null,
        created_at: nowIso(),
        expires_at: isoPlusSeconds(input.ttl_seconds),
        vcpu_count: input.vcpu_count,
        mem_mib: input.mem_mib,
        network: input.network,
        engine: engine.name,
        execution_mode: engine.executionMode,
        handle,
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
      await this.records.write(id, rec);
      return this.view(rec);
    } catch (e) {
      if (handle) await engine.destroy(handle).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
      throw toPyroError(e);
    }
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
      r.handle = null;
      r.state = "expired";
      r.reason = `ttl elapsed at ${r.expires_at}; sandbox and files removed`;
    });
  }

  /** A workspace that can take commands, or a clear error saying why not. */
  private async usable(id: string): Promise<WorkspaceRecord> {
    const rec = await this.expireIfDue(await this.records.load(id));
    if (rec.state === "expired") {
      throw new PyroError(
        "expired",
        `workspace ${id} expired (${rec.reason})`,
        `delete it with \`pyro workspace delete ${id}\` and create a new one`,
      );
    }
    if (rec.state !== "running" || !rec.handle) {
      throw new PyroError(
        "sandbox_dead",
        `workspace ${id} is ${rec.state}: ${rec.reason ?? "no sandbox"}`,
        `delete it with \`pyro workspace delete ${id}\` and create a new one`,
      );
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
    // An image's Env and User apply; its WorkingDir does not: workspaces work in /workspace.
    const runtime = await this.d.envs.runtimeConfig(rec.environment);
    try {
      out = await this.engineFor(rec).exec(rec.handle!, {
        argv: toArgv(input.command),
        cwd: WORKSPACE_ROOT,
        ...(Object.keys(runtime.env).length ? { env: runtime.env } : {}),
        ...userOf(runtime),
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
    const srcPath = resolve(ctx.cwd ?? process.cwd(), input.source_path);
    const src = await classifySource(srcPath, "source path");
    const stats = await inspectSource(src);
    ctx.onProgress?.({ message: `copying ${stats.entry_count} entries into ${destination}` });
    try {
      await this.engineFor(rec).putArchive(rec.handle!, tarStreamOf(src), destination);
    } catch (e) {
      const pe = toPyroError(e);
      if (pe.code === "sandbox_dead") await this.markFailed(rec.workspace_id, pe.message);
      throw pe;
    }
    return { workspace_id: rec.workspace_id, source_path: src.path, mode: src.kind, destination, ...stats };
  }

  async status(id: string): Promise<WorkspaceStatusResultT> {
    return this.view(await this.current(await this.records.load(id)));
  }

  /** The record brought up to date: expired past its TTL, failed if its sandbox is gone. */
  private async current(rec: WorkspaceRecord): Promise<WorkspaceRecord> {
    const r = await this.expireIfDue(rec);
    if (r.state !== "running" || !r.handle) return r;
    const i = await this.engineFor(r).inspect(r.handle);
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
      throw new PyroError(
        "not_found",
        `no workspace with id ${id} (already deleted?)`,
        "list workspaces with `pyro workspace list`",
      );
    }
    await this.records.locked(id, async () => {
      const rec = await readJson<WorkspaceRecord>(this.records.path(id)).catch(() => undefined);
      if (rec?.handle) await this.engineFor(rec).destroy(rec.handle);
      await rm(dir, { recursive: true, force: true });
    });
    await this.records.removeLock(id);
    return { workspace_id: id, deleted: true };
  }

  list(): Promise<WorkspaceStatusResultT[]> {
    return this.records.list(async (rec) => this.view(await this.current(rec)));
  }

  /** Expires workspaces past their TTL; removes directories a crashed create left without a record. */
  reap(): Promise<string[]> {
    return this.records.reap(
      (rec) => this.expireIfDue(rec),
      async (_id, dir) => {
        const st = await stat(dir).catch(() => undefined);
        if (!st || Date.now() - st.mtimeMs <= 10 * 60_000) return false;
        await rm(dir, { recursive: true, force: true });
        return true;
      },
    );
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
