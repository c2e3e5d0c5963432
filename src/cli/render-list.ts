/**
 * The human rendering of `workspace list`, and the table and label helpers it shares with the
 * other renderings (render.ts): on its own, free of the operation table and zod, so that the
 * CLI's list fast path (fast-list.ts) prints with the very code the full CLI does.
 */

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  return rows
    .map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join("  "))
    .join("\n");
}

export function labelText(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

interface ListedWorkspace {
  workspace_id: string;
  name?: string | null;
  labels?: Record<string, string>;
  state: string;
  environment: string;
  command_count: number;
  expires_at: string;
}

export function renderWorkspaceList(r: { workspaces: readonly ListedWorkspace[] }): string {
  return r.workspaces.length
    ? table([
        ["WORKSPACE", "NAME", "LABELS", "STATE", "ENVIRONMENT", "COMMANDS", "EXPIRES"],
        ...r.workspaces.map((w) => [
          w.workspace_id,
          w.name ?? "-",
          labelText(w.labels ?? {}) || "-",
          w.state,
          w.environment,
          String(w.command_count),
          w.expires_at,
        ]),
      ])
    : "no workspaces";
}
