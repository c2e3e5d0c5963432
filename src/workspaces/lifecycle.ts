import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { PyroError, toPyroError } from "../core/errors.js";
import { checkId } from "../core/ids.js";
import type { Engine, SandboxHandle, SandboxSpec } from "../engines/types.js";
import { diskFault, ensureDiskMounted } from "../sandbox/disk.js";
import { currentOwner, type Owner, ownerAlive } from "../sandbox/owner.js";
import type { RecordStore } from "../sandbox/record-store.js";
import { asHandle } from "../sandbox/sandbox-record.js";
import { ignore } from "../util/best-effort.js";

/**
 * Workspace lifecycle: stop/start (the sandbox ends and a fresh one starts on the same
 * files) and memory-level pause/resume (the sandbox's memory and processes are saved and
 * brought back where the engine can; otherwise stop/start semantics, said so).
 *
 * Crash safety, as for create: the intent is written first (`stopping` / `starting` with this
 * process as owner), then the engine acts, then the record says what is. A record left in
 * `stopping` or `starting` by a dead process reads as `stopped` (with the reason), and
 * `start` deals with whatever the dead process left: it ends any sandbox of the workspace,
 * recorded or not, before it boots a new one. `delete` works in every state.
 *
 * `startSandbox` is the "restart the sandbox on the same files" primitive: reset can use it.
 */

/** The parts of a workspace record this module reads and writes. */
export interface LifecycleRecord {
  workspace_id: string;
  state: string;
  reason: string | null;
  expires_at: string;
  handle: unknown;
  owner?: Owner | null | undefined;
  engine: string;
  /** Set by pause: where its image is and whether it holds the sandbox's memory. */
  pause?: { with_memory: boolean; at: string } | null | undefined;
  /** Shells and services ended by the last stop (said by the next start). */
  ended_sessions?: { shells: string[]; services: string[] } | null | undefined;
}

/** What the manager lends this module (it owns records, engines and specs). */
export interface LifecycleHost<R extends LifecycleRecord> {
  records: RecordStore<R>;
  dir(id: string): string;
  engineFor(rec: R): Engine;
  /** The sandbox spec of the workspace, as create made it (`restart`: on its kept files). */
  spec(rec: R, restart: boolean): Promise<SandboxSpec>;
  /** The record expired if past its TTL (sandbox and files removed). */
  expireIfDue(rec: R): Promise<R>;
  /** Activity now: moves the idle expiry (idle TTL counts from a stop or pause too). */
  markActive(rec: R, at: number): void;
}

export interface LifecycleOutcome {
  /** What happened, in one sentence for the result. */
  detail: string;
  ended_shells: string[];
  ended_services: string[];
  /** pause/resume: whether the memory (running processes) was saved / brought back. */
  paused_with_memory: boolean | null;
  resumed_with_memory: boolean | null;
}

const none = (detail: string): LifecycleOutcome => ({
  detail,
  ended_shells: [],
  ended_services: [],
  paused_with_memory: null,
  resumed_with_memory: null,
});

/** A record in the middle of a stop/start/pause whose pyro process died. */
export function interruptedTransition(r: LifecycleRecord): boolean {
  return (r.state === "stopping" || r.state === "starting") && !ownerAlive(r.owner ?? null);
}

/** The image of a memory-level pause (outside sandbox/: gVisor's destroy removes that). */
export function pauseDir(wsDir: string): string {
  return join(wsDir, "paused");
}

async function sessionNames(wsDir: string, kind: "shells" | "services"): Promise<string[]> {
  return (await readdir(join(wsDir, kind)).catch(() => [] as string[]))
    .filter((n) => n.endsWith(".json"))
    .map((n) => n.slice(0, -5))
    .sort();
}

/** Forgets the shells and services of a sandbox that is gone (their records said running). */
async function endSessions(wsDir: string): Promise<{ shells: string[]; services: string[] }> {
  const shells = await sessionNames(wsDir, "shells");
  const services = await sessionNames(wsDir, "services");
  for (const kind of ["shells", "services"]) await rm(join(wsDir, kind), { recursive: true, force: true });
  return { shells, services };
}

