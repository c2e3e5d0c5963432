import { WorkspaceLifecycleResult } from "../contract/lifecycle.js";
import { WorkspaceIdInput } from "../contract/workspace.js";
import { op } from "./operation.js";

/**
 * Workspace lifecycle: stop/start and pause/resume (workspaces/lifecycle.ts). Their entries
 * of the operation table (table.ts appends them) and their result.
 */

const WS = "ws_0123456789abcdef";

export const LIFECYCLE_OPERATIONS = [
  op({
    name: "workspace_stop",
    sdk: "stopWorkspace",
    title: "Stop a workspace",
    description:
      "End a workspace's sandbox (all its processes; shells and services end) and free its memory, keeping /workspace, its command log and baseline. " +
      "State becomes stopped; commands are refused until workspace_start. The idle TTL counts from the stop; max_ttl_seconds still applies.",
    input: WorkspaceIdInput,
    result: WorkspaceLifecycleResult,
    mcp: true,
    cli: {
      path: ["workspace", "stop"],
      positional: ["workspace_id"],
      examples: [`pyro workspace stop ${WS}`, "pyro workspace stop my-name --json"],
    },
    handler: (rt, i) => rt.workspaces.lifecycleStep("stop", i.workspace_id),
  }),
  op({
    name: "workspace_start",
    sdk: "startWorkspace",
    title: "Start a stopped workspace",
    description:
      "Start a fresh sandbox for a stopped (or paused, or failed) workspace on the same /workspace files. " +
      "Processes, shells and services from before are gone (listed in ended_shells/ended_services). A running workspace is left as it is.",
    input: WorkspaceIdInput,
    result: WorkspaceLifecycleResult,
    mcp: true,
    cli: {
      path: ["workspace", "start"],
      positional: ["workspace_id"],
      examples: [`pyro workspace start ${WS}`, "pyro workspace start my-name --json"],
    },
    handler: (rt, i) => rt.workspaces.lifecycleStep("start", i.workspace_id),
  }),
  op({
    name: "workspace_pause",
    sdk: "pauseWorkspace",
    title: "Pause a workspace with its memory",
    description:
      "Save a running workspace's memory and processes to disk and free its memory; workspace_resume brings the same processes back (services keep their pids). " +
      "Where the engine cannot save memory the pause is a stop, and paused_with_memory is false.",
    input: WorkspaceIdInput,
    result: WorkspaceLifecycleResult,
    mcp: true,
    cli: {
      path: ["workspace", "pause"],
      positional: ["workspace_id"],
      examples: [`pyro workspace pause ${WS}`, `pyro workspace pause ${WS} --json`],
    },
    handler: (rt, i) => rt.workspaces.lifecycleStep("pause", i.workspace_id),
  }),
  op({
    name: "workspace_resume",
    sdk: "resumeWorkspace",
    title: "Resume a paused workspace",
    description:
      "Bring a paused workspace back. With its memory saved, its processes run on (resumed_with_memory true); otherwise, or if restoring fails, a fresh sandbox starts on the same files (resumed_with_memory false).",
    input: WorkspaceIdInput,
    result: WorkspaceLifecycleResult,
    mcp: true,
    cli: {
      path: ["workspace", "resume"],
      positional: ["workspace_id"],
      examples: [`pyro workspace resume ${WS}`, `pyro workspace resume ${WS} --json`],
    },
    handler: (rt, i) => rt.workspaces.lifecycleStep("resume", i.workspace_id),
  }),
] as const;
