import type { CaptureResult } from "../util/proc.js";
import type { ExecOutcome } from "./types.js";

/**
 * A finished host-side process as a command outcome: exit 124 when it timed out (as
 * timeout(1) reports), 137 (killed by SIGKILL) when it ended without an exit code.
 */
export function execOutcome(r: CaptureResult & { atPidsLimit?: boolean }): ExecOutcome {
  return {
    exitCode: r.timedOut ? 124 : (r.exitCode ?? 128 + 9),
    stdout: r.stdout,
    stderr: r.stderr,
    stdoutTruncated: r.stdoutTruncated,
    stderrTruncated: r.stderrTruncated,
    timedOut: r.timedOut,
    ...(r.atPidsLimit ? { tooManyProcesses: true } : {}),
    execMs: r.durationMs,
    ...(r.stdoutBytes ? { stdoutBytes: r.stdoutBytes } : {}),
  };
}

/** The outcome fields every command result in the contract carries, in contract order. */
export function outcomeFields(out: ExecOutcome) {
  return {
    exit_code: out.exitCode,
    stdout: out.stdout,
    stderr: out.stderr,
    stdout_truncated: out.stdoutTruncated,
    stderr_truncated: out.stderrTruncated,
    timed_out: out.timedOut,
  };
}
