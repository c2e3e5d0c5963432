import * as z from "zod";
import { DIFF_LIMITS, FILE_LIMITS } from "./defaults.js";
import { workspaceId } from "./workspace.js";

/**
 * Wire schemas of the workspace round trip: file tools, patch apply, diff against the
 * baseline, export back to the host, summary (workspaces/files.ts, patch.ts, diff.ts,
 * export.ts, summary.ts).
 */

const wsPath = (what: string) =>
  z.string().min(1).max(4096).describe(`${what} Relative to /workspace; nothing outside it can be named.`);
const scopePath = wsPath("A file or directory in the workspace. Default /workspace (all of it).").default(
  "/workspace",
);
const encoding = z
  .enum(["utf-8", "base64"])
  .default("utf-8")
  .describe('"utf-8" (default) for text; "base64" for binary content.');

/** What diff, summary and changed-only export leave out (workspaces/diff.ts IgnoreOptions). */
const include_ignored = z
  .boolean()
  .default(false)
  .describe("Also show what .gitignore ignores (e.g. __pycache__/).");
const exclude = z
  .array(z.string().min(1).max(1000))
  .max(100)
  .default([])
  .describe('gitignore patterns to leave out too, e.g. "*.log".');

export const WorkspaceDiffInput = z.object({
  workspace_id: workspaceId,
  path: scopePath,
  stat: z
    .boolean()
    .default(false)
    .describe("Only the list of changed files with line counts, no patch text."),
  name_only: z.boolean().default(false).describe("Only the changed paths and their status (fastest)."),
  max_bytes: z
    .number()
    .int()
    .min(1024)
    .max(DIFF_LIMITS.patchMax)
    .default(DIFF_LIMITS.patchDefault)
    .describe(
      `Budget for the patch text in bytes (default ${DIFF_LIMITS.patchDefault}); the rest is paged with cursor.`,
    ),
  cursor: z
    .number()
    .int()
    .min(0)
    .default(0)
    .describe(
      "Index of the first changed file whose patch text to return: next_cursor of the previous call.",
    ),
  include_ignored,
  exclude,
});

const ChangeSchema = z.object({
  path: z.string().describe("Relative to /workspace."),
  status: z.enum(["added", "modified", "deleted", "type_changed"]),
  kind: z.enum(["file", "directory", "symlink", "other"]),
  old_kind: z.enum(["file", "directory", "symlink", "other"]).nullable(),
  binary: z.boolean().describe("True when either side is not text (or over 1 MiB): no line diff."),
  old_mode: z.string().nullable(),
  new_mode: z.string().nullable(),
  link_target: z.string().nullable(),
  lines_added: z.number().int(),
  lines_removed: z.number().int(),
});
export const WorkspaceDiffResult = z.object({
  workspace_id: z.string(),
  path: z.string(),
  changed: z.boolean(),
  counts: z.object({
    files: z.number().int(),
    added: z.number().int(),
    modified: z.number().int(),
    deleted: z.number().int(),
    type_changed: z.number().int(),
    lines_added: z.number().int(),
    lines_removed: z.number().int(),
  }),
  files: z.array(ChangeSchema),
  files_truncated: z
    .boolean()
    .describe(
      `More than ${DIFF_LIMITS.filesMax} changed files: only the first are listed (counts are complete).`,
    ),
  patch: z.string().nullable().describe("Unified diff text (git style), null with stat or name_only."),
  truncated: z.boolean().describe("The patch text stopped at max_bytes; call again with cursor=next_cursor."),
  next_cursor: z.number().int().nullable(),
});

export const WorkspaceExportInput = z.object({
  workspace_id: workspaceId,
  path: scopePath,
  output: z
    .string()
    .min(1)
    .max(4096)
    .describe(
      "Host path to write: a directory (or a file's path, for one file), or a .tar / .tar.gz / .tgz archive. Must not exist, be empty, or force=true. Over MCP: a path inside the server's export area (a relative one lands there), new, with no component starting with '.'.",
    ),
  force: z
    .boolean()
    .default(false)
    .describe(
      "Replace an existing output. Default false. Over MCP only when the operator allowed exports to replace paths.",
    ),
  changed_only: z
    .boolean()
    .default(false)
    .describe(
      "Export only files added or changed since the baseline; deleted paths are listed in the result.",
    ),
  include_ignored: include_ignored.describe("With changed_only: include what .gitignore ignores."),
  exclude: exclude.describe("With changed_only: gitignore patterns to leave out too."),
});
export const WorkspaceExportResult = z.object({
  workspace_id: z.string(),
  path: z.string(),
  output: z.string().describe("The host path written (absolute)."),
  format: z.enum(["directory", "file", "tar", "tar.gz"]),
  changed_only: z.boolean(),
  files: z.number().int().describe("Regular files written, verified against what the guest sent."),
  bytes: z.number().int().describe("Bytes of file content written, verified."),
  directories: z.number().int(),
  symlinks: z.number().int(),
  verified: z
    .boolean()
    .describe(
      "The counts were checked against what the guest reported (whole exports) or every changed file arrived whole (changed_only); false only when the guest could not count (no find/awk).",
    ),
  skipped: z
    .array(z.object({ path: z.string(), reason: z.string() }))
    .describe("Entries not written, with why (symlinks leaving the export, devices, FIFOs)."),
  skipped_count: z.number().int(),
  deleted: z
    .array(z.string())
    .describe("With changed_only: paths deleted since the baseline (not in the export)."),
  deleted_count: z.number().int(),
  exec_bits_dropped: z
    .number()
    .int()
    .describe(
      "Files written without the execute bits they had in the workspace: an MCP server drops them unless its operator allowed execute bits. 0 from the CLI and SDK.",
    ),
});

