import * as z from "zod";
import { DEFAULT_ENVIRONMENT } from "../environments/catalog.js";

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
  network: false,
} as const;

const environment = z
  .string()
  .min(1)
  .max(200)
  .describe(
    `Environment name, e.g. "debian:12" (Git), "debian:12-base" (minimal), "debian:12-build" (gcc, make, python3). Default ${DEFAULT_ENVIRONMENT}.`,
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
const network = z.boolean().describe("Give the guest network access. Default false (loopback only).");
const allow_host_compat = z
  .boolean()
  .describe(
    "If no isolated engine works, run on the host WITHOUT isolation (results say execution_mode=host_compat). Default false.",
  );
export const workspaceId = z
  .string()
  .max(20_000)
  .describe("Workspace id as returned by workspace_create (ws_…).");
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
  allow_host_compat: allow_host_compat.default(false),
});

export const VmCreateInput = z.object({
  environment: environment.default(DEFAULT_ENVIRONMENT),
  vcpu_count: vcpu_count.default(DEFAULTS.vcpu_count),
  mem_mib: mem_mib.default(DEFAULTS.mem_mib),
  ttl_seconds: ttl_seconds.default(DEFAULTS.ttl_seconds),
  network: network.default(false),
  allow_host_compat: allow_host_compat.default(false),
});
export const VmIdInput = z.object({ vm_id: vmId });
export const VmExecInput = z.object({
  vm_id: vmId,
  command,
  timeout_seconds: timeout_seconds.default(DEFAULTS.timeout_seconds),
});
export const EmptyInput = z.object({});
export const EnvNameInput = z.object({ environment });
export const EnvPruneInput = z.object({
  all: z.boolean().default(false).describe("Also remove installed catalog environments."),
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
  ttl_seconds: ttl_seconds.default(DEFAULTS.ttl_seconds),
  network: network.default(false),
  allow_host_compat: allow_host_compat.default(false),
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
});

/* ---------- results ---------- */

const execFields = {
  environment: z.string(),
  command: z.string().describe("The command as run (argv joined with shell quoting)."),
  exit_code: z.number().int().describe("The command's exit code; 124 on timeout."),
  stdout: z.string(),
  stderr: z.string(),
  stdout_truncated: z.boolean(),
  stderr_truncated: z.boolean(),
  timed_out: z.boolean(),
  duration_ms: z.number().int(),
  boot_ms: z.number().int(),
  exec_ms: z.number().int(),
  execution_mode: ExecutionModeSchema,
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
    .enum(["none", "host"])
    .describe("none: loopback only; host: the guest shares the host's network through the engine."),
  execution_mode: ExecutionModeSchema.nullable(),
});
export const ReapResult = z.object({
  reaped_vms: z.array(z.string()),
  reaped_workspaces: z.array(z.string()),
});

export const EnvInfo = z.object({
  name: z.string(),
  description: z.string(),
  digest: z.string(),
  installed: z.boolean(),
  path: z.string().nullable(),
  size_bytes: z.number().nullable(),
  built_at: z.string().nullable(),
  recipe: z.object({ suite: z.string(), variant: z.string(), packages: z.array(z.string()) }),
});
export const EnvListResult = z.object({ environments: z.array(EnvInfo) });
export const EnvPullResult = z.object({ environment: EnvInfo, pulled: z.boolean() });
export const EnvPruneResult = z.object({ removed: z.array(z.string()), bytes_freed: z.number() });

export const SeedInfo = z.object({
  mode: z.enum(["empty", "directory", "tar_archive"]),
  seed_path: z.string().nullable(),
  destination: z.string(),
  entry_count: z.number().int(),
  bytes_written: z.number().int(),
});
export const LastCommand = z.object({
  sequence: z.number().int(),
  command: z.string(),
  exit_code: z.number().int(),
  started_at: z.string(),
  duration_ms: z.number().int(),
});
export const WorkspaceState = z.enum(["creating", "running", "stopped", "expired", "failed", "damaged"]);
export const WorkspaceStatusResult = z.object({
  workspace_id: z.string(),
  environment: z.string(),
  state: WorkspaceState,
  reason: z.string().nullable(),
  created_at: z.string(),
  expires_at: z.string(),
  vcpu_count: z.number().int(),
  mem_mib: z.number().int(),
  network: z.boolean(),
  execution_mode: ExecutionModeSchema.nullable(),
  command_count: z.number().int(),
  last_command: LastCommand.nullable(),
  workspace_seed: SeedInfo,
});
/** One line of workspace_list: enough to recognise a workspace and act on it. */
export const WorkspaceSummary = z.object({
  workspace_id: z.string(),
  state: WorkspaceState,
  reason: z
    .string()
    .nullable()
    .describe("Why it is not running (failed, damaged, expired); null when running."),
  environment: z.string(),
  created_at: z.string(),
  expires_at: z.string(),
  command_count: z.number().int(),
  last_command_at: z.string().nullable().describe("When the last command started; null if none ran."),
});
export function workspaceSummary(w: z.infer<typeof WorkspaceStatusResult>): z.infer<typeof WorkspaceSummary> {
  return {
    workspace_id: w.workspace_id,
    state: w.state,
    reason: w.reason,
    environment: w.environment,
    created_at: w.created_at,
    expires_at: w.expires_at,
    command_count: w.command_count,
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
  stdout: z.string(),
  stderr: z.string(),
  stdout_truncated: z.boolean(),
  stderr_truncated: z.boolean(),
  timed_out: z.boolean(),
  started_at: z.string(),
  duration_ms: z.number().int(),
});
export const WorkspaceLogsResult = z.object({ workspace_id: z.string(), commands: z.array(CommandLogEntry) });
export const WorkspaceDeleteResult = z.object({ workspace_id: z.string(), deleted: z.boolean() });

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
  environments: z.array(z.object({ name: z.string(), installed: z.boolean() })),
  host_tools: z.record(z.string(), z.string().nullable()),
  ok: z.boolean(),
  problems: z.array(z.string()),
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
export type SeedInfoT = z.infer<typeof SeedInfo>;
export type DoctorResultT = z.infer<typeof DoctorResult>;
export type ReapResultT = z.infer<typeof ReapResult>;