/**
 * Ends the sandbox of a workspace (recorded or left by a dead process) and frees its memory,
 * keeping /workspace: the engine's `halt` where it has one (QEMU keeps its disk), else
 * `destroy` (gVisor: /workspace is the host's files/, which destroy does not touch).
 */
export async function haltSandbox(
  engine: Engine,
  id: string,
  sandboxDir: string,
  handle: unknown,
): Promise<void> {
  if (handle) {
    const h = asHandle(handle as Parameters<typeof asHandle>[0]);
    if (engine.halt) await engine.halt(h);
    else await engine.destroy(h);
  }
  // A sandbox a killed start created before its handle was written.
  await engine.removeOrphan(id, sandboxDir);
}

/**
 * Ends a workspace's sandbox for good (stop, or a pause that cannot keep memory): the sandbox,
 * its shells and services, and any saved memory; returns the sessions it ended.
 */
async function haltAndEnd(
  engine: Engine,
  rec: LifecycleRecord,
  dir: string,
): Promise<{ shells: string[]; services: string[] }> {
  await haltSandbox(engine, rec.workspace_id, join(dir, "sandbox"), rec.handle);
  const ended = await endSessions(dir);
  await rm(pauseDir(dir), { recursive: true, force: true });
  return ended;
}

/** Boots a fresh sandbox on the workspace's kept files; returns its handle. */
export async function startSandbox<R extends LifecycleRecord>(
  host: LifecycleHost<R>,
  rec: R,
): Promise<SandboxHandle> {
  const dir = host.dir(rec.workspace_id);
  await ensureDiskMounted(dir, join(dir, "files"));
  return host.engineFor(rec).create(await host.spec(rec, true));
}

function startHint(id: string, op: "workspace_start" | "workspace_resume" = "workspace_start") {
  return ["start it with ", { op, args: { workspace_id: id } }] as const;
}

/** The error for a command on a workspace without a sandbox (stopped, paused, in transition). */
export function notRunningError(r: LifecycleRecord): PyroError | undefined {
  const id = r.workspace_id;
  if (r.state === "stopped" || interruptedTransition(r))
    return new PyroError("invalid_state", `workspace ${id} is stopped (its files are kept)`, [
      ...startHint(id),
    ]);
  if (r.state === "paused")
    return new PyroError(
      "invalid_state",
      `workspace ${id} is paused${r.pause?.with_memory ? " (its processes are saved)" : ""}`,
      [
        "resume it with ",
        { op: "workspace_resume", args: { workspace_id: id } },
        r.pause?.with_memory ? "" : " (or start it)",
      ],
    );
  if (r.state === "stopping" || r.state === "starting")
    return new PyroError(
      "invalid_state",
      `workspace ${id} is ${r.state} (pyro process ${r.owner?.pid})`,
      `wait for workspace ${r.state === "stopping" ? "stop" : "start"} to return, then try again`,
    );
  return undefined;
}

export class WorkspaceLifecycle<R extends LifecycleRecord> {
  constructor(private readonly host: LifecycleHost<R>) {}

  /** The current record, refusing states no lifecycle step can leave. */
  private async load(id: string, action: string): Promise<R> {
    const rec = await this.host.expireIfDue(await this.host.records.load(checkId("ws", id)));
    if (rec.state === "expired")
      throw new PyroError("expired", `workspace ${id} expired (${rec.reason}); it cannot ${action}`, [
        "delete it with ",
        { op: "workspace_delete", args: { workspace_id: id } },
      ]);
    if (rec.state === "creating")
      throw new PyroError(
        "invalid_state",
        `workspace ${id} is still being created`,
        "wait for create to return",
      );
    if ((rec.state === "stopping" || rec.state === "starting") && !interruptedTransition(rec))
      throw notRunningError(rec)!;
    return rec;
  }

  /** Writes the intent (`state` with this process as owner) under the lock. */
  private intent(
    id: string,
    state: "stopping" | "starting",
    extra: (r: R) => void = () => undefined,
  ): Promise<R> {
    return this.host.records.update(id, (r) => {
      // Checked again under the lock: another process may have begun a step since load.
      if (
        (r.state === "stopping" || r.state === "starting") &&
        r.owner?.pid !== process.pid &&
        !interruptedTransition(r)
      )
        throw notRunningError(r)!;
      r.state = state;
      r.owner = currentOwner();
      extra(r);
    });
  }

