import {
  WorkspaceForkInput,
  WorkspaceForkResult,
  WorkspaceResetInput,
  WorkspaceResetResult,
  WorkspaceSnapshotCreateInput,
  WorkspaceSnapshotCreateResult,
  WorkspaceSnapshotDeleteInput,
  WorkspaceSnapshotDeleteResult,
  WorkspaceSnapshotListInput,
  WorkspaceSnapshotListResult,
} from "../contract/snapshots.js";
import { op } from "./operation.js";

/**
 * Named snapshots, reset and fork: their entries of the operation table (table.ts appends
 * them) and how the CLI shows their results. workspace_reset is in the workspace-core MCP
 * profile; snapshots and fork in workspace-full.
 */

const WS = "ws_0123456789abcdef";

export const SNAPSHOT_OPERATIONS = [
  op({
    name: "workspace_snapshot_create",
    sdk: "createWorkspaceSnapshot",
    title: "Snapshot a workspace's files",
    description:
      "Record the current files of /workspace under a name, to go back to later with workspace_reset or to start copies from with workspace_fork. " +
      "Cheap: unchanged files are shared with earlier snapshots, so a snapshot costs about the bytes changed since. Commands keep running (paused for the moment of the snapshot).",
    input: WorkspaceSnapshotCreateInput,
    result: WorkspaceSnapshotCreateResult,
    mcp: true,
    cli: {
      path: ["workspace", "snapshot", "create"],
      positional: ["workspace_id"],
      examples: [
        `pyro workspace snapshot create ${WS} --name before-refactor`,
        `pyro workspace snapshot create ${WS} --json`,
      ],
    },
    handler: (rt, i) => rt.workspace(i.workspace_id).snapshots.create(i.name),
  }),
  op({
    name: "workspace_snapshot_list",
    sdk: "listWorkspaceSnapshots",
    title: "List a workspace's snapshots",
    description:
      'The named snapshots of a workspace, oldest first, with their size and the disk each took. "baseline" (the seeded state) is always available to workspace_reset and is not listed.',
    input: WorkspaceSnapshotListInput,
    result: WorkspaceSnapshotListResult,
    mcp: true,
    readOnly: true,
    cli: {
      path: ["workspace", "snapshot", "list"],
      positional: ["workspace_id"],
      examples: [`pyro workspace snapshot list ${WS}`, `pyro workspace snapshot list ${WS} --json`],
    },
    handler: (rt, i) => rt.workspace(i.workspace_id).snapshots.list(),
  }),
  op({
    name: "workspace_snapshot_delete",
    sdk: "deleteWorkspaceSnapshot",
    title: "Delete a snapshot",
    description: "Delete a named snapshot of a workspace; content no other snapshot uses is freed.",
    input: WorkspaceSnapshotDeleteInput,
    result: WorkspaceSnapshotDeleteResult,
    mcp: true,
    destructive: true,
    cli: {
      path: ["workspace", "snapshot", "delete"],
      positional: ["workspace_id", "name"],
      examples: [`pyro workspace snapshot delete ${WS} before-refactor`],
    },
    handler: (rt, i) => rt.workspace(i.workspace_id).snapshots.delete(i.name),
  }),
  op({
    name: "workspace_reset",
    sdk: "resetWorkspace",
    title: "Reset a workspace",
    description:
      'Put /workspace back as it was at a snapshot (snapshot=NAME) or as seeded (snapshot="baseline", the default), in a fresh sandbox: every process of the old one ends (shells and services are listed in the result). ' +
      "The workspace keeps its id, command history and diff baseline; Refused while a command runs in it. Also revives a workspace whose sandbox died (state failed).",
    input: WorkspaceResetInput,
    result: WorkspaceResetResult,
    mcp: true,
    destructive: true,
    cli: {
      path: ["workspace", "reset"],
      positional: ["workspace_id"],
      examples: [
        `pyro workspace reset ${WS}`,
        `pyro workspace reset ${WS} --snapshot before-refactor --json`,
      ],
    },
    // With the secrets carried into the new sandbox (the facade's snapshots.reset).
    handler: (rt, i) => rt.workspace(i.workspace_id).snapshots.reset(i.snapshot),
  }),
  op({
    name: "workspace_fork",
    sdk: "forkWorkspace",
    title: "Fork a workspace",
    description:
      "Make count (default 1) new workspaces whose /workspace starts as this one's now, or as at a snapshot; each has its own id and sandbox and is independent from then on (same environment, resources and diff baseline). " +
      "All or nothing: if one cannot be made, none is left. The original is unchanged.",
    input: WorkspaceForkInput,
    result: WorkspaceForkResult,
    mcp: true,
    cli: {
      path: ["workspace", "fork"],
      positional: ["workspace_id"],
      examples: [
        `pyro workspace fork ${WS} --count 3`,
        `pyro workspace fork ${WS} --snapshot before-refactor --json`,
      ],
    },
    handler: (rt, i, ctx) => rt.workspace(i.workspace_id).snapshots.fork(i.snapshot, i.count, ctx),
  }),
];

// biome-ignore lint/suspicious/noExplicitAny: rendering walks result objects of many shapes
type Any = Record<string, any>;

const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
const snapLine = (s: Any) =>
  `${s.name}  ${s.created_at}  ${s.files} files, ${kib(s.bytes)}  (took ${kib(s.disk_bytes)} on disk)`;

export const SNAPSHOT_RENDER: Record<(typeof SNAPSHOT_OPERATIONS)[number]["name"], (r: Any) => string> = {
  workspace_snapshot_create: (r) =>
    [
      `snapshot ${snapLine(r)}`,
      ...r.skipped.map((x: Any) => `skipped ${x.path}: ${x.reason}`),
      ...(r.skipped_count > r.skipped.length ? [`(${r.skipped_count - r.skipped.length} more skipped)`] : []),
    ].join("\n"),
  workspace_snapshot_list: (r) =>
    r.snapshots.length
      ? r.snapshots.map(snapLine).join("\n")
      : `no snapshots in ${r.workspace_id} (reset to "baseline" is always possible)`,
  workspace_snapshot_delete: (r) => `deleted snapshot ${r.name} (${kib(r.bytes_freed)} freed)`,
  workspace_reset: (r) =>
    [
      `reset ${r.workspace_id} to ${r.snapshot}: ${r.files_written} written, ${r.files_removed} removed; fresh sandbox (${r.duration_ms} ms)`,
      ...(r.shells_ended.length ? [`shells ended: ${r.shells_ended.join(", ")}`] : []),
      ...(r.services_ended.length ? [`services ended: ${r.services_ended.join(", ")}`] : []),
    ].join("\n"),
  workspace_fork: (r) =>
    `${r.workspaces.map((w: Any) => w.workspace_id).join("\n")}\n[pyro] ${r.workspaces.length} fork(s) of ${r.workspace_id}${r.snapshot ? ` at ${r.snapshot}` : ""} in ${r.duration_ms} ms`,
};
