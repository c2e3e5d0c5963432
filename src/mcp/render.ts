import type { PyroError } from "../core/errors.js";
import { COMMAND_HINT_PREFIX } from "../environments/command-hint.js";

/**
 * Text renderings of tool results. structuredContent carries the exact fields; this text is
 * what a model reads when its client shows only `content`, so it leads with what matters
 * (exit code, output) and stays concise: never a second copy of a large structuredContent.
 */

interface ExecLike {
  exit_code: number;
  stdout: string;
  stderr: string;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
  timed_out: boolean;
  too_many_processes?: boolean;
  duration_ms: number;
  environment: string;
  execution_mode: string;
  stdout_encoding?: string;
  stderr_encoding?: string;
  stdout_bytes?: number;
  stderr_bytes?: number;
  stdout_omitted_bytes?: number;
  stderr_omitted_bytes?: number;
  output_id?: string;
  notes?: string[];
}

/** Non-exec results up to this size are shown as compact JSON after the summary line. */
const INLINE_JSON_MAX = 4000;

function isExecLike(r: Record<string, unknown>): r is Record<string, unknown> & ExecLike {
  return typeof r.exit_code === "number" && typeof r.stdout === "string" && typeof r.stderr === "string";
}

function stream(
  name: string,
  text: string,
  o: { encoding?: string | undefined; bytes?: number | undefined; omitted?: number | undefined },
  truncated: boolean,
): string {
  const notes: string[] = [];
  if (o.omitted) notes.push(`${o.bytes} bytes, ${o.omitted} omitted in the middle`);
  else if (truncated) notes.push("truncated");
  if (o.encoding === "base64") notes.push("not valid UTF-8, base64");
  const note = notes.length ? ` (${notes.join("; ")})` : "";
  if (text === "") return `${name}${note}: (empty)`;
  return `${name}${note}:\n${text.endsWith("\n") ? text : `${text}\n`}`;
}

export function renderExec(r: ExecLike & { workspace_id?: unknown; sequence?: unknown }): string {
  const where =
    typeof r.workspace_id === "string" ? `workspace ${r.workspace_id} #${String(r.sequence)}` : r.environment;
  const head = [`exit_code: ${r.exit_code}`];
  if (r.timed_out) head.push("TIMED OUT (killed; raise timeout_seconds if it needs longer)");
  if (r.too_many_processes)
    head.push(
      "TOO MANY PROCESSES (the sandbox's process limit was reached; what the command left running was killed)",
    );
  head.push(`(${where}, ${r.execution_mode}, ${r.duration_ms} ms)`);
  const lines = [
    head.join(" "),
    stream(
      "stdout",
      r.stdout,
      { encoding: r.stdout_encoding, bytes: r.stdout_bytes, omitted: r.stdout_omitted_bytes },
      r.stdout_truncated,
    ),
    stream(
      "stderr",
      r.stderr,
      { encoding: r.stderr_encoding, bytes: r.stderr_bytes, omitted: r.stderr_omitted_bytes },
      r.stderr_truncated,
    ),
  ];
  // A missing command's 127: which environments have it (environments/command-hint.ts).
  for (const n of r.notes ?? []) if (n.startsWith(COMMAND_HINT_PREFIX)) lines.push(`hint: ${n}`);
  if ((r.stdout_omitted_bytes || r.stderr_omitted_bytes) && r.output_id)
    lines.push(
      `full output: output_read {"output_id":"${r.output_id}","stream":"stdout"|"stderr","offset":N}`,
    );
  return lines.join("\n");
}

