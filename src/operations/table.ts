import { OUTPUT_BUDGET } from "../contract/defaults.js";
import * as S from "../contract/schemas.js";
import { PyroError } from "../core/errors.js";
import { checkId } from "../core/ids.js";
import { ONESHOT_RETENTION, readOutputPage } from "../output/store.js";
import { environmentState, prepare } from "../runtime/prepare.js";
import { secretsFromFlags } from "../secrets/spec.js";
import { DISK_OPERATIONS } from "./disk.js";
import { FILE_OPERATIONS } from "./files.js";
import { LIFECYCLE_OPERATIONS } from "./lifecycle.js";
import { type CliSpec, type Operation, op } from "./operation.js";
import { POOL_OPERATIONS } from "./pool.js";
import { SESSION_OPERATIONS } from "./session-ops.js";
import { SNAPSHOT_OPERATIONS } from "./snapshots.js";
import { nearest } from "./suggest.js";

export type { CliSpec, Operation };

/**
 * The output budget, stated in every command tool's description (the numbers are in the
 * max_output_bytes field's own description: said once, not twice, in a tools/list).
 */
const OUTPUT_NOTE =
  "Past max_output_bytes each stream keeps its head and tail (stdout_omitted_bytes/stderr_omitted_bytes count the rest); " +
  "output_read pages the full output by output_id. ";

/** `workspace create`'s secret flags, which the CLI turns into the wire's `secrets`. */
const SECRET_FLAGS = [
  {
    flag: "--secret <NAME=VALUE>",
    description:
      "a secret given on the command line (visible in your shell history; prefer --secret-file or --secret-env) (repeatable)",
    repeatable: true,
  },
  {
    flag: "--secret-file <NAME=PATH>",
    description: "a secret read from a host file (repeatable)",
    repeatable: true,
  },
  {
    flag: "--secret-env <NAME[=VAR]>",
    description: "a secret read from pyro's environment variable NAME (or VAR) (repeatable)",
    repeatable: true,
  },
];

