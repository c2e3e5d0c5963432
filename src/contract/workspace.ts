import * as z from "zod";
import {
  allow_host_compat,
  command,
  ExecutionModeSchema,
  environment,
  execFields,
  max_output_bytes,
  mem_mib,
  network,
  outputViewFields,
  timeout_seconds,
  vcpu_count,
} from "./common.js";
import { DEFAULT_ENVIRONMENT, DEFAULTS, LIMITS, OUTPUT_BUDGET } from "./defaults.js";
import { NetworkInfoSchema, networkRuleFields, publishField } from "./network.js";
import { secretEnvField, secretsField } from "./secrets.js";

/**
 * Wire schemas of workspaces: create, update, list, status, sync, exec and the command log
 * (workspaces/manager.ts). Field names here are the public contract.
 */

export const workspaceId = z.string().max(20_000).describe("Workspace id (ws_…) or name.");
/** Names and labels (workspaces/naming.ts checks them). */
export const workspaceName = z
  .string()
  .max(63)
  .describe("A name, unique among your workspaces, usable in place of the id.");
export const workspaceLabels = z
  .record(z.string().max(63), z.string().max(256))
  .describe('Labels: string keys and values, e.g. {"task": "123"}.');
const workspaceTtl = z
  .number()
  .int()
  .min(1)
  .max(LIMITS.ttlMax)
  .describe(
    "Idle time in seconds: the workspace expires this long after its last exec or sync push (each one extends it). Default 600.",
  );
const workspaceMaxTtl = z
  .number()
  .int()
  .min(1)
  .max(LIMITS.ttlMax)
  .describe("Hard limit in seconds from creation, however busy the workspace is. Default 86400 (24 h).");
export const WorkspaceCreateInput = z.object({
  environment: environment.default(DEFAULT_ENVIRONMENT),
  seed_path: z
    .string()
    .min(1)
    .max(4096)
    .optional()
    .describe(
      "Host directory or .tar/.tar.gz/.tgz file unpacked into /workspace before the workspace is returned.",
    ),
  vcpu_count: vcpu_count.default(DEFAULTS.vcpu_count),
  mem_mib: mem_mib.default(DEFAULTS.mem_mib),
  disk_mib: z
    .number()
    .int()
    .min(64)
    .max(1_048_576)
    .default(4096)
    .describe(
      "Size of /workspace in MiB (64-1048576, default 4096): the guest sees it in df and a write past it fails with ENOSPC. Enforced where pyro can mount a disk image (as root); always recorded.",
    ),
  ttl_seconds: workspaceTtl.default(DEFAULTS.ttl_seconds),
  max_ttl_seconds: workspaceMaxTtl.default(DEFAULTS.max_ttl_seconds),
  network: network.default(false),
  ...networkRuleFields,
  ...publishField,
  allow_host_compat: allow_host_compat.default(false),
  secrets: secretsField.optional(),
  name: workspaceName.optional(),
  labels: workspaceLabels.optional(),
});
export const WorkspaceUpdateInput = z.object({
  workspace_id: workspaceId,
  ttl_seconds: workspaceTtl.optional(),
  max_ttl_seconds: workspaceMaxTtl.optional(),
  name: workspaceName
    .optional()
    .describe('A new name ("" removes it); unique among the caller\'s workspaces.'),
  labels: workspaceLabels.optional().describe("Labels to set or change (keys and values)."),
  clear_labels: z.array(z.string().max(63)).max(32).optional().describe("Label keys to remove."),
  ...networkRuleFields,
  ...publishField,
});
export const WorkspaceListInput = z.object({
  labels: workspaceLabels
    .optional()
    .describe("Only workspaces with every one of these labels (keys and values)."),
});
export const WorkspaceIdInput = z.object({ workspace_id: workspaceId });
export const WorkspaceSyncInput = z.object({
  workspace_id: workspaceId,
  source_path: z.string().min(1).max(4096).describe("Host directory or .tar/.tar.gz/.tgz file to copy in."),
  dest: z
    .string()
    .min(1)
    .max(4096)
    .default("/workspace")
    .describe(
      "Where in the workspace to put it: /workspace (default) or a path under it; relative paths are relative to /workspace.",
    ),
  update_baseline: z
    .boolean()
    .default(false)
    .describe(
      "Also record what was pushed in the baseline, so workspace_diff does not show it as a change. Default false.",
    ),
});
export const WorkspaceExecInput = z.object({
  workspace_id: workspaceId,
  command,
  timeout_seconds: timeout_seconds.default(DEFAULTS.timeout_seconds),
  max_output_bytes: max_output_bytes.default(OUTPUT_BUDGET.default),
  secret_env: secretEnvField.optional(),
});
export const WorkspaceLogsInput = z.object({
  workspace_id: workspaceId,
  limit: z
    .number()
    .int()
    .min(1)
    .max(1000)
    .default(20)
    .describe("How many of the most recent commands to return (1-1000). Default 20."),
  include_output: z
    .boolean()
    .default(false)
    .describe(
      "Also return each command's stdout/stderr, within max_output_bytes for all entries together. Default false.",
    ),
  max_output_bytes: max_output_bytes.default(OUTPUT_BUDGET.default),
});
/**
 * Where a workspace's seed came from. `project_path` / `repo_url`: the server's project
 * (`pyro mcp serve` in a git checkout, `--project-path`, `--repo-url`), seeded with its
 * git-tracked files because the call gave no seed_path. Records written before these fields
 * existed read as `seed_path` (or `none` when empty).
 */
