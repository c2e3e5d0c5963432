import type { ExecOutcome } from "../engines/types.js";
import type { CommandRecorder } from "./recorder.js";
import { outputFields } from "./view.js";

/**
 * What the engines keep in memory per stream: enough for their own checks (runsc's error
 * messages), while the full output flows through the callbacks into the recorder.
 */
export const ENGINE_CAPTURE_BYTES = 64 * 1024;

/** The ExecRequest fields that stream a command's output into `rec`. */
export function streamInto(rec: CommandRecorder) {
  return { onStdout: rec.onStdout, onStderr: rec.onStderr, maxOutputBytes: ENGINE_CAPTURE_BYTES };
}

/**
 * Closes the recorder after the command. Output an engine produced without streaming it
 * (the host engine's own "command not found") is recorded from the outcome.
 */
export function finishRecording(rec: CommandRecorder, out: ExecOutcome): void {
  if (rec.stdout.snapshot().bytes === 0 && out.stdout) rec.onStdout(Buffer.from(out.stdout));
  if (rec.stderr.snapshot().bytes === 0 && out.stderr) rec.onStderr(Buffer.from(out.stderr));
  rec.close();
}

/** The command fields of a result, in contract order: exit code, the bounded output, the handle. */
export function commandFields(out: ExecOutcome, rec: CommandRecorder, budget: number, outputId: string) {
  return {
    exit_code: out.exitCode,
    ...outputFields(rec.stdout.snapshot(), rec.stderr.snapshot(), budget, outputId),
    output_id: outputId,
    timed_out: out.timedOut,
    too_many_processes: out.tooManyProcesses ?? false,
  };
}