  /** A failed step leaves a record that says so and can be started or deleted. */
  private async failed(id: string, what: string, e: unknown): Promise<never> {
    const pe = toPyroError(e);
    await this.host.records
      .update(id, (r) => {
        r.state = "failed";
        r.owner = null;
        r.reason = `${what} failed: ${pe.message.split("\n")[0]}; start it again or delete it`;
      })
      .catch(ignore("recording the failed state: the step's own error is the one thrown"));
    throw pe;
  }

  async stop(id: string): Promise<{ rec: R; outcome: LifecycleOutcome }> {
    const rec = await this.load(id, "stop");
    if (rec.state === "stopped") return { rec, outcome: none("already stopped") };
    const engine = this.host.engineFor(rec);
    const dir = this.host.dir(rec.workspace_id);
    await this.intent(rec.workspace_id, "stopping");
    let ended: { shells: string[]; services: string[] };
    try {
      ended = await haltAndEnd(engine, rec, dir);
    } catch (e) {
      return this.failed(rec.workspace_id, "stop", e);
    }
    const out = await this.host.records.update(rec.workspace_id, (r) => {
      r.state = "stopped";
      r.owner = null;
      r.pause = null;
      r.reason = "stopped by request; its files are kept";
      r.ended_sessions = ended;
      this.host.markActive(r, Date.now());
    });
    const n = ended.shells.length + ended.services.length;
    return {
      rec: out,
      outcome: {
        ...none(`stopped; /workspace is kept${n ? `; ended ${describeSessions(ended)}` : ""}`),
        ended_shells: ended.shells,
        ended_services: ended.services,
      },
    };
  }

  async start(id: string): Promise<{ rec: R; outcome: LifecycleOutcome }> {
    const rec = await this.load(id, "start");
    // A running sandbox on a disk that went read-only (disk.ts diskFault) is started afresh:
    // that is the way back, with the disk repaired on the way (ensureDiskMounted).
    const dir = this.host.dir(rec.workspace_id);
    if (rec.state === "running" && !(await diskFault(join(dir, "files"))))
      return { rec, outcome: none("already running") };
    return this.freshStart(rec, "start");
  }

  /** Ends whatever is left of the sandbox and boots a new one on the same files. */
  private async freshStart(
    rec: R,
    what: string,
    resumedWithMemory: boolean | null = null,
    why = "",
  ): Promise<{ rec: R; outcome: LifecycleOutcome }> {
    const id = rec.workspace_id;
    const dir = this.host.dir(id);
    const engine = this.host.engineFor(rec);
    const before = await this.intent(id, "starting", (r) => this.host.markActive(r, Date.now()));
    let handle: SandboxHandle;
    let ended: { shells: string[]; services: string[] };
    try {
      await haltSandbox(engine, id, join(dir, "sandbox"), rec.handle);
      // Sessions of the previous sandbox: said by the stop that ended them, or ended now.
      const now = await endSessions(dir);
      ended = {
        shells: [...(rec.ended_sessions?.shells ?? []), ...now.shells],
        services: [...(rec.ended_sessions?.services ?? []), ...now.services],
      };
      await rm(pauseDir(dir), { recursive: true, force: true });
      handle = await startSandbox(this.host, before);
    } catch (e) {
      return this.failed(id, what, e);
    }
    const out = await this.host.records.update(id, (r) => {
      r.handle = handle;
      r.state = "running";
      r.owner = null;
      r.reason = null;
      r.pause = null;
      r.ended_sessions = null;
    });
    const n = ended.shells.length + ended.services.length;
    return {
      rec: out,
      outcome: {
        ...none(
          `${why}a fresh sandbox on the same files${n ? `; ${describeSessions(ended)} from before did not survive` : ""}`,
        ),
        ended_shells: ended.shells,
        ended_services: ended.services,
        resumed_with_memory: resumedWithMemory,
      },
    };
  }

