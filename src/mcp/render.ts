import type { PyroError } from "../errors.js";

/**
 * Text renderings of tool results. structuredContent carries the exact fields; this text is
 * what a model reads when its client shows only `content`, so it leads with what matters
 * (exit code, output) and keeps the rest compact.
 */

interface ExecLike {
  exit_code: number;
  stdout: string;
  stderr: string;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
  timed_out: boolean;
  duration_ms: number;
  environment: string;
  execution_mode: string;
}

function isExecLike(r: Record<string, unknown>): r is Record<string, unknown> & ExecLike {
  return typeof r.exit_code === "number" && typeof r.stdout === "string" && typeof r.stderr === "string";
}

function stream(name: string, text: string, truncated: boolean): string {
  const note = truncated ? ` (truncated at 1 MiB)` : "";
  if (text === "") return `${name}${note}: (empty)`;
  return `${name}${note}:\n${text.endsWith("\n") ? text : `${text}\n`}`;
}

export function renderExec(r: ExecLike & { workspace_id?: unknown; sequence?: unknown }): string {
  const where =
    typeof r.workspace_id === "string" ? `workspace ${r.workspace_id} #${String(r.sequence)}` : r.environment;
  const head = [`exit_code: ${r.exit_code}`];
  if (r.timed_out) head.push("TIMED OUT (killed; raise timeout_seconds if it needs longer)");
  head.push(`(${where}, ${r.execution_mode}, ${r.duration_ms} ms)`);
  return [
    head.join(" "),
    stream("stdout", r.stdout, r.stdout_truncated),
    stream("stderr", r.stderr, r.stderr_truncated),
  ].join("\n");
}

/** One line naming the outcome, so a model need not parse the JSON for the common case. */
function summary(tool: string, r: Record<string, unknown>): string {
  if (typeof r.workspace_id === "string" && typeof r.state === "string") {
    return `workspace ${r.workspace_id} is ${r.state} (${String(r.environment)}, expires ${String(r.expires_at)})`;
  }
  if (typeof r.vm_id === "string" && typeof r.state === "string")
    return `VM ${r.vm_id} is ${r.state} (${String(r.environment)})`;
  if (typeof r.deleted === "boolean")
    return `${String(r.workspace_id ?? r.vm_id)} ${r.deleted ? "deleted" : "was already gone"}`;
  if (tool === "workspace_sync_push") {
    return `copied ${String(r.entry_count)} entries (${String(r.bytes_written)} bytes) into ${String(r.destination)}`;
  }
  if (tool === "workspace_logs" && Array.isArray(r.commands))
    return `${r.commands.length} command(s) in ${String(r.workspace_id)}`;
  if (tool === "workspace_list" && Array.isArray(r.workspaces)) return `${r.workspaces.length} workspace(s)`;
  if (tool === "vm_list_environments" && Array.isArray(r.environments))
    return `${r.environments.length} environment(s)`;
  return `${tool}: ok`;
}

export function renderResult(tool: string, result: Record<string, unknown>): string {
  if (isExecLike(result)) return renderExec(result);
  return `${summary(tool, result)}\n${JSON.stringify(result, null, 2)}`;
}

export function renderError(e: PyroError): string {
  const lines = [`Error (${e.code}): ${e.message}`];
  if (e.hint) lines.push(`Hint: ${e.hint}`);
  return lines.join("\n");
}
