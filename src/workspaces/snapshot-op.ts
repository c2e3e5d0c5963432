import { join } from "node:path";

/**
 * Where a workspace records a snapshot or reset in progress (snapshots.ts writes and recovers
 * it). Its own module so the CLI fast path (exec-flow.ts) can see an operation in progress
 * without bundling the snapshot code.
 */
export function snapshotOpPath(wsDir: string): string {
  return join(wsDir, "snapshots", "op.json");
}
