import { posix } from "node:path";
import type { WorkspaceSyncInputT, WorkspaceSyncResultT } from "../contract/workspace.js";
import { PyroError, toPyroError } from "../core/errors.js";
import { resolveHostPath } from "../core/host-paths.js";
import { classifySource, inspectSource, tarStreamOf } from "../project/archive.js";
import type { CallContext } from "../sandbox/context.js";
import { asHandle } from "../sandbox/sandbox-record.js";
import { updateBaseline } from "./baseline.js";
import { WORKSPACE_ROOT } from "./exec-flow.js";
import { pushDestination } from "./files.js";
import { Guest, relToWorkspace } from "./guest.js";
import type { WorkspacePort } from "./port.js";

export { WORKSPACE_ROOT };

/** What a push needs of the workspace: a running sandbox, its engine, activity, its failure. */
export type SyncPort = Pick<WorkspacePort, "running" | "engineFor" | "markFailed" | "touch" | "dir">;

/** Maps a user's --dest onto a normalised guest path that stays inside /workspace. */
export function resolveWorkspaceDest(dest: string): string {
  if (dest.includes("\0")) throw new PyroError("invalid_argument", "destination contains a NUL byte");
  const abs = dest.startsWith("/")
    ? posix.normalize(dest)
    : posix.normalize(posix.join(WORKSPACE_ROOT, dest));
  const clean = abs.length > 1 ? abs.replace(/\/+$/, "") : abs;
  if (clean !== WORKSPACE_ROOT && !clean.startsWith(`${WORKSPACE_ROOT}/`)) {
    throw new PyroError(
      "invalid_argument",
      `destination ${JSON.stringify(dest)} is outside ${WORKSPACE_ROOT}`,
      `use ${WORKSPACE_ROOT} or a path under it (relative paths are relative to ${WORKSPACE_ROOT})`,
    );
  }
  return clean;
}

/**
 * `workspace sync push`: a host file, directory or archive into /workspace (at `dest`), and
 * with `update_baseline` into the baseline too. Counts as activity.
 */
export async function pushSync(
  port: SyncPort,
  input: WorkspaceSyncInputT,
  ctx: CallContext = {},
): Promise<WorkspaceSyncResultT> {
  const destination = resolveWorkspaceDest(input.dest);
  const rec = await port.running(input.workspace_id);
  const srcPath = await resolveHostPath(input.source_path, "source_path", ctx);
  const src = await classifySource(srcPath, "source path");
  const stats = await inspectSource(src, ctx.signal);
  ctx.onProgress?.({ message: `copying ${stats.entry_count} entries into ${destination}` });
  // The destination is made and resolved inside the sandbox first (a guest symlink out of
  // /workspace is refused), and the archive goes to its real location. Host-compat has
  // no sandbox: its /workspace is a host directory the operator's own commands write.
  let real = destination;
  try {
    if (port.engineFor(rec).traits.isolated)
      real = await pushDestination(
        new Guest(port.engineFor(rec), asHandle(rec.handle!), rec.workspace_id, (why) =>
          port.markFailed(rec.workspace_id, why),
        ),
        destination,
        ctx.signal,
      );
    await port.engineFor(rec).putArchive(asHandle(rec.handle!), tarStreamOf(src), real);
  } catch (e) {
    const pe = toPyroError(e);
    if (pe.code === "sandbox_dead") await port.markFailed(rec.workspace_id, pe.message);
    throw pe;
  }
  await port.touch(rec.workspace_id, Date.now());
  if (input.update_baseline)
    await updateBaseline(port.dir(rec.workspace_id), relToWorkspace(real), tarStreamOf(src));
  return {
    workspace_id: rec.workspace_id,
    source_path: src.path,
    mode: src.kind,
    destination,
    ...stats,
    baseline_updated: input.update_baseline,
  };
}
