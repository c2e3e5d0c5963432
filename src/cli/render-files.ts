/** Human-readable rendering of the workspace round-trip results (files, diff, export, summary). */
import type { FILE_OPERATIONS } from "../operations/files.js";

// biome-ignore lint/suspicious/noExplicitAny: rendering walks result objects of many shapes
type Any = Record<string, any>;

const STATUS: Record<string, string> = { added: "A", modified: "M", deleted: "D", type_changed: "T" };

function stat(files: Any[]): string {
  return files
    .map((f) => {
      const lines = f.binary ? "binary" : `+${f.lines_added} -${f.lines_removed}`;
      const extra =
        f.old_mode && f.new_mode && f.old_mode !== f.new_mode ? ` (mode ${f.old_mode} → ${f.new_mode})` : "";
      return `${STATUS[f.status] ?? "?"} ${f.path}  ${lines}${extra}`;
    })
    .join("\n");
}

function counts(c: Any): string {
  return `${c.files} file(s) changed: ${c.added} added, ${c.modified} modified, ${c.deleted} deleted${c.type_changed ? `, ${c.type_changed} type changed` : ""}; +${c.lines_added} -${c.lines_removed} lines`;
}

export const RENDER_FILES: Record<(typeof FILE_OPERATIONS)[number]["name"], (r: Any) => string> = {
  workspace_diff: (r) => {
    if (!r.changed)
      return `no changes under /workspace${r.path === "." ? "" : `/${r.path}`} since the baseline`;
    if (r.patch === null) {
      const names = r.files.every((f: Any) => f.lines_added === 0 && f.lines_removed === 0 && !f.binary);
      return `${names ? r.files.map((f: Any) => `${STATUS[f.status]} ${f.path}`).join("\n") : stat(r.files)}\n${counts(r.counts)}`;
    }
    const more = r.truncated
      ? `\n[pyro] patch cut at the budget; continue with --cursor ${r.next_cursor}`
      : "";
    return `${r.patch.trimEnd()}${more}\n[pyro] ${counts(r.counts)}`;
  },
  workspace_export: (r) => {
    const lines = [
      `exported ${r.path === "." ? "/workspace" : `/workspace/${r.path}`}${r.changed_only ? " (changed files only)" : ""} → ${r.output} (${r.format}): ${r.files} file(s), ${r.bytes} bytes, verified`,
    ];
    for (const s of r.skipped) lines.push(`  skipped ${s.path}: ${s.reason}`);
    if (r.deleted_count) lines.push(`  deleted since the baseline (not exported): ${r.deleted.join(", ")}`);
    if (r.exec_bits_dropped)
      lines.push(`  execute bits dropped from ${r.exec_bits_dropped} file(s) (the server's export policy)`);
    return lines.join("\n");
  },
  workspace_file_list: (r) =>
    r.entries.length
      ? `${r.entries
          .map(
            (e: Any) =>
              `${e.type === "directory" ? "d" : e.type === "symlink" ? "l" : e.type === "file" ? "-" : "?"}${e.mode}  ${String(e.size).padStart(10)}  ${e.mtime}  ${e.path}${e.link_target !== null ? ` -> ${e.link_target}` : ""}`,
          )
          .join("\n")}${r.truncated ? "\n[pyro] listing cut at --max-entries" : ""}`
      : "(empty)",
  workspace_file_read: (r) =>
    `${r.encoding === "utf-8" ? r.content.replace(/\n$/, "") : r.content}${r.next_offset !== null ? `\n[pyro] more follows: --offset ${r.next_offset}` : ""}`,
  workspace_file_write: (r) => `wrote ${r.bytes_written} bytes to /workspace/${r.path}`,
  workspace_file_edit: (r) =>
    `edited /workspace/${r.path} (${r.replacements} replacement${r.replacements === 1 ? "" : "s"})`,
  workspace_patch_apply: (r) =>
    `${r.applied ? "applied" : "would apply"}: ${r.files.map((f: Any) => `${STATUS[f.status]} ${f.path}`).join(", ")} (+${r.lines_added} -${r.lines_removed})`,
  workspace_summary: (r) =>
    [
      `workspace ${r.workspace_id}`,
      `commands: ${r.commands.count} run, ${r.commands.failed} failed${r.commands.timed_out ? `, ${r.commands.timed_out} timed out` : ""}`,
      ...r.commands.recent_failures.map((f: Any) => `  #${f.sequence} exit ${f.exit_code}: ${f.command}`),
      `changes: ${counts(r.changes)}`,
      ...r.changed_files.map(
        (f: Any) => `  ${STATUS[f.status]} ${f.path} +${f.lines_added} -${f.lines_removed}`,
      ),
      `exports: ${r.exports.count}`,
      ...r.exports.recent.map((e: Any) => `  ${e.at} ${e.path} → ${e.output} (${e.files} files)`),
      ...(r.snapshot_activity
        ? [
            `snapshots, resets, forks: ${r.snapshot_activity.count}`,
            ...r.snapshot_activity.recent.map(
              (e: Any) => `  ${e.at} ${e.event}${e.name ? ` ${e.name}` : ""}`,
            ),
          ]
        : []),
    ].join("\n"),
};