  async pause(id: string): Promise<{ rec: R; outcome: LifecycleOutcome }> {
    const rec = await this.load(id, "pause");
    if (rec.state === "paused")
      return {
        rec,
        outcome: { ...none("already paused"), paused_with_memory: rec.pause?.with_memory ?? false },
      };
    if (rec.state !== "running")
      throw new PyroError(
        "invalid_state",
        `workspace ${id} is ${rec.state}; only a running workspace can pause`,
        [...startHint(rec.workspace_id)],
      );
    const engine = this.host.engineFor(rec);
    const dir = this.host.dir(rec.workspace_id);
    await this.intent(rec.workspace_id, "stopping");
    let withMemory = false;
    let why = `the ${engine.name} engine cannot save a sandbox's memory`;
    let ended = { shells: [] as string[], services: [] as string[] };
    try {
      if (engine.pause && rec.handle) {
        try {
          await engine.pause(asHandle(rec.handle as Parameters<typeof asHandle>[0]), pauseDir(dir));
          withMemory = true;
        } catch (e) {
          const pe = toPyroError(e);
          why =
            pe.code === "engine_unavailable"
              ? pe.message.split("\n")[0]!
              : `saving its memory failed (${pe.message.split("\n")[0]})`;
        }
      }
      if (!withMemory) {
        ended = await haltAndEnd(engine, rec, dir);
      }
    } catch (e) {
      return this.failed(rec.workspace_id, "pause", e);
    }
    const out = await this.host.records.update(rec.workspace_id, (r) => {
      r.state = "paused";
      r.owner = null;
      r.pause = { with_memory: withMemory, at: new Date().toISOString() };
      r.reason = withMemory
        ? "paused with its memory: resume brings its processes back"
        : `paused without its memory (${why}): resume starts a fresh sandbox on the same files`;
      r.ended_sessions = ended;
      this.host.markActive(r, Date.now());
    });
    return {
      rec: out,
      outcome: {
        ...none(withMemory ? "paused; memory and processes saved" : `paused as a stop: ${why}`),
        ended_shells: ended.shells,
        ended_services: ended.services,
        paused_with_memory: withMemory,
      },
    };
  }

  async resume(id: string): Promise<{ rec: R; outcome: LifecycleOutcome }> {
    const rec = await this.load(id, "resume");
    if (rec.state === "running") return { rec, outcome: none("already running") };
    const engine = this.host.engineFor(rec);
    if (rec.state !== "paused" || !rec.pause?.with_memory || !engine.resume || !rec.handle)
      return this.freshStart(rec, "resume", false, "nothing to restore from memory: ");
    const dir = this.host.dir(rec.workspace_id);
    const before = await this.intent(rec.workspace_id, "starting", (r) =>
      this.host.markActive(r, Date.now()),
    );
    const old = asHandle(rec.handle as Parameters<typeof asHandle>[0]);
    let handle: SandboxHandle;
    try {
      // The sandbox enforces its expiry itself: it must not wake up already past it.
      await engine
        .setExpiry?.(old, before.expires_at)
        .catch(
          ignore("pushing the expiry before resume: the reaper enforces the record's expiry regardless"),
        );
      handle = await engine.resume(old, pauseDir(dir), await this.host.spec(before, true));
    } catch (e) {
      const why = `restoring its memory failed (${toPyroError(e).message.split("\n")[0]}); `;
      return this.freshStart(before, "resume", false, why);
    }
    await rm(pauseDir(dir), { recursive: true, force: true });
    const out = await this.host.records.update(rec.workspace_id, (r) => {
      r.handle = handle;
      r.state = "running";
      r.owner = null;
      r.reason = null;
      r.pause = null;
    });
    return {
      rec: out,
      outcome: {
        ...none("resumed with its memory: its processes run on"),
        paused_with_memory: true,
        resumed_with_memory: true,
      },
    };
  }
}

function describeSessions(s: { shells: string[]; services: string[] }): string {
  const parts = [];
  if (s.shells.length) parts.push(`${s.shells.length} shell${s.shells.length > 1 ? "s" : ""}`);
  if (s.services.length) parts.push(`service${s.services.length > 1 ? "s" : ""} ${s.services.join(", ")}`);
  return parts.join(" and ");
}