export const OPERATIONS = [
  op({
    name: "vm_run",
    sdk: "runInVm",
    title: "Run a command in a fresh sandbox",
    description:
      "Run one command in a fresh, isolated Linux sandbox, deleted afterwards. " +
      "This is the default tool: prefer vm_run for one-shot commands; use workspace_* only for repeated commands in one workspace. " +
      "" +
      OUTPUT_NOTE +
      "Network is off unless network=true. The environment is built on first use (about 20-60 s once).",
    input: S.RunInput,
    result: S.RunResult,
    mcp: true,
    cli: {
      path: ["run"],
      positional: ["environment"],
      rest: "command",
      examples: [
        "pyro run debian:12 -- git --version",
        "pyro run debian:12 --timeout-seconds 5 -- sh -c 'echo hi; exit 3'",
        "pyro run debian:12-build --json -- gcc --version",
      ],
    },
    handler: (rt, i, ctx) => rt.vms.run(i, ctx),
  }),
  op({
    name: "vm_list_environments",
    sdk: "listEnvironments",
    title: "List environments",
    description:
      "List the sandbox environments (root filesystems) pyro can run, whether each is installed in the local cache, and its size.",
    input: S.EmptyInput,
    result: S.EnvListResult,
    mcp: true,
    readOnly: true,
    cli: { path: ["env", "list"], examples: ["pyro env list", "pyro env list --json"] },
    handler: async (rt) => ({ environments: await rt.envs.list() }),
  }),
  op({
    name: "env_pull",
    sdk: "pullEnvironment",
    title: "Build or fetch an environment",
    description:
      "Build a catalog environment's root filesystem into the cache (no-op when it is already there), or pull an OCI image reference from its registry (again: a moved tag is fetched; layers already cached are not downloaded).",
    input: S.EnvNameInput,
    result: S.EnvPullResult,
    mcp: false,
    cli: {
      path: ["env", "pull"],
      positional: ["environment"],
      examples: [
        "pyro env pull debian:12",
        "pyro env pull docker.io/library/python:3.12-slim",
        "pyro env pull localhost:5000/app:1 --json",
      ],
    },
    handler: (rt, i, ctx) => rt.pullEnvironment(i.environment, ctx),
  }),
  op({
    name: "env_build",
    sdk: "buildEnvironment",
    title: "Build a user environment from a recipe",
    description:
      "Build a user environment from a JSON recipe (base, packages, files, run, env, workdir); cached by the recipe's digest, so an unchanged recipe is not rebuilt. The recipe's name is then usable wherever an environment is.",
    input: S.EnvBuildInput,
    result: S.EnvBuildResult,
    mcp: false,
    cli: {
      path: ["env", "build"],
      positional: ["recipe_path"],
      examples: ["pyro env build ./recipe.json", "pyro env build ./recipe.json --json"],
    },
    handler: (rt, i, ctx) => rt.buildEnvironment(i.recipe_path, ctx),
  }),
  op({
    name: "env_inspect",
    sdk: "inspectEnvironment",
    title: "Inspect an environment",
    description: "Show an environment's recipe, digest, cache path, size and whether it is installed.",
    input: S.EnvNameInput,
    result: S.EnvInfo,
    mcp: false,
    readOnly: true,
    cli: { path: ["env", "inspect"], positional: ["environment"], examples: ["pyro env inspect debian:12"] },
    handler: (rt, i) => rt.envs.info(i.environment),
  }),
  op({
    name: "env_prune",
    sdk: "pruneEnvironments",
    title: "Prune the environment cache",
    description:
      "Remove cached environments no recipe uses any more, interrupted builds, and microVM disk images and snapshots made from environments that are gone; with all=true, every cached environment, image and snapshot.",
    input: S.EnvPruneInput,
    result: S.EnvPruneResult,
    mcp: false,
    destructive: true,
    cli: { path: ["env", "prune"], examples: ["pyro env prune", "pyro env prune --all"] },
    handler: (rt, i) => rt.pruneEnvironments({ all: i.all }),
  }),
  op({
    name: "doctor",
    sdk: "doctor",
    title: "Check the host",
    description:
      "Probe the host: platform, KVM, each engine (by really running a sandbox), capabilities, networking, cache and state paths.",
    input: S.DoctorInput,
    result: S.DoctorResult,
    mcp: false,
    readOnly: true,
    cli: {
      path: ["doctor"],
      examples: [
        "pyro doctor",
        "pyro doctor --json",
        "pyro doctor --environment debian:12",
        "pyro doctor --fresh",
      ],
    },
    handler: async (rt, i, ctx) => ({
      ...(await rt.doctor(ctx, { fresh: i.fresh })),
      environment_state: i.environment ? await environmentState(rt, i.environment) : null,
    }),
  }),
  op({
    name: "prepare",
    sdk: "prepare",
    title: "Prepare an environment",
    description:
      "Build the environment if needed and run one throwaway sandbox, so the first real call starts warm; records it for `pyro doctor --environment`.",
    input: S.PrepareInput,
    result: S.PrepareResult,
    mcp: false,
    cli: {
      path: ["prepare"],
      positional: ["environment"],
      examples: ["pyro prepare", "pyro prepare debian:12-build --json", "pyro prepare debian:12 --force"],
    },
    handler: (rt, i, ctx) => prepare(rt, i, ctx),
  }),
  op({
    name: "vm_create",
    sdk: "createVm",
    title: "Create a VM",
    description:
      "Create a VM record (not started yet). Lower-level than vm_run: use vm_start then vm_exec; vm_exec deletes the VM after its one command.",
    input: S.VmCreateInput,
    result: S.VmStatusResult,
    mcp: true,
    cli: {
      path: ["vm", "create"],
      positional: ["environment"],
      examples: ["pyro vm create debian:12 --json"],
    },
    handler: (rt, i, ctx) => rt.vms.create(i, ctx),
  }),
  op({
    name: "vm_start",
    sdk: "startVm",
    title: "Start a VM",
    description: "Boot the sandbox of a VM created with vm_create.",
    input: S.VmIdInput,
    result: S.VmStatusResult,
    mcp: true,
    cli: { path: ["vm", "start"], positional: ["vm_id"], examples: ["pyro vm start vm_0123456789abcdef"] },
    handler: (rt, i, ctx) => rt.vms.start(checkId("vm", i.vm_id), ctx),
  }),
  op({
    name: "vm_exec",
    sdk: "execVm",
    title: "Run one command in a VM, then delete it",
    description:
      "Run one command in a VM (starting it if needed) and then delete the VM. Timeout default 30 s. For several commands in one place use workspace_*. " +
      OUTPUT_NOTE,
    input: S.VmExecInput,
    result: S.VmExecResult,
    mcp: true,
    destructive: true,
    cli: {
      path: ["vm", "exec"],
      positional: ["vm_id"],
      rest: "command",
      examples: ["pyro vm exec vm_0123456789abcdef -- uname -a"],
    },
    handler: (rt, i, ctx) => rt.vms.exec(i, ctx),
  }),
  op({
    name: "vm_stop",
    sdk: "stopVm",
    title: "Stop a VM",
    description: "Stop a VM's sandbox; the record stays (vm_start boots it again, fresh).",
    input: S.VmIdInput,
    result: S.VmStatusResult,
    mcp: true,
    cli: { path: ["vm", "stop"], positional: ["vm_id"], examples: ["pyro vm stop vm_0123456789abcdef"] },
    handler: (rt, i) => rt.vms.stop(i.vm_id),
  }),
  op({
    name: "vm_delete",
    sdk: "deleteVm",
    title: "Delete a VM",
    description:
      "Stop and remove a VM and everything it left behind; given the vm_id of a one-shot run in flight (vm_list), end that run and remove its sandbox.",
    input: S.VmIdInput,
    result: S.VmDeleteResult,
    mcp: true,
    destructive: true,
    cli: { path: ["vm", "delete"], positional: ["vm_id"], examples: ["pyro vm delete vm_0123456789abcdef"] },
    handler: (rt, i) => rt.vms.delete(i.vm_id),
  }),
  op({
    name: "vm_status",
    sdk: "statusVm",
    title: "VM status",
    description:
      "State of a VM: created, running, stopped, expired or failed (with the reason), resources and expiry.",
    input: S.VmIdInput,
    result: S.VmStatusResult,
    mcp: true,
    readOnly: true,
    cli: {
      path: ["vm", "status"],
      positional: ["vm_id"],
      examples: ["pyro vm status vm_0123456789abcdef --json"],
    },
    handler: (rt, i) => rt.vms.status(i.vm_id),
  }),
  op({
    name: "vm_network_info",
    sdk: "networkInfoVm",
    title: "VM network",
    description: "Whether a VM has network access and in which mode (none = loopback only).",
    input: S.VmIdInput,
    result: S.VmNetworkResult,
    mcp: true,
    readOnly: true,
    cli: {
      path: ["vm", "network-info"],
      positional: ["vm_id"],
      examples: ["pyro vm network-info vm_0123456789abcdef"],
    },
    handler: (rt, i) => rt.vms.networkInfo(i.vm_id),
  }),
  op({
    name: "vm_reap_expired",
    sdk: "reapExpired",
    title: "Reap expired sandboxes",
    description:
      "Stop and clean up every VM and workspace past its TTL (this also happens on any pyro call).",
    input: S.EmptyInput,
    result: S.ReapResult,
    mcp: true,
    destructive: true,
    cli: { path: ["vm", "reap"], examples: ["pyro vm reap --json"] },
    handler: (rt) => rt.reapExpired(),
  }),
  op({
    name: "vm_list",
    sdk: "listVms",
    title: "List VMs and runs in flight",
    description:
      "List VMs created with vm_create that still exist, and the one-shot vm_run calls still running " +
      '(kind "run"), each with its owner (the tenant that started it) and age_seconds. vm_delete with a run\'s vm_id ends it and removes its sandbox.',
    input: S.EmptyInput,
    result: S.VmListResult,
    mcp: true,
    readOnly: true,
    cli: { path: ["vm", "list"], examples: ["pyro vm list", "pyro vm list --json"] },
    handler: async (rt) => ({ vms: await rt.vms.list() }),
  }),
  op({
    name: "workspace_create",
    sdk: "createWorkspace",
    title: "Create a persistent workspace",
    description:
      "Create and start a persistent sandbox whose /workspace directory survives between commands. " +
      "It expires ttl_seconds (default 600) after its last exec or sync push, and at the latest max_ttl_seconds (default 24 h) after creation: its sandbox and files are then removed. Change both with workspace_update. " +
      "seed_path (a host directory or .tar/.tar.gz/.tgz) is unpacked into /workspace first. " +
      "name (unique, usable instead of the id) and labels help find it again with workspace_list. " +
      "Use only for repeated commands in one place; prefer vm_run for one-shot commands. Delete it with workspace_delete when done.",
    input: S.WorkspaceCreateInput,
    result: S.WorkspaceStatusResult,
    mcp: true,
    cli: {
      path: ["workspace", "create"],
      positional: ["environment"],
      examples: [
        "pyro workspace create debian:12 --seed-path ./myrepo",
        "WS=$(pyro workspace create debian:12 --id-only)",
        "pyro workspace create debian:12 --secret-env GITHUB_TOKEN --secret-file KEY=./deploy.key",
        "pyro workspace create debian:12 --name api-fix --label task=123 --label team=core",
      ],
      extraFlags: [
        { flag: "--id-only", description: "print only the new workspace id (for scripts)" },
        ...SECRET_FLAGS,
      ],
      fieldFlags: { secrets: SECRET_FLAGS.map((f) => f.flag.split(" ")[0]!) },
      fromFlags: (o) => {
        const secrets = secretsFromFlags(o);
        return secrets.length ? { secrets } : {};
      },
    },
    handler: (rt, i, ctx) => rt.workspaces.create(i, ctx),
  }),
  op({
    name: "workspace_sync_push",
    sdk: "pushWorkspaceSync",
    title: "Copy host files into a workspace",
    description:
      "Copy a host directory or .tar/.tar.gz/.tgz archive into a running workspace at dest (default /workspace; must stay inside /workspace). Existing files are overwritten, others left alone. update_baseline=true also records them in the baseline, so workspace_diff does not report them.",
    input: S.WorkspaceSyncInput,
    result: S.WorkspaceSyncResult,
    mcp: true,
    cli: {
      path: ["workspace", "sync", "push"],
      positional: ["workspace_id", "source_path"],
      examples: [
        "pyro workspace sync push ws_0123456789abcdef ./src --dest /workspace/src",
        "pyro workspace sync push ws_0123456789abcdef ./vendor --update-baseline",
      ],
    },
    handler: (rt, i, ctx) => rt.workspaces.syncPush(i, ctx),
  }),
  op({
    name: "workspace_exec",
    sdk: "execWorkspace",
    title: "Run a command in a workspace",
    description:
      "Run a command in /workspace of a running workspace. Files and the rest of the sandbox persist between calls. " +
      OUTPUT_NOTE +
      "To read, write or edit files prefer the workspace_file_* tools (no shell quoting).",
    input: S.WorkspaceExecInput,
    result: S.WorkspaceExecResult,
    mcp: true,
    cli: {
      path: ["workspace", "exec"],
      positional: ["workspace_id"],
      rest: "command",
      examples: [
        "pyro workspace exec ws_0123456789abcdef -- make test",
        "pyro workspace exec ws_0123456789abcdef --secret-env GITHUB_TOKEN -- git push",
      ],
    },
    handler: (rt, i, ctx) => rt.workspaces.exec(i, ctx),
  }),
  op({
    name: "workspace_status",
    sdk: "statusWorkspace",
    title: "Workspace status",
    description:
      "State (running, stopped, paused, expired, failed with reason), name, labels, resources, expiry, command count, last command and seed of a workspace.",
    input: S.WorkspaceIdInput,
    result: S.WorkspaceStatusResult,
    mcp: true,
    readOnly: true,
    cli: {
      path: ["workspace", "status"],
      positional: ["workspace_id"],
      examples: ["pyro workspace status ws_0123456789abcdef --json"],
    },
    handler: (rt, i) => rt.workspaces.status(i.workspace_id),
  }),
  op({
    name: "workspace_logs",
    sdk: "logsWorkspace",
    title: "Workspace command history",
    description:
      "The workspace's command history, oldest first: the most recent `limit` (default 20) commands with exit code, start time, duration, output sizes and output_id. " +
      `Output only with include_output=true, within max_output_bytes (default ${OUTPUT_BUDGET.default}) for all entries together; page full output with output_read.`,
    input: S.WorkspaceLogsInput,
    result: S.WorkspaceLogsResult,
    mcp: true,
    readOnly: true,
    cli: {
      path: ["workspace", "logs"],
      positional: ["workspace_id"],
      examples: [
        "pyro workspace logs ws_0123456789abcdef",
        "pyro workspace logs ws_0123456789abcdef --limit 3 --include-output",
      ],
    },
    handler: (rt, i) => rt.workspaces.logs(i),
  }),
  op({
    name: "output_read",
    sdk: "readOutput",
    title: "Read a command's full output",
    description:
      "Page through the full stdout or stderr of a command whose result left bytes out (stdout_omitted_bytes > 0), by the output_id of its result. " +
      "" +
      `One-shot output is kept for the newest ${ONESHOT_RETENTION.runs} runs and at most 24 h; workspace output until the workspace is deleted.`,
    input: S.OutputReadInput,
    result: S.OutputReadResult,
    mcp: true,
    readOnly: true,
    cli: {
      path: ["output", "read"],
      positional: ["output_id"],
      examples: [
        "pyro output read vm_0123456789abcdef --offset 8192 --limit 65536",
        "pyro output read ws_0123456789abcdef:3 --stream stderr --json",
      ],
    },
    handler: (rt, i) => readOutputPage(rt.paths, i),
  }),
  op({
    name: "workspace_delete",
    sdk: "deleteWorkspace",
    title: "Delete a workspace",
    description: "Stop the workspace's sandbox and delete its files, log and state.",
    input: S.WorkspaceIdInput,
    result: S.WorkspaceDeleteResult,
    mcp: true,
    destructive: true,
    cli: {
      path: ["workspace", "delete"],
      positional: ["workspace_id"],
      examples: ["pyro workspace delete ws_0123456789abcdef"],
    },
    handler: (rt, i) => rt.workspaces.delete(i.workspace_id),
  }),
  op({
    name: "workspace_update",
    sdk: "updateWorkspace",
    title: "Change a workspace's name, labels or TTLs",
    description:
      "Change how long a workspace lives: ttl_seconds (idle time; each exec or sync push extends the expiry by it) and max_ttl_seconds (hard limit from creation). " +
      'Also its name (unique; "" removes it), labels (set KEY=VALUE pairs) and clear_labels (keys to remove). ' +
      "Returns the workspace's status with the new expires_at and max_expires_at.",
    input: S.WorkspaceUpdateInput,
    result: S.WorkspaceStatusResult,
    mcp: true,
    cli: {
      path: ["workspace", "update"],
      positional: ["workspace_id"],
      examples: [
        "pyro workspace update ws_0123456789abcdef --ttl-seconds 3600",
        "pyro workspace update ws_0123456789abcdef --max-ttl-seconds 172800 --json",
        "pyro workspace update ws_0123456789abcdef --name api-fix --label task=123 --clear-label draft",
      ],
    },
    handler: (rt, i) => rt.workspaces.update(i),
  }),
  op({
    name: "workspace_list",
    sdk: "listWorkspaces",
    title: "List workspaces",
    description:
      "List every workspace that still exists, most recently active first: workspace_id, name, labels, state, environment, created_at, expires_at, command count and last command time. " +
      "labels filters (every pair must match).",
    input: S.WorkspaceListInput,
    result: S.WorkspaceListResult,
    mcp: true,
    readOnly: true,
    cli: {
      path: ["workspace", "list"],
      examples: ["pyro workspace list", "pyro workspace list --label task=123 --json"],
    },
    handler: async (rt, i) => ({
      workspaces: (await rt.workspaces.list(i.labels ? { labels: i.labels } : {})).map(S.workspaceSummary),
    }),
  }),
  ...FILE_OPERATIONS,
  // stop/start, pause/resume (lifecycle.ts).
  ...LIFECYCLE_OPERATIONS,
  // Shells and services (session-ops.ts).
  ...SESSION_OPERATIONS,
  // The warm pool (pool.ts).
  ...POOL_OPERATIONS,
  // Snapshots, reset and fork (snapshots.ts).
  ...SNAPSHOT_OPERATIONS,
  ...DISK_OPERATIONS,
] as const;

export type AnyOperation = (typeof OPERATIONS)[number];
export type OperationName = AnyOperation["name"];

export function getOperation(name: string): Operation {
  const o = OPERATIONS.find((x) => x.name === name);
  if (!o) {
    const names = OPERATIONS.map((x) => x.name);
    const near = nearest(name, names);
    throw new PyroError(
      "unknown_operation",
      `unknown operation ${JSON.stringify(name)}${near ? `; did you mean \`${near}\`?` : ""}`,
      `operations are: ${names.join(", ")}`,
    );
  }
  return o as unknown as Operation;
}
