import * as z from "zod";
import { DEFAULT_ENVIRONMENT } from "../environments/catalog.js";
import { NetworkInfoSchema, networkRuleFields, publishField } from "../network/schemas.js";
import { READ_LIMIT } from "../output/store.js";
import { OUTPUT_BUDGET } from "../output/view.js";
import { secretEnvField, secretsField } from "../secrets/spec.js";

/**
 * Wire schemas shared by the CLI (flag validation), the SDK (types) and the MCP server
 * (tool input/output schemas). Field names here are the public contract.
 */

export const LIMITS = {
  vcpuMax: 16,
  memMibMin: 128,
  memMibMax: 65536,
  timeoutMax: 86_400,
  ttlMax: 7 * 86_400,
} as const;

export const DEFAULTS = {
  vcpu_count: 1,
  mem_mib: 1024,
  timeout_seconds: 30,
  ttl_seconds: 600,
  max_ttl_seconds: 86_400,
  network: false,
} as const;

const environment = z
  .string()
  .min(1)
  .max(200)
  .describe(
    `Environment name, e.g. "debian:12" (Git), "debian:12-base" (minimal), "debian:12-build" (gcc, make, python3); an OCI image reference with its registry ("docker.io/library/python:3.12-slim", "localhost:5000/app:1", "ghcr.io/org/img@sha256:…"), pulled on first use; or a user environment the operator built from a recipe. Default ${DEFAULT_ENVIRONMENT}.`,
  );
const command = z
  .union([z.string().min(1).max(100_000), z.array(z.string().max(100_000)).min(1).max(10_000)])
  .describe(
    "The command. A string runs through /bin/sh -c (pipes, &&, globbing work); an array is an argv run directly.",
  );
const vcpu_count = z
  .number()
  .int()
  .min(1)
  .max(LIMITS.vcpuMax)
  .describe(`Virtual CPUs (1-${LIMITS.vcpuMax}). Default 1.`);
const mem_mib = z
  .number()
  .int()
  .min(LIMITS.memMibMin)
  .max(LIMITS.memMibMax)
  .describe(`Memory limit in MiB (${LIMITS.memMibMin}-${LIMITS.memMibMax}). Default 1024.`);
const timeout_seconds = z
  .number()
  .int()
  .min(1)
  .max(LIMITS.timeoutMax)
  .describe("Kill the command (and everything it started) after this many seconds. Default 30.");
const ttl_seconds = z
  .number()
  .int()
  .min(1)
  .max(LIMITS.ttlMax)
  .describe("Seconds until the sandbox expires and is reaped. Default 600.");
const network = z
  .boolean()
  .describe(
    "Give the guest network access: the old spelling of network_policy=egress. Default false (loopback only).",
  );
const allow_host_compat = z
  .boolean()
  .describe(
    "If no isolated engine works, run on the host WITHOUT isolation (results say execution_mode=host_compat). Default false.",
  );
const max_output_bytes = z
  .number()
  .int()
  .min(OUTPUT_BUDGET.min)
  .max(OUTPUT_BUDGET.max)
  .describe(
    `Output budget of the result in bytes, stdout and stderr together (${OUTPUT_BUDGET.min}-${OUTPUT_BUDGET.max}). Default ${OUTPUT_BUDGET.default}. Past it each stream keeps its head and tail; the full output is kept on the host for output_read.`,
  );
export const workspaceId = z
  .string()
  .max(20_000)
  .describe("Workspace id as returned by workspace_create (ws_…), or the workspace's name.");
/** Names and labels (workspaces/naming.ts checks them). */
export const workspaceName = z
  .string()
  .max(63)
  .describe(
    "A name for the workspace, unique among the caller's workspaces; usable wherever a workspace id is.",
  );
export const workspaceLabels = z
  .record(z.string().max(63), z.string().max(256))
  .describe('Labels: string keys and values, e.g. {"task": "123"}.');
export const vmId = z.string().max(20_000).describe("VM id as returned by vm_create (vm_…).");

export const ExecutionModeSchema = z.enum(["firecracker", "qemu", "gvisor", "host_compat"]);

/* ---------- inputs ---------- */

