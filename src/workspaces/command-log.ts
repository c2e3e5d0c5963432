import { mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import type * as z from "zod";
import type { CommandLogEntryT, LastCommand } from "../contract/workspace.js";
import { resultNotes } from "../engines/notes.js";
import type { ExecOutcome, ExecutionMode } from "../engines/types.js";
import { commandFields } from "../output/command.js";
import { CommandRecorder } from "../output/recorder.js";
import { workspaceOutputId, workspaceOutputPath } from "../output/store.js";
import type { RecordStore } from "../sandbox/record-store.js";
import { ignore } from "../util/best-effort.js";
import { writeJsonAtomic } from "../util/json-store.js";

/**
 * A workspace command's bookkeeping: its output streamed to `commands/running-*`, then its
 * entry appended to the log under the record's lock. Shared by WorkspaceManager.exec and
 * the CLI's fast path (cli/fast-exec.ts), which loads no zod and no engines, so both write
 * the same log the same way.
 */

/** What the log needs of a workspace record. */
export interface LoggedRecord {
  workspace_id: string;
  state: string;
  expires_at: string;
  ttl_seconds: number;
  max_expires_at?: string | undefined;
  last_activity_at?: string | undefined;
  command_count: number;
  last_command: z.infer<typeof LastCommand> | null;
}

/** A command log entry as stored in commands/<seq>.json (the output is in files beside it). */
export type StoredLogEntry = Omit<
  CommandLogEntryT,
  | "stdout"
  | "stderr"
  | "stdout_truncated"
  | "stderr_truncated"
  | "stdout_encoding"
  | "stderr_encoding"
  | "stdout_omitted_bytes"
  | "stderr_omitted_bytes"
>;

/** The idle expiry after activity at `at`, capped by the hard maximum. */
export function nextExpiry(at: number, ttlSeconds: number, maxExpiresAt: string | undefined): string {
  const idle = at + ttlSeconds * 1000;
  const cap = maxExpiresAt ? Date.parse(maxExpiresAt) : Number.POSITIVE_INFINITY;
  return new Date(Math.min(idle, cap)).toISOString();
}

/** Activity at `at`: the idle expiry moves to at + ttl (never past the hard maximum, never back). */
export function markActive(r: LoggedRecord, at: number): void {
  const next = nextExpiry(at, r.ttl_seconds, r.max_expires_at);
  if (Date.parse(next) > Date.parse(r.expires_at)) r.expires_at = next;
  r.last_activity_at = new Date(Math.min(at, Date.now())).toISOString();
}

/** Whether the expiry already sits at the hard maximum (nothing can extend it). */
export function expiryCapped(r: LoggedRecord): boolean {
  return !!r.max_expires_at && Date.parse(r.expires_at) >= Date.parse(r.max_expires_at);
}

/**
 * A command that must not be cut short by the idle expiry (the sandbox enforces it on
 * itself) needs the expiry moved before it starts: when its deadline, plus a margin, would
 * pass it.
 */
export function expiryNeedsPush(r: LoggedRecord, timeoutSeconds: number): boolean {
  return Date.parse(r.expires_at) < Date.now() + timeoutSeconds * 1000 + 10_000 && !expiryCapped(r);
}

/** The log entry of a command cut short by a cancel: it still ran and may have changed files. */
export const CANCELLED_OUTCOME: ExecOutcome = {
  exitCode: 130,
  stdout: "",
  stderr: "",
  stdoutTruncated: false,
  stderrTruncated: false,
  timedOut: false,
  execMs: 0,
};

/** A running command's output files; renamed to its sequence number once it has one. */
export interface RunningCommand {
  commandsDir: string;
  /** The pid in the name tells a reset that this exec is still running (snapshots.ts). */
  running: string;
  recorder: CommandRecorder;
  started_at: string;
}

let runningSeq = 0;

export async function startCommand(
  wsDir: string,
  keep: number,
  sinks: { onStdout?: ((b: Buffer) => void) | undefined; onStderr?: ((b: Buffer) => void) | undefined },
): Promise<RunningCommand> {
  const commandsDir = join(wsDir, "commands");
  await mkdir(commandsDir, { recursive: true });
  // Hex after the pid, as reset looks for it (snapshots.ts); the count keeps one process's apart.
  const running = `running-${process.pid}-${Date.now().toString(16)}${(++runningSeq).toString(16)}`;
  const recorder = new CommandRecorder({
    stdoutPath: workspaceOutputPath(commandsDir, running, "stdout"),
    stderrPath: workspaceOutputPath(commandsDir, running, "stderr"),
    keep,
    ...(sinks.onStdout ? { onStdout: sinks.onStdout } : {}),
    ...(sinks.onStderr ? { onStderr: sinks.onStderr } : {}),
  });
  return { commandsDir, running, recorder, started_at: new Date().toISOString() };
}

/** A command that left no trace (it failed to start, or its output cannot be kept). */
export async function discardCommand(c: RunningCommand): Promise<void> {
  c.recorder.close();
  for (const s of ["stdout", "stderr"] as const)
    await rm(workspaceOutputPath(c.commandsDir, c.running, s), { force: true });
}

/**
 * Appends one finished command to the log under the lock: its output files take their
 * sequence number, then the entry is written and the record counts it as activity. Returns
 * the sequence number and the record as written (its new expiry is for the sandbox).
 */
export async function appendCommandLog<R extends LoggedRecord>(
  records: RecordStore<R>,
  id: string,
  c: RunningCommand,
  command: string,
  out: ExecOutcome,
  t0: number,
): Promise<{ sequence: number; duration_ms: number; rec: R }> {
  const duration_ms = Math.round(performance.now() - t0);
  let sequence = 0;
  const rec = await records.update(id, async (r) => {
    sequence = r.command_count + 1;
    for (const s of ["stdout", "stderr"] as const)
      await rename(
        workspaceOutputPath(c.commandsDir, c.running, s),
        workspaceOutputPath(c.commandsDir, sequence, s),
      );
    const entry: StoredLogEntry = {
      sequence,
      command,
      exit_code: out.exitCode,
      timed_out: out.timedOut,
      started_at: c.started_at,
      duration_ms,
      stdout_bytes: c.recorder.stdout.snapshot().bytes,
      stderr_bytes: c.recorder.stderr.snapshot().bytes,
      output_id: workspaceOutputId(id, sequence),
    };
    await writeJsonAtomic(join(c.commandsDir, `${String(sequence).padStart(8, "0")}.json`), entry);
    r.command_count = sequence;
    r.last_command = { sequence, command, exit_code: out.exitCode, started_at: c.started_at, duration_ms };
    markActive(r, Date.now());
  });
  return { sequence, duration_ms, rec };
}

/** workspace_exec's result, in contract order. */
export function execResult(
  rec: { workspace_id: string; environment: string; execution_mode: ExecutionMode; vcpu_count: number },
  c: RunningCommand,
  logged: { sequence: number; duration_ms: number },
  command: string,
  out: ExecOutcome,
  maxOutputBytes: number,
) {
  return {
    workspace_id: rec.workspace_id,
    sequence: logged.sequence,
    environment: rec.environment,
    command,
    ...commandFields(out, c.recorder, maxOutputBytes, workspaceOutputId(rec.workspace_id, logged.sequence)),
    duration_ms: logged.duration_ms,
    boot_ms: 0,
    exec_ms: out.execMs,
    execution_mode: rec.execution_mode,
    notes: resultNotes(rec.execution_mode, rec.vcpu_count),
  };
}

/** A running workspace whose sandbox died: failed, with why (the record keeps everything else). */
export async function markFailed<R extends LoggedRecord & { reason?: string | null }>(
  records: RecordStore<R>,
  id: string,
  reason: string,
): Promise<void> {
  await records
    .update(id, (r) => {
      if (r.state === "running") {
        r.state = "failed";
        r.reason = reason;
      }
    })
    .catch(
      ignore(
        "marking a dead sandbox's record failed (the record may be gone meanwhile): the caller's error stands",
      ),
    );
}