function seedOriginFields() {
  return {
    origin_kind: z
      .enum(["none", "seed_path", "project_path", "repo_url"])
      .describe("none (empty), seed_path (the caller's), project_path or repo_url (the server's project)."),
    origin_ref: z.string().nullable().describe("The project's branch or tag, when it came from a project."),
    origin_commit: z.string().nullable().describe("The project's HEAD commit, when it came from a project."),
    origin_url: z.string().nullable().describe("The repository URL, for repo_url."),
  };
}
export const SeedInfo = z.object({
  mode: z.enum(["empty", "directory", "tar_archive", "project"]),
  seed_path: z.string().nullable(),
  destination: z.string(),
  entry_count: z.number().int(),
  bytes_written: z.number().int(),
  ...seedOriginFields(),
});
export const LastCommand = z.object({
  sequence: z.number().int(),
  command: z.string(),
  exit_code: z.number().int(),
  started_at: z.string(),
  duration_ms: z.number().int(),
});
export const WorkspaceState = z.enum([
  "creating",
  "running",
  "stopping",
  "stopped",
  "starting",
  "paused",
  "expired",
  "failed",
  "damaged",
]);
/** Name and labels, in status and list. */
const namingFields = {
  name: z.string().nullable().describe("The workspace's name (workspace_update sets it), or null."),
  labels: z.record(z.string(), z.string()).describe("The workspace's labels."),
};
export const WorkspaceStatusResult = z.object({
  workspace_id: z.string(),
  ...namingFields,
  paused_with_memory: z
    .boolean()
    .nullable()
    .describe("When paused: whether its memory (running processes) was saved; null otherwise."),
  environment: z.string(),
  state: WorkspaceState,
  reason: z.string().nullable(),
  created_at: z.string(),
  expires_at: z.string(),
  vcpu_count: z.number().int(),
  mem_mib: z.number().int(),
  disk_mib: z.number().int(),
  disk_enforced: z
    .boolean()
    .describe("Whether disk_mib is enforced (a mounted disk image) or only recorded."),
  ttl_seconds: z
    .number()
    .int()
    .describe("Idle time after which the workspace expires; each exec or push extends it."),
  max_expires_at: z
    .string()
    .describe("When the workspace expires however busy it is (creation + max_ttl_seconds)."),
  last_activity_at: z.string().describe("The last exec or sync push (or creation)."),
  network: z.boolean(),
  network_info: NetworkInfoSchema.nullable().describe(
    "The network policy, the guest's address and the published ports (null when the workspace is not running).",
  ),
  execution_mode: ExecutionModeSchema.nullable(),
  notes: z
    .array(z.string())
    .describe(
      "Where the engine honoured the request differently from what was asked (e.g. gVisor's CPU count).",
    ),
  command_count: z.number().int(),
  last_command: LastCommand.nullable(),
  workspace_seed: SeedInfo,
  secrets: z
    .array(z.object({ name: z.string(), bytes: z.number().int() }))
    .describe(
      "The workspace's secrets: names and sizes only (values stay in the sandbox, /run/pyro-secrets).",
    ),
});
/** One line of workspace_list: enough to recognise a workspace and act on it. */
export const WorkspaceSummary = z.object({
  workspace_id: z.string(),
  ...namingFields,
  state: WorkspaceState,
  reason: z
    .string()
    .nullable()
    .describe("Why it is not running (failed, damaged, expired); null when running."),
  environment: z.string(),
  created_at: z.string(),
  expires_at: z.string(),
  command_count: z.number().int(),
  last_activity_at: z
    .string()
    .describe("The last exec or sync push (or creation): the idle TTL counts from it."),
  last_command_at: z.string().nullable().describe("When the last command started; null if none ran."),
});
export function workspaceSummary(w: z.infer<typeof WorkspaceStatusResult>): z.infer<typeof WorkspaceSummary> {
  return {
    workspace_id: w.workspace_id,
    name: w.name,
    labels: w.labels,
    state: w.state,
    reason: w.reason,
    environment: w.environment,
    created_at: w.created_at,
    expires_at: w.expires_at,
    command_count: w.command_count,
    last_activity_at: w.last_activity_at,
    last_command_at: w.last_command?.started_at ?? null,
  };
}
export const WorkspaceListResult = z.object({ workspaces: z.array(WorkspaceSummary) });
export const WorkspaceSyncResult = z.object({
  workspace_id: z.string(),
  source_path: z.string(),
  mode: z.enum(["directory", "tar_archive"]),
  destination: z.string(),
  entry_count: z.number().int(),
  bytes_written: z.number().int(),
  baseline_updated: z
    .boolean()
    .describe("Whether the baseline (what workspace_diff compares with) moved too."),
});
export const WorkspaceExecResult = z.object({
  workspace_id: z.string(),
  sequence: z.number().int(),
  ...execFields,
});
export const CommandLogEntry = z.object({
  sequence: z.number().int(),
  command: z.string(),
  exit_code: z.number().int(),
  timed_out: z.boolean(),
  started_at: z.string(),
  duration_ms: z.number().int(),
  stdout_bytes: z.number().int(),
  stderr_bytes: z.number().int(),
  output_id: z.string(),
  ...z.object(outputViewFields).omit({ stdout_bytes: true, stderr_bytes: true }).partial().shape,
});
export const WorkspaceLogsResult = z.object({
  workspace_id: z.string(),
  command_count: z.number().int().describe("Commands run in the workspace in all."),
  commands: z.array(CommandLogEntry).describe("The most recent `limit` commands, oldest first."),
});
export const WorkspaceDeleteResult = z.object({ workspace_id: z.string(), deleted: z.boolean() });

export type WorkspaceCreateInputT = z.infer<typeof WorkspaceCreateInput>;
export type WorkspaceSyncInputT = z.infer<typeof WorkspaceSyncInput>;
export type WorkspaceExecInputT = z.infer<typeof WorkspaceExecInput>;
export type WorkspaceStatusResultT = z.infer<typeof WorkspaceStatusResult>;
export type WorkspaceExecResultT = z.infer<typeof WorkspaceExecResult>;
export type WorkspaceSyncResultT = z.infer<typeof WorkspaceSyncResult>;
export type CommandLogEntryT = z.infer<typeof CommandLogEntry>;
export type WorkspaceLogsInputT = z.infer<typeof WorkspaceLogsInput>;
export type WorkspaceLogsResultT = z.infer<typeof WorkspaceLogsResult>;
export type WorkspaceListInputT = z.infer<typeof WorkspaceListInput>;
export type WorkspaceUpdateInputT = z.infer<typeof WorkspaceUpdateInput>;
export type SeedInfoT = z.infer<typeof SeedInfo>;