export const WorkspaceFileListInput = z.object({
  workspace_id: workspaceId,
  path: scopePath,
  recursive: z.boolean().default(false).describe("List everything below, not only direct entries."),
  max_entries: z
    .number()
    .int()
    .min(1)
    .max(FILE_LIMITS.listMax)
    .default(FILE_LIMITS.listDefault)
    .describe(`At most this many entries (default ${FILE_LIMITS.listDefault}).`),
});
export const WorkspaceFileListResult = z.object({
  workspace_id: z.string(),
  path: z.string(),
  entries: z.array(
    z.object({
      path: z.string().describe("Relative to /workspace."),
      type: z.enum(["file", "directory", "symlink", "other"]),
      size: z.number().int(),
      mode: z.string().describe("Octal permission bits, e.g. 0644."),
      mtime: z.string(),
      link_target: z.string().nullable(),
    }),
  ),
  count: z.number().int(),
  truncated: z.boolean(),
});

export const WorkspaceFileReadInput = z.object({
  workspace_id: workspaceId,
  path: wsPath("The file to read."),
  offset: z.number().int().min(1).optional().describe("First line to return (1-based). Default 1."),
  limit: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe("Number of lines to return. Default: all that fit max_bytes."),
  max_bytes: z
    .number()
    .int()
    .min(1)
    .max(FILE_LIMITS.readMax)
    .default(FILE_LIMITS.readDefault)
    .describe(
      `Read budget in bytes (default ${FILE_LIMITS.readDefault}). A whole file over it is refused; with offset/limit the text is cut at a line and next_offset says where to continue.`,
    ),
  encoding,
});
export const WorkspaceFileReadResult = z.object({
  workspace_id: z.string(),
  path: z.string(),
  encoding: z.enum(["utf-8", "base64"]),
  content: z.string(),
  bytes: z.number().int(),
  binary: z.boolean(),
  offset: z.number().int(),
  lines: z.number().int(),
  truncated: z.boolean(),
  next_offset: z.number().int().nullable().describe("The offset to read on from, when more lines follow."),
});

export const WorkspaceFileWriteInput = z.object({
  workspace_id: workspaceId,
  path: wsPath("The file to create or replace."),
  content: z
    .string()
    .max(FILE_LIMITS.writeMax * 2)
    .describe("The whole new content."),
  encoding,
  mode: z
    .string()
    .max(5)
    .optional()
    .describe("Octal mode like 644 or 0755 (no set-id bits). Default: the old file's mode, else 644."),
  create_parents: z.boolean().default(true).describe("Create missing parent directories. Default true."),
});
export const WorkspaceFileWriteResult = z.object({
  workspace_id: z.string(),
  path: z.string(),
  bytes_written: z.number().int(),
});

export const WorkspaceFileEditInput = z.object({
  workspace_id: workspaceId,
  path: wsPath("The text file to edit."),
  old_string: z
    .string()
    .min(1)
    .describe("Exact text to replace (whitespace included); must occur exactly once."),
  new_string: z.string().describe("The replacement text."),
  replace_all: z.boolean().default(false).describe("Replace every occurrence instead of requiring one."),
});
export const WorkspaceFileEditResult = z.object({
  workspace_id: z.string(),
  path: z.string(),
  replacements: z.number().int(),
});

export const WorkspacePatchApplyInput = z.object({
  workspace_id: workspaceId,
  patch: z
    .string()
    .min(1)
    .max(FILE_LIMITS.writeMax)
    .describe("Unified diff text, e.g. the output of `git diff` or `diff -u`."),
  strip: z
    .number()
    .int()
    .min(0)
    .max(16)
    .default(1)
    .describe("Leading path components to strip (like patch -p). Default 1 (a/ b/)."),
  check: z.boolean().default(false).describe("Only check that it applies; change nothing."),
});
export const WorkspacePatchApplyResult = z.object({
  workspace_id: z.string(),
  applied: z.boolean(),
  files: z.array(z.object({ path: z.string(), status: z.enum(["added", "modified", "deleted"]) })),
  lines_added: z.number().int(),
  lines_removed: z.number().int(),
});

export const WorkspaceSummaryResult = z.object({
  workspace_id: z.string(),
  commands: z.object({
    count: z.number().int(),
    failed: z.number().int(),
    timed_out: z.number().int(),
    recent_failures: z.array(
      z.object({ sequence: z.number().int(), command: z.string(), exit_code: z.number().int() }),
    ),
  }),
  changes: WorkspaceDiffResult.shape.counts,
  changed_files: z.array(
    z.object({
      path: z.string(),
      status: z.enum(["added", "modified", "deleted", "type_changed"]),
      lines_added: z.number().int(),
      lines_removed: z.number().int(),
    }),
  ),
  changed_files_truncated: z.boolean(),
  exports: z.object({
    count: z.number().int(),
    recent: z.array(
      z.object({
        at: z.string(),
        path: z.string(),
        output: z.string(),
        files: z.number().int(),
        bytes: z.number().int(),
        changed_only: z.boolean(),
      }),
    ),
  }),
  snapshot_activity: z
    .object({
      count: z.number().int(),
      recent: z.array(
        z.object({
          at: z.string(),
          event: z.enum(["snapshot_create", "snapshot_delete", "reset", "fork"]),
          name: z
            .string()
            .nullable()
            .describe("The snapshot (reset: its target; fork: null for the current state)."),
        }),
      ),
    })
    .describe("Snapshots taken and deleted, resets and forks (the last 5)."),
});

export const WorkspaceSummaryInput = z.object({ workspace_id: workspaceId, include_ignored, exclude });
