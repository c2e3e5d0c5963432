import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type PyroError, toPyroError } from "../core/errors.js";
import { execChannel, runOverChannel, sandboxDeathError } from "../engines/channel.js";
import { writeExpiry } from "../engines/expiry.js";
import type { ExecOutcome, ExecRequest, ExecutionMode, SandboxHandle } from "../engines/types.js";
import { CATALOG } from "../environments/catalog.js";
import { DEFAULT_RUNTIME, type RuntimeConfig, userOf } from "../environments/runtime-config.js";
import { ENGINE_CAPTURE_BYTES, finishRecording } from "../output/command.js";
import type { CommandRecorder } from "../output/recorder.js";
import { recordProblem, type StoredHandle } from "../sandbox/handle-check.js";
import type { RecordStore } from "../sandbox/record-store.js";
import { ignore } from "../util/best-effort.js";
import { pidAlive } from "../util/proc.js";
import {
  appendCommandLog,
  CANCELLED_OUTCOME,
  discardCommand,
  execResult,
  expiryNeedsPush,
  type LoggedRecord,
  markFailed,
  startCommand,
} from "./command-log.js";
import { plainWorkspaceStore } from "./plain-store.js";
import { snapshotOpPath } from "./snapshot-op.js";

/**
 * `workspace exec`, once: the command's log entry, the record update under its lock, the
 * expiry push and the result, used by WorkspaceManager.exec (every face, any engine) and by
 * the CLI's fast path (cli/fast-exec.ts: no zod, no commander, no engines). Free of zod and of
 * the engine registry, so that the fast bundle stays small: test/unit/fast-bundles.test.ts
 * fails if zod or commander gets into it. What differs between the two is passed in: the
 * full path runs the command through its engine and redacts secrets; the fast path takes
 * only the plain case (plainExec below) and runs it over the sandbox's exec channel.
 */

/** Where workspaces work: every command's cwd, and the root the file tools resolve against. */
export const WORKSPACE_ROOT = "/workspace";

/** The workspace record as far as an exec reads it (the full schema is manager.ts's). */
export interface ExecRecord extends LoggedRecord {
  environment: string;
  execution_mode: ExecutionMode;
  vcpu_count: number;
  reason?: string | null;
}

/** workspace_exec's result (the contract's WorkspaceExecResult). */
export type WorkspaceExecResult = ReturnType<typeof execResult>;

/** Live output sinks (a face's streaming callbacks). */
export interface LiveSinks {
  onStdout?: ((b: Buffer) => void) | undefined;
  onStderr?: ((b: Buffer) => void) | undefined;
}

/** What may be kept of a command's text once it ended (secret redaction); identity without. */
export interface Scrub {
  text(s: string): string;
  outcome(o: ExecOutcome): ExecOutcome;
  error(e: PyroError): PyroError;
}

const KEEP_ALL: Scrub = { text: (s) => s, outcome: (o) => o, error: (e) => e };

/** One command in a running workspace, with what the caller brings. */
export interface LoggedExec<R extends ExecRecord> {
  records: RecordStore<R>;
  /** The record it runs in: running, and its expiry already moved if the command needed it. */
  rec: R;
  /** The workspace's directory (its commands/ log). */
  dir: string;
  /** The command as the log and result show it (cli-style, see runtime/command.ts displayCommand). */
  command: string;
  maxOutputBytes: number;
  /** When the operation started (its duration_ms counts from here). */
  t0: number;
  live: LiveSinks;
  /** Runs the command, streaming into the recorder; undefined: nothing ran (nothing is logged). */
  run(recorder: CommandRecorder): Promise<ExecOutcome | undefined>;
  /** Once the command ended, before anything is logged or returned; throwing discards its output. */
  scrub?: () => Promise<Scrub>;
  /** Tells the sandbox the record's new expiry (best effort). */
  pushExpiry(rec: R): Promise<void>;
  /** After a non-zero exit is logged (e.g. look for a disk gone read-only). */
  afterFailure?: (rec: R) => Promise<void>;
}

/**
 * Runs the command and logs it: output streamed to `commands/running-*`, then the entry
 * appended under the record's lock (the command counts as activity) and the new expiry told
 * to the sandbox. A dead sandbox marks the workspace failed; a cancelled command is logged as
 * 130 with what it printed (it ran, and may have changed files); any other failure leaves no
 * trace. Errors are thrown as PyroErrors; undefined when `run` says nothing ran.
 */
