import type { RunResultT } from "../contract/vm.js";
import { displayCommand } from "../core/command.js";
import { resultNotes } from "../engines/notes.js";
import type { ExecOutcome, ExecutionMode } from "../engines/types.js";
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

/**
 * A one-shot run's result, from a cold sandbox (vms/manager.ts) or a warm one (pool/run.ts)
 * alike, in RunResult's key order (the JSON the CLI prints).
 */
export function runResult(
  vm_id: string,
  input: { environment: string; command: string | string[]; max_output_bytes: number; vcpu_count: number },
  out: ExecOutcome,
  rec: CommandRecorder,
  mode: ExecutionMode,
  timing: { duration_ms: number; boot_ms: number },
): RunResultT {
  return {
    vm_id,
    environment: input.environment,
    command: displayCommand(input.command),
    ...commandFields(out, rec, input.max_output_bytes, vm_id),
    ...timing,
    exec_ms: out.execMs,
    execution_mode: mode,
    notes: resultNotes(mode, input.vcpu_count),
    cleaned_up: true,
  };
}