export const RunInput = z.object({
  environment: environment.default(DEFAULT_ENVIRONMENT),
  command,
  vcpu_count: vcpu_count.default(DEFAULTS.vcpu_count),
  mem_mib: mem_mib.default(DEFAULTS.mem_mib),
  timeout_seconds: timeout_seconds.default(DEFAULTS.timeout_seconds),
  ttl_seconds: ttl_seconds.default(DEFAULTS.ttl_seconds),
  network: network.default(false),
  ...networkRuleFields,
  allow_host_compat: allow_host_compat.default(false),
  max_output_bytes: max_output_bytes.default(OUTPUT_BUDGET.default),
});

export const VmCreateInput = z.object({
  environment: environment.default(DEFAULT_ENVIRONMENT),
  vcpu_count: vcpu_count.default(DEFAULTS.vcpu_count),
  mem_mib: mem_mib.default(DEFAULTS.mem_mib),
  ttl_seconds: ttl_seconds.default(DEFAULTS.ttl_seconds),
  network: network.default(false),
  ...networkRuleFields,
  allow_host_compat: allow_host_compat.default(false),
});
export const VmIdInput = z.object({ vm_id: vmId });
export const VmExecInput = z.object({
  vm_id: vmId,
  command,
  timeout_seconds: timeout_seconds.default(DEFAULTS.timeout_seconds),
  max_output_bytes: max_output_bytes.default(OUTPUT_BUDGET.default),
});
export const EmptyInput = z.object({});
export const EnvNameInput = z.object({ environment });
export const EnvPruneInput = z.object({
  all: z.boolean().default(false).describe("Also remove installed catalog environments."),
});

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
export const PrepareInput = z.object({
  environment: environment.default(DEFAULT_ENVIRONMENT),
  network: z
    .boolean()
    .default(false)
    .describe("Warm a sandbox with network access (as network=true calls get)."),
  force: z.boolean().default(false).describe("Prepare again even when the environment is already warm."),
});
export const DoctorInput = z.object({
  environment: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .describe("Also say whether this environment is warm, cold or stale (see `pyro prepare`)."),
});

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
export const OutputReadInput = z.object({
  output_id: z
    .string()
    .min(1)
    .max(200)
    .describe(
      "output_id of a command's result (vm_… for one-shot runs, ws_…:SEQUENCE for workspace commands).",
    ),
  stream: z.enum(["stdout", "stderr"]).default("stdout").describe("Which stream. Default stdout."),
  offset: z
    .number()
    .int()
    .min(0)
    .default(0)
    .describe("Byte offset to start at (next_offset of the previous page). Default 0."),
  limit: z
    .number()
    .int()
    .min(1)
    .max(READ_LIMIT.max)
    .default(READ_LIMIT.default)
    .describe(`Bytes to read (1-${READ_LIMIT.max}). Default ${READ_LIMIT.default}.`),
});

/* ---------- results ---------- */

const encoding = z.enum(["utf-8", "base64"]);
/** The bounded view of both streams (src/output/view.ts), in contract order. */
const outputViewFields = {
  stdout: z
    .string()
    .describe(
      "Standard output, within max_output_bytes: past it, head and tail joined by a `[pyro: N bytes omitted…]` line.",
    ),
  stderr: z.string().describe("Standard error, like stdout."),
  stdout_truncated: z.boolean().describe("stdout here is not the whole stream (see stdout_omitted_bytes)."),
  stderr_truncated: z.boolean(),
  stdout_encoding: encoding.describe(
    "utf-8, or base64 when the bytes are not valid UTF-8 (head and tail encoded apart, around the marker).",
  ),
  stderr_encoding: encoding,
  stdout_bytes: z.number().int().describe("Bytes the command wrote to stdout in all."),
  stderr_bytes: z.number().int(),
  stdout_omitted_bytes: z.number().int().describe("Bytes of stdout left out of this result (0 if none)."),
  stderr_omitted_bytes: z.number().int(),
};