export async function runLoggedExec<R extends ExecRecord>(
  x: LoggedExec<R>,
): Promise<WorkspaceExecResult | undefined> {
  const id = x.rec.workspace_id;
  const cmd = await startCommand(x.dir, x.maxOutputBytes, x.live);
  const { recorder } = cmd;
  let out: ExecOutcome | undefined;
  try {
    out = await x.run(recorder);
  } catch (e) {
    const s = x.scrub ? await x.scrub().catch(() => KEEP_ALL) : KEEP_ALL;
    const command = s.text(x.command);
    const pe = s.error(toPyroError(e));
    if (pe.code === "sandbox_dead") await markFailed(x.records, id, pe.message);
    if (pe.code === "cancelled") {
      // Into the log only: the caller is told by the error itself.
      recorder.stderr.push(Buffer.from(`[pyro] ${pe.message}\n`));
      recorder.close();
      await appendCommandLog(x.records, id, cmd, command, CANCELLED_OUTCOME, x.t0)
        .then((l) => x.pushExpiry(l.rec))
        .catch(ignore("logging a cancelled command: the cancellation is the error reported"));
    } else await discardCommand(cmd);
    throw pe;
  }
  if (!out) {
    await discardCommand(cmd);
    return undefined;
  }
  let s = KEEP_ALL;
  try {
    if (x.scrub) s = await x.scrub();
  } catch (e) {
    // The command ran, but its output cannot be redacted: none of it is kept or shown.
    await discardCommand(cmd);
    throw e;
  }
  const command = s.text(x.command);
  out = s.outcome(out);
  finishRecording(recorder, out);
  const logged = await appendCommandLog(x.records, id, cmd, command, out, x.t0);
  await x.pushExpiry(logged.rec);
  if (out.exitCode !== 0) await x.afterFailure?.(logged.rec);
  return execResult(x.rec, cmd, logged, command, out, x.maxOutputBytes);
}

/** An exec's request to the engine: in /workspace, with the environment's Env and User. */
export function execRequest(
  argv: string[],
  runtime: RuntimeConfig,
  timeoutSeconds: number,
  signal: AbortSignal | undefined,
  to: { onStdout: (b: Buffer) => void; onStderr: (b: Buffer) => void },
): ExecRequest {
  return {
    argv,
    // An image's WorkingDir does not apply: workspaces work in /workspace.
    cwd: WORKSPACE_ROOT,
    ...(Object.keys(runtime.env).length ? { env: runtime.env } : {}),
    ...userOf(runtime),
    timeoutMs: timeoutSeconds * 1000,
    ...(signal ? { signal } : {}),
    maxOutputBytes: ENGINE_CAPTURE_BYTES,
    onStdout: to.onStdout,
    onStderr: to.onStderr,
  };
}

/**
 * The problem with a stored workspace record beyond its shape: the record store's load check
 * (sandbox/handle-check.ts recordProblem, as the record core applies it), made by the fast path
 * before it trusts a record.
 */
export function workspaceRecordProblem(
  id: string,
  dir: string,
  rec: { workspace_id: string; handle: StoredHandle | null },
): string | undefined {
  return recordProblem("workspace_id", rec.workspace_id, id, dir, rec.handle, true);
}

// ---- The plain case, for the CLI's fast path ------------------------------------------------

/** A running sandbox's exec channel: what the fast path runs a command through. */
interface ExecChannel {
  alive(): boolean;
  run(argv: string[], req: ExecRequest): Promise<ExecOutcome | undefined>;
  setExpiry(expiresAt: string): Promise<void>;
}

/**
 * The sandbox's exec channel, as its engine's handle records it (engines/channel.ts: the
 * engines' own zod-free reading). Undefined for a sandbox without one.
 */
function execChannelOf(h: SandboxHandle): ExecChannel | undefined {
  const ch = execChannel(h);
  if (!ch) return undefined;
  const alive = () => pidAlive(ch.pid);
  return {
    alive,
    // The engine's check after a failed or lost command: a dead sandbox says why it died.
    run: (argv, req) =>
      runOverChannel(h, ch.socket, argv, req, async () => {
        if (!alive()) throw await sandboxDeathError(h);
      }),
    setExpiry: (at) => (ch.ctlDir ? writeExpiry(ch.ctlDir, at) : Promise.resolve()),
  };
}

