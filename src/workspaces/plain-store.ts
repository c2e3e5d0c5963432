import { PyroError } from "../core/errors.js";
import { type ExpiringRecord, RecordStore, type RecordStoreOptions } from "../sandbox/record-store.js";

/**
 * The workspace record store as the CLI fast paths open it (exec-flow.ts, list-view.ts):
 * zod-free, each with its own shape check in place of the schema, and the full path's ids,
 * file and errors, so a record reads the same on every path.
 */
export function plainWorkspaceStore<R extends ExpiringRecord & { workspace_id: string }>(
  workspacesDir: string,
  schema: RecordStoreOptions<R>["schema"],
  check?: RecordStoreOptions<R>["check"],
): RecordStore<R> {
  return new RecordStore<R>({
    root: workspacesDir,
    kind: "ws",
    file: "workspace.json",
    idOf: (r) => r.workspace_id,
    notFound: (id) => new PyroError("not_found", `no workspace with id ${id}`),
    unreadable: (id, why) => new PyroError("invalid_state", `workspace ${id} is damaged (${why})`),
    schema,
    ...(check ? { check } : {}),
  });
}
