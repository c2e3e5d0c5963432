import { COMMAND_HINT_PREFIX } from "../environments/command-hint.js";

/**
 * The summary line a command's run prints after its streamed output (stderr), shared by the
 * CLI's renderer and its fast path (fast-run.ts), which must print the same line.
 */
export function execFooter(r: Record<string, unknown>): string {
  const parts = [`exit ${r.exit_code}`, `${r.execution_mode}`, `${r.duration_ms} ms`];
  if (r.timed_out) parts.push("TIMED OUT");
  if (r.too_many_processes) parts.push("TOO MANY PROCESSES (pids limit)");
  parts.push(`output ${r.output_id}`);
  if (r.execution_mode === "host_compat") parts.push("NO ISOLATION (host_compat)");
  // A missing command's 127: which environments have it (environments/command-hint.ts).
  const hints = Array.isArray(r.notes)
    ? r.notes.filter((n): n is string => typeof n === "string" && n.startsWith(COMMAND_HINT_PREFIX))
    : [];
  return [`[pyro] ${parts.join(" · ")}`, ...hints.map((h) => `[pyro] ${h}`)].join("\n");
}