/** The record as the plain case reads it. */
interface PlainRecord extends ExecRecord {
  engine: string;
  handle: (SandboxHandle & { workspaceDir?: string }) | null;
  secrets?: unknown[];
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null;
const isTime = (v: unknown) => typeof v === "string" && !Number.isNaN(Date.parse(v));
const isCount = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;

/**
 * The shape the log's read-modify-write needs (what it reads and writes back); anything else
 * in the record is kept as it is. A record this rejects is the full path's to report.
 */
function shapeProblem(r: unknown): string | undefined {
  if (!isObj(r)) return "not an object";
  if (typeof r.workspace_id !== "string" || typeof r.state !== "string") return "workspace_id/state";
  if (!isTime(r.expires_at) || (r.max_expires_at !== undefined && !isTime(r.max_expires_at))) return "expiry";
  if (!Number.isInteger(r.ttl_seconds) || (r.ttl_seconds as number) <= 0) return "ttl_seconds";
  if (!isCount(r.command_count)) return "command_count";
  return undefined;
}

/**
 * Why the plain case leaves this exec to the full path (which handles each, or says what is
 * wrong), or undefined when it can run it as the full path would, with nothing to do first.
 */
function notPlain(id: string, dir: string, r: PlainRecord, timeoutSeconds: number): string | undefined {
  // The full path's usable(): running, with a sandbox, a sound record, not past its expiry.
  if (r.state !== "running" || !isObj(r.handle) || typeof r.handle.sandboxDir !== "string")
    return "not running";
  // A handle of another engine than the record names is a record the full path must judge.
  if (workspaceRecordProblem(id, dir, r) || r.handle.engine !== r.engine) return "record";
  if (typeof r.execution_mode !== "string" || !Number.isInteger(r.vcpu_count)) return "fields";
  if (Date.parse(r.expires_at) <= Date.now()) return "expired";
  // Secrets need redaction, an expiry too close needs a record write before the command.
  if (r.secrets !== undefined && (!Array.isArray(r.secrets) || r.secrets.length > 0)) return "secrets";
  if (expiryNeedsPush(r, timeoutSeconds)) return "expiry push";
  // An image's or recipe's Env and User come from the environment store.
  if (!CATALOG.some((c) => c.name === r.environment)) return "not a catalog environment";
  return undefined;
}

export interface PlainExecRequest {
  command: string[];
  maxOutputBytes: number;
  signal: AbortSignal;
  live: LiveSinks;
  /** The command as shown (displayCommand of it). */
  shown: string;
}

/** A workspace exec the plain case takes: run it, or undefined when nothing listened (nothing ran). */
export interface PlainExec {
  run(req: PlainExecRequest): Promise<WorkspaceExecResult | undefined>;
}

/**
 * The CLI fast path's exec: a plain one (see notPlain; a gVisor workspace of a catalog
 * environment, with an exec channel and a live sandbox, that needs no recovery of an
 * interrupted snapshot or reset) is returned ready to run, anything else is undefined before
 * anything was run or written, for the full path to handle as always.
 */
export function plainExec(workspacesDir: string, id: string, timeoutSeconds: number): PlainExec | undefined {
  const dir = join(workspacesDir, id);
  // A snapshot or reset in progress, or one whose pyro died (snapshots.ts recovers it).
  if (existsSync(snapshotOpPath(dir))) return undefined;
  let rec: PlainRecord;
  try {
    rec = JSON.parse(readFileSync(join(dir, "workspace.json"), "utf8")) as PlainRecord;
  } catch {
    return undefined;
  }
  if (shapeProblem(rec) || notPlain(id, dir, rec, timeoutSeconds)) return undefined;
  const channel = execChannelOf(rec.handle!);
  // The engine's check before an exec: a dead sandbox is the full path's to mark failed.
  if (!channel?.alive()) return undefined;
  const t0 = performance.now();
  const records = plainWorkspaceStore<PlainRecord>(workspacesDir, {
    safeParse: (raw) => {
      const why = shapeProblem(raw);
      return why
        ? { success: false, error: { issues: [{ path: [], message: why }] } }
        : { success: true, data: raw as PlainRecord };
    },
  });
  return {
    run: (req) =>
      runLoggedExec({
        records,
        rec,
        dir,
        command: req.shown,
        maxOutputBytes: req.maxOutputBytes,
        t0,
        live: req.live,
        // A catalog environment's runtime: no Env, root (EnvironmentStore.runtimeConfig).
        run: (recorder) =>
          channel.run(
            req.command,
            execRequest(req.command, DEFAULT_RUNTIME, timeoutSeconds, req.signal, recorder),
          ),
        pushExpiry: async (r) => {
          if (r.state === "running")
            await channel
              .setExpiry(r.expires_at)
              .catch(
                ignore(
                  "pushing the expiry into the sandbox: the reaper enforces the record's expiry regardless",
                ),
              );
        },
      }),
  };
}
