import { readFile } from "node:fs/promises";
import type { CommandLogEntryT } from "../contract/workspace.js";
import { diffWorkspace } from "./diff.js";
import type { ExportRecord } from "./export.js";
import type { Guest } from "./guest.js";

/**
 * `workspace summary`: what happened in a workspace, in one short result: commands run
 * (count, failures, the last few failures), files changed since the baseline (the diff's
 * stat, no patch text) and exports made.
 */
export async function summarize(
  g: Guest,
  baseline: string,
  exportsLog: string,
  commands: CommandLogEntryT[],
  signal?: AbortSignal,
  more: { snapshotsLog?: string; include_ignored?: boolean; exclude?: string[] } = {},
) {
  const d = await diffWorkspace(
    g,
    baseline,
    {
      path: ".",
      stat: true,
      name_only: false,
      max_bytes: 0,
      cursor: 0,
      include_ignored: more.include_ignored,
      exclude: more.exclude,
    },
    signal,
  );
  const failed = commands.filter((c) => c.exit_code !== 0);
  const jsonLines = async <T>(path: string | undefined): Promise<T[]> =>
    (path ? await readFile(path, "utf8").catch(() => "") : "")
      .split("\n")
      .filter(Boolean)
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as T];
        } catch {
          return [];
        }
      });
  const exports = await jsonLines<ExportRecord>(exportsLog);
  // Written by snapshots.ts, one line per snapshot create/delete, reset and fork.
  const snapshotEvents = await jsonLines<{ at: string; event: string; name?: string | null }>(
    more.snapshotsLog,
  );
  return {
    workspace_id: g.workspaceId,
    commands: {
      count: commands.length,
      failed: failed.length,
      timed_out: commands.filter((c) => c.timed_out).length,
      recent_failures: failed
        .slice(-5)
        .map((c) => ({ sequence: c.sequence, command: c.command.slice(0, 200), exit_code: c.exit_code })),
    },
    changes: d.counts,
    changed_files: d.files.slice(0, 50).map((f) => ({
      path: f.path,
      status: f.status,
      lines_added: f.lines_added,
      lines_removed: f.lines_removed,
    })),
    changed_files_truncated: d.files.length > 50,
    exports: {
      count: exports.length,
      recent: exports.slice(-5).map((e) => ({
        at: e.at,
        path: e.path,
        output: e.output,
        files: e.files,
        bytes: e.bytes,
        changed_only: e.changed_only,
      })),
    },
    snapshot_activity: {
      count: snapshotEvents.length,
      recent: snapshotEvents.slice(-5).map((e) => ({
        at: e.at,
        event: e.event as "snapshot_create" | "snapshot_delete" | "reset" | "fork",
        name: e.name ?? null,
      })),
    },
  };
}
