import * as z from "zod";
import { WorkspaceStatusResult, workspaceId } from "./workspace.js";

/** Wire schemas of named snapshots, reset and fork (workspaces/snapshots.ts). */

const snapshotName = z
  .string()
  .min(1)
  .max(64)
  .describe("Snapshot name: 1-64 letters, digits, '.', '_' or '-' (e.g. before-refactor).");

export const SnapshotInfo = z.object({
  name: z.string(),
  created_at: z.string(),
  files: z.number().int().describe("Regular files in the snapshot."),
  bytes: z.number().int().describe("Their total size."),
  new_bytes: z
    .number()
    .int()
    .describe("File content this snapshot added to the store (unchanged files are shared, not copied)."),
  disk_bytes: z.number().int().describe("Host disk the snapshot took: new_bytes plus its manifest."),
  skipped_count: z.number().int().describe("Sockets, FIFOs and devices, which are not kept."),
});

export const WorkspaceSnapshotCreateInput = z.object({
  workspace_id: workspaceId,
  name: snapshotName.optional().describe("Name for the snapshot (default s1, s2, …)."),
});
export const WorkspaceSnapshotCreateResult = SnapshotInfo.extend({
  workspace_id: z.string(),
  skipped: z
    .array(z.object({ path: z.string(), reason: z.string() }))
    .describe(
      "Entries the snapshot did not keep (FIFOs, sockets, devices), each with why; a reset to it leaves them out. At most 1000 listed; skipped_count counts all.",
    ),
});
export const WorkspaceSnapshotListResult = z.object({
  workspace_id: z.string(),
  snapshots: z.array(SnapshotInfo).describe('Oldest first. "baseline" (the seeded state) is not listed.'),
});
export const WorkspaceSnapshotDeleteInput = z.object({ workspace_id: workspaceId, name: snapshotName });
export const WorkspaceSnapshotDeleteResult = z.object({
  workspace_id: z.string(),
  name: z.string(),
  deleted: z.boolean(),
  bytes_freed: z.number().int().describe("Stored content no other snapshot used, now removed."),
});
export const WorkspaceResetInput = z.object({
  workspace_id: workspaceId,
  snapshot: snapshotName
    .default("baseline")
    .describe(
      'The snapshot to go back to, or "baseline" (default): the files the workspace was seeded with.',
    ),
});
export const WorkspaceResetResult = z.object({
  workspace_id: z.string(),
  snapshot: z.string(),
  files_written: z.number().int().describe("Files (and symlinks) rewritten: only those that differed."),
  files_removed: z.number().int().describe("Paths removed because the snapshot does not have them."),
  bytes_written: z.number().int(),
  shells_ended: z.array(z.string()).describe("Shells that ended with the old sandbox."),
  services_ended: z.array(z.string()).describe("Services that ended with the old sandbox."),
  secrets_note: z
    .string()
    .optional()
    .describe("Set when the workspace's secrets could not all be written into the fresh sandbox."),
  sandbox_restarted: z
    .boolean()
    .describe("Always true: every process ran in the old sandbox; a fresh one serves the workspace now."),
  restore_ms: z.number().int().describe("Time to make /workspace match the snapshot."),
  sandbox_ms: z.number().int().describe("Time to start the fresh sandbox."),
  old_sandbox_ms: z
    .number()
    .int()
    .describe("Time to end and remove the old sandbox (overlaps restore_ms: the restore runs meanwhile)."),
  duration_ms: z.number().int(),
});
export const WorkspaceForkInput = z.object({
  workspace_id: workspaceId,
  snapshot: snapshotName
    .optional()
    .describe(
      'Start the copies from this snapshot (or "baseline"); default: the current state of /workspace.',
    ),
  count: z.number().int().min(1).max(20).default(1).describe("How many new workspaces (1-20, default 1)."),
});
export const WorkspaceForkResult = z.object({
  workspace_id: z.string().describe("The workspace forked from (unchanged)."),
  snapshot: z.string().nullable().describe("The snapshot the forks start from; null for the current state."),
  workspaces: z.array(WorkspaceStatusResult).describe("The new workspaces, each with its own id."),
  duration_ms: z.number().int(),
});

export const WorkspaceSnapshotListInput = z.object({ workspace_id: workspaceId });