const execFields = {
  environment: z.string(),
  command: z.string().describe("The command as run (argv joined with shell quoting)."),
  exit_code: z.number().int().describe("The command's exit code; 124 on timeout."),
  ...outputViewFields,
  output_id: z.string().describe("Handle of the full output kept on the host: page it with output_read."),
  timed_out: z.boolean(),
  too_many_processes: z
    .boolean()
    .describe(
      "The sandbox was at its process limit (PYRO_PIDS_LIMIT) while the command ran, so forks may have failed; what the command left running was killed.",
    ),
  duration_ms: z.number().int(),
  boot_ms: z.number().int(),
  exec_ms: z.number().int(),
  execution_mode: ExecutionModeSchema,
  notes: z
    .array(z.string())
    .describe(
      "Where the engine honoured the request differently from what was asked (e.g. gVisor's CPU count).",
    ),
};

export const RunResult = z.object({ vm_id: z.string(), ...execFields, cleaned_up: z.boolean() });
export const VmExecResult = RunResult;

export const VmState = z.enum([
  "created",
  "starting",
  "running",
  "stopped",
  "expired",
  "failed",
  "damaged",
  "deleted",
]);
export const VmStatusResult = z.object({
  vm_id: z.string(),
  environment: z.string(),
  state: VmState,
  reason: z.string().nullable(),
  created_at: z.string(),
  expires_at: z.string(),
  vcpu_count: z.number().int(),
  mem_mib: z.number().int(),
  network: z.boolean(),
  execution_mode: ExecutionModeSchema.nullable(),
});
export const VmListResult = z.object({ vms: z.array(VmStatusResult) });
export const VmDeleteResult = z.object({ vm_id: z.string(), deleted: z.boolean() });
export const VmNetworkResult = z.object({
  vm_id: z.string(),
  network: z.boolean(),
  mode: z
    .enum(["none", "namespace", "user", "host"])
    .describe(
      "none: loopback only; namespace: a network namespace of pyro's, the policy enforced by nftables; host: the host's own network (sandboxes made before network policies).",
    ),
  execution_mode: ExecutionModeSchema.nullable(),
  network_info: NetworkInfoSchema.nullable().describe(
    "The policy and addresses the sandbox really has (null when it is not running).",
  ),
});
export const ReapResult = z.object({
  reaped_vms: z.array(z.string()),
  reaped_workspaces: z.array(z.string()),
});

export const EnvInfo = z.object({
  name: z.string(),
  kind: z.enum(["catalog", "image", "recipe"]),
  description: z.string(),
  digest: z.string().nullable(),
  installed: z.boolean(),
  path: z.string().nullable(),
  size_bytes: z.number().nullable(),
  built_at: z.string().nullable(),
  recipe: z.object({ suite: z.string(), variant: z.string(), packages: z.array(z.string()) }).nullable(),
  config: z
    .object({
      env: z.record(z.string(), z.string()),
      working_dir: z.string().nullable(),
      uid: z.number(),
      gid: z.number(),
    })
    .nullable(),
});
export const EnvListResult = z.object({ environments: z.array(EnvInfo) });
export const EnvPullResult = z.object({
  environment: EnvInfo,
  pulled: z.boolean(),
  bytes_downloaded: z.number(),
  layers_downloaded: z.number(),
  layers_cached: z.number(),
});
export const EnvBuildInput = z.object({
  recipe_path: z
    .string()
    .min(1)
    .max(4096)
    .describe("Path of a JSON recipe file (relative paths resolve against the current directory)."),
});
export const EnvBuildResult = z.object({
  environment: EnvInfo,
  built: z.boolean(),
  duration_ms: z.number(),
});
export const EnvPruneResult = z.object({ removed: z.array(z.string()), bytes_freed: z.number() });

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
export const OutputReadResult = z.object({
  output_id: z.string(),
  stream: z.enum(["stdout", "stderr"]),
  offset: z.number().int(),
  next_offset: z.number().int().describe("Offset of the next page."),
  total_bytes: z.number().int().describe("Bytes of the stream stored on the host."),
  eof: z.boolean().describe("This page reaches the end of the stream."),
  data: z.string(),
  encoding: encoding.describe("utf-8, or base64 when the page is not valid UTF-8."),
});
export const WorkspaceDeleteResult = z.object({ workspace_id: z.string(), deleted: z.boolean() });

