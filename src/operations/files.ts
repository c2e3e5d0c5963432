import {
  WorkspaceDiffInput,
  WorkspaceDiffResult,
  WorkspaceExportInput,
  WorkspaceExportResult,
  WorkspaceFileEditInput,
  WorkspaceFileEditResult,
  WorkspaceFileListInput,
  WorkspaceFileListResult,
  WorkspaceFileReadInput,
  WorkspaceFileReadResult,
  WorkspaceFileWriteInput,
  WorkspaceFileWriteResult,
  WorkspacePatchApplyInput,
  WorkspacePatchApplyResult,
  WorkspaceSummaryInput,
  WorkspaceSummaryResult,
} from "../contract/files.js";
import type { CallContext } from "../sandbox/context.js";
import { op } from "./operation.js";

/**
 * The workspace round trip: file tools, patch apply, diff against the baseline, export back
 * to the host, summary. Entries for table.ts, which only concatenates them.
 */

const sig = (ctx: CallContext) => ctx.signal;

export const FILE_OPERATIONS = [
  op({
    name: "workspace_diff",
    sdk: "diffWorkspace",
    title: "Changes in a workspace since its baseline",
    description:
      "Show what changed under /workspace since it was seeded (the baseline): a git-style unified diff for text files, entries for binary, mode, symlink and type changes, added and deleted files, and counts. " +
      "stat=true gives per-file line counts only, name_only=true only paths. Patch text is limited to max_bytes; page on with cursor=next_cursor.",
    input: WorkspaceDiffInput,
    result: WorkspaceDiffResult,
    mcp: true,
    readOnly: true,
    cli: {
      path: ["workspace", "diff"],
      positional: ["workspace_id", "path"],
      examples: [
        "pyro workspace diff ws_0123456789abcdef",
        "pyro workspace diff ws_0123456789abcdef src --stat",
        "pyro workspace diff ws_0123456789abcdef --name-only --json",
      ],
    },
    handler: (rt, i, ctx) => rt.workspace(i.workspace_id).files.diff(i, sig(ctx)),
  }),
  op({
    name: "workspace_export",
    sdk: "exportWorkspace",
    title: "Copy files from a workspace to the host",
    description:
      "Copy a file or directory of /workspace back to the host: into a new (or empty) directory, or a .tar/.tar.gz archive when output names one. " +
      "changed_only=true exports only what changed since the baseline and lists deletions. Symlinks that leave the export are not created (listed in skipped); set-uid/set-gid bits are dropped. " +
      "Over MCP the output goes into the operator's export area only (a relative output lands there), never over an existing path or into a dot-directory, and files lose execute bits unless the operator allowed them (exec_bits_dropped says how many). " +
      "The result's files and bytes are verified; a partial copy is an error and writes nothing.",
    input: WorkspaceExportInput,
    result: WorkspaceExportResult,
    mcp: true,
    cli: {
      path: ["workspace", "export"],
      positional: ["workspace_id", "path"],
      examples: [
        "pyro workspace export ws_0123456789abcdef --output ./out",
        "pyro workspace export ws_0123456789abcdef src --output ./src.tar.gz",
        "pyro workspace export ws_0123456789abcdef --changed-only --output ./fix",
      ],
    },
    handler: (rt, i, ctx) => rt.workspace(i.workspace_id).files.export(i, ctx),
  }),
  op({
    name: "workspace_file_list",
    sdk: "listWorkspaceFiles",
    title: "List files in a workspace",
    description:
      "List a directory of /workspace (recursive=true for everything below): path, type, size, mode, mtime, symlink target. At most max_entries entries.",
    input: WorkspaceFileListInput,
    result: WorkspaceFileListResult,
    mcp: true,
    readOnly: true,
    cli: {
      path: ["workspace", "file", "list"],
      positional: ["workspace_id", "path"],
      examples: [
        "pyro workspace file list ws_0123456789abcdef",
        "pyro workspace file list ws_0123456789abcdef src --recursive",
      ],
    },
    handler: (rt, i, ctx) => rt.workspace(i.workspace_id).files.list(i, sig(ctx)),
  }),
  op({
    name: "workspace_file_read",
    sdk: "readWorkspaceFile",
    title: "Read a file in a workspace",
    description:
      "Read a text file of /workspace. offset (1-based line) and limit (lines) read a part; max_bytes bounds the content (default 256 KiB). " +
      "Binary files are refused unless encoding=base64. Prefer this over `cat` in workspace_exec: no quoting, no output mixing.",
    input: WorkspaceFileReadInput,
    result: WorkspaceFileReadResult,
    mcp: true,
    readOnly: true,
    cli: {
      path: ["workspace", "file", "read"],
      positional: ["workspace_id", "path"],
      examples: [
        "pyro workspace file read ws_0123456789abcdef src/main.c",
        "pyro workspace file read ws_0123456789abcdef big.log --offset 100 --limit 50",
      ],
    },
    handler: (rt, i, ctx) => rt.workspace(i.workspace_id).files.read(i, sig(ctx)),
  }),
  op({
    name: "workspace_file_write",
    sdk: "writeWorkspaceFile",
    title: "Write a file in a workspace",
    description:
      "Create or replace a file of /workspace with the given content (atomically: readers see the old or the new file, never half). Missing parent directories are created. " +
      "Use workspace_file_edit to change part of a file.",
    input: WorkspaceFileWriteInput,
    result: WorkspaceFileWriteResult,
    mcp: true,
    cli: {
      path: ["workspace", "file", "write"],
      positional: ["workspace_id", "path"],
      examples: ["pyro workspace file write ws_0123456789abcdef notes/todo.txt --content 'fix the parser'"],
    },
    handler: (rt, i, ctx) => rt.workspace(i.workspace_id).files.write(i, sig(ctx)),
  }),
  op({
    name: "workspace_file_edit",
    sdk: "editWorkspaceFile",
    title: "Edit a file in a workspace",
    description:
      "Replace old_string with new_string in a text file of /workspace. old_string must match exactly (whitespace included) and occur once, unless replace_all=true; otherwise nothing changes and the error says why.",
    input: WorkspaceFileEditInput,
    result: WorkspaceFileEditResult,
    mcp: true,
    cli: {
      path: ["workspace", "file", "edit"],
      positional: ["workspace_id", "path"],
      examples: [
        "pyro workspace file edit ws_0123456789abcdef src/main.c --old-string 'int x = 1;' --new-string 'int x = 2;'",
      ],
    },
    handler: (rt, i, ctx) => rt.workspace(i.workspace_id).files.edit(i, sig(ctx)),
  }),
  op({
    name: "workspace_patch_apply",
    sdk: "applyWorkspacePatch",
    title: "Apply a patch in a workspace",
    description:
      "Apply a unified diff (git diff or diff -u output) to /workspace, all or nothing: if any hunk does not apply, nothing changes and the error names the file, the hunk and the mismatching line. check=true only tests it.",
    input: WorkspacePatchApplyInput,
    result: WorkspacePatchApplyResult,
    mcp: true,
    cli: {
      path: ["workspace", "patch", "apply"],
      positional: ["workspace_id"],
      examples: ['pyro workspace patch apply ws_0123456789abcdef --patch "$(git diff)"'],
    },
    handler: (rt, i, ctx) => rt.workspace(i.workspace_id).files.applyPatch(i, sig(ctx)),
  }),
  op({
    name: "workspace_summary",
    sdk: "summarizeWorkspace",
    title: "Summary of a workspace's work",
    description:
      "One short overview for review: commands run (count, failures), files changed since the baseline (paths and line counts), exports made, and snapshots, resets and forks.",
    input: WorkspaceSummaryInput,
    result: WorkspaceSummaryResult,
    mcp: true,
    readOnly: true,
    cli: {
      path: ["workspace", "summary"],
      positional: ["workspace_id"],
      examples: ["pyro workspace summary ws_0123456789abcdef"],
    },
    handler: (rt, i, ctx) =>
      rt
        .workspace(i.workspace_id)
        .summary(sig(ctx), { include_ignored: i.include_ignored, exclude: i.exclude }),
  }),
] as const;