function renderLogs(r: Record<string, unknown>): string {
  const commands = r.commands as (Record<string, unknown> &
    ExecLike & { sequence: number; command: string })[];
  const lines = [
    `${commands.length} of ${String(r.command_count)} command(s) in ${String(r.workspace_id)}` +
      (commands.length < Number(r.command_count) ? " (raise limit for earlier ones)" : ""),
  ];
  for (const c of commands) {
    lines.push(
      `#${c.sequence} exit ${c.exit_code}${c.timed_out ? " (timed out)" : ""} $ ${c.command} ` +
        `[${String(c.started_at)}, ${c.duration_ms} ms, stdout ${c.stdout_bytes} B, stderr ${c.stderr_bytes} B, ${c.output_id}]`,
    );
    if (typeof c.stdout === "string") {
      lines.push(
        stream(
          "  stdout",
          c.stdout,
          { encoding: c.stdout_encoding, bytes: c.stdout_bytes, omitted: c.stdout_omitted_bytes },
          c.stdout_truncated,
        ),
        stream(
          "  stderr",
          c.stderr,
          { encoding: c.stderr_encoding, bytes: c.stderr_bytes, omitted: c.stderr_omitted_bytes },
          c.stderr_truncated,
        ),
      );
    }
  }
  return lines.join("\n");
}

function renderPage(r: Record<string, unknown>): string {
  const head =
    `${String(r.output_id)} ${String(r.stream)} bytes ${String(r.offset)}-${String(r.next_offset)} of ${String(r.total_bytes)}` +
    `${r.eof ? " (end)" : `; next offset ${String(r.next_offset)}`}${r.encoding === "base64" ? " (not valid UTF-8, base64)" : ""}:`;
  return `${head}\n${String(r.data)}`;
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
  if (tool === "workspace_list" && Array.isArray(r.workspaces)) return `${r.workspaces.length} workspace(s)`;
  if (tool === "vm_list_environments" && Array.isArray(r.environments))
    return `${r.environments.length} environment(s)`;
  return `${tool}: ok`;
}

/**
 * Nulls say "not set" to a program; to a model they are noise (workspace_create had 24
 * fields, many null). The text leaves them out; structuredContent keeps the full shape.
 */
const withoutNulls = (_key: string, value: unknown) => (value === null ? undefined : value);

/**
 * workspace_file_read: the file's text itself, so a model reads the file, not an escaped
 * JSON string of it (the metadata is in structuredContent). A partial read says where it
 * stopped in a second block; binary content (base64) gets a line saying so first.
 */
function renderFileRead(r: Record<string, unknown>): string[] {
  const content = String(r.content);
  const first = Number(r.offset);
  const last = first + Number(r.lines) - 1;
  const partial = r.truncated === true || r.next_offset !== null || first > 1;
  const range = Number(r.lines) > 0 ? `lines ${first}-${last}` : "no lines";
  const more = r.next_offset !== null ? `; read on with offset=${String(r.next_offset)}` : "";
  if (r.encoding === "base64")
    return [`${String(r.path)}: ${String(r.bytes)} bytes, not text; base64:\n${content}`];
  if (!partial) return [content];
  return [content, `[pyro: ${String(r.path)}, ${range}${more}]`];
}

/** The text blocks of a tool result (most tools: one, from renderResult). */
export function renderContent(tool: string, result: Record<string, unknown>): string[] {
  if (tool === "workspace_file_read" && typeof result.content === "string") return renderFileRead(result);
  return [renderResult(tool, result)];
}

export function renderResult(tool: string, result: Record<string, unknown>): string {
  if (isExecLike(result)) return renderExec(result);
  if (tool === "workspace_logs" && Array.isArray(result.commands)) return renderLogs(result);
  if (tool === "output_read" && typeof result.data === "string") return renderPage(result);
  const json = JSON.stringify(result, withoutNulls);
  return json.length <= INLINE_JSON_MAX
    ? `${summary(tool, result)}\n${json}`
    : `${summary(tool, result)} (details in structuredContent)`;
}

export function renderError(e: PyroError): string {
  const lines = [`Error (${e.code}): ${e.message}`];
  if (e.hint) lines.push(`Hint: ${e.hint}`);
  return lines.join("\n");
}