export const WarmState = z.enum(["warm", "cold", "stale"]);
export const PrepareResult = z.object({
  environment: z.string(),
  state: WarmState,
  pulled: z.boolean().describe("Whether the environment was built (or fetched) by this call."),
  warm_run_ms: z
    .number()
    .int()
    .nullable()
    .describe("The throwaway sandbox's run; null when it was already warm."),
  execution_mode: ExecutionModeSchema.nullable(),
  detail: z.string(),
});
export const EnvironmentState = z.object({ name: z.string(), state: WarmState, detail: z.string() });

export const EngineReport = z.object({
  engine: z.enum(["firecracker", "qemu", "gvisor", "host"]),
  available: z.boolean(),
  detail: z.string(),
  probe_ms: z.number().nullable(),
  capabilities: z.object({ vm_boot: z.boolean(), guest_exec: z.boolean(), guest_network: z.boolean() }),
});
export const DoctorResult = z.object({
  platform: z.object({
    os: z.string(),
    arch: z.string(),
    kernel: z.string(),
    node: z.string(),
    user: z.string(),
    root: z.boolean(),
  }),
  kvm: z.object({
    exists: z.boolean(),
    readable: z.boolean(),
    writable: z.boolean(),
    boots: z.boolean().nullable(),
    detail: z.string(),
  }),
  engines: z.array(EngineReport),
  default_engine: z.string().nullable(),
  capabilities: z.object({ vm_boot: z.boolean(), guest_exec: z.boolean(), guest_network: z.boolean() }),
  networking: z.object({
    default: z.literal("none"),
    available_modes: z.array(z.string()),
    detail: z.string(),
  }),
  paths: z.object({ cache_dir: z.string(), state_dir: z.string(), environments_dir: z.string() }),
  sandbox_priority: z
    .object({ nice: z.number().int(), detail: z.string() })
    .describe("The CPU niceness sandbox processes run at (PYRO_SANDBOX_NICE; 0: pyro's own)."),
  environments: z.array(z.object({ name: z.string(), installed: z.boolean() })),
  host_tools: z.record(z.string(), z.string().nullable()),
  ok: z.boolean(),
  problems: z.array(z.string()),
  environment_state: EnvironmentState.nullable()
    .optional()
    .describe("With --environment: warm, cold or stale."),
});

export type RunInputT = z.infer<typeof RunInput>;
export type VmCreateInputT = z.infer<typeof VmCreateInput>;
export type VmExecInputT = z.infer<typeof VmExecInput>;
export type WorkspaceCreateInputT = z.infer<typeof WorkspaceCreateInput>;
export type WorkspaceSyncInputT = z.infer<typeof WorkspaceSyncInput>;
export type WorkspaceExecInputT = z.infer<typeof WorkspaceExecInput>;
export type RunResultT = z.infer<typeof RunResult>;
export type VmStatusResultT = z.infer<typeof VmStatusResult>;
export type EnvInfoT = z.infer<typeof EnvInfo>;
export type WorkspaceStatusResultT = z.infer<typeof WorkspaceStatusResult>;
export type WorkspaceExecResultT = z.infer<typeof WorkspaceExecResult>;
export type WorkspaceSyncResultT = z.infer<typeof WorkspaceSyncResult>;
export type CommandLogEntryT = z.infer<typeof CommandLogEntry>;
export type WorkspaceLogsInputT = z.infer<typeof WorkspaceLogsInput>;
export type WorkspaceLogsResultT = z.infer<typeof WorkspaceLogsResult>;
export type OutputReadInputT = z.infer<typeof OutputReadInput>;
export type WorkspaceListInputT = z.infer<typeof WorkspaceListInput>;
export type WorkspaceUpdateInputT = z.infer<typeof WorkspaceUpdateInput>;
export type SeedInfoT = z.infer<typeof SeedInfo>;
export type DoctorResultT = z.infer<typeof DoctorResult>;
export type ReapResultT = z.infer<typeof ReapResult>;
export type PrepareInputT = z.infer<typeof PrepareInput>;
export type PrepareResultT = z.infer<typeof PrepareResult>;
