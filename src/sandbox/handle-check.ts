import { isAbsolute, join, relative } from "node:path";

/** A stored sandbox handle, as far as the checks below look at it. */
export interface StoredHandle {
  id: string;
  sandboxDir: string;
  workspaceDir?: string | undefined;
}

function inside(dir: string, p: string): boolean {
  const r = relative(dir, p);
  return r === "" || (!!r && !r.startsWith("..") && !isAbsolute(r));
}

/**
 * The problem with a handle stored in the record at `dir`, if any: it must name this
 * record's id and keep its engine files inside the record's directory. (Free of zod and the
 * engines, so the CLI's fast path checks a record exactly as the record store does.)
 */
export function handleProblem(
  id: string,
  dir: string,
  handle: StoredHandle | null,
  expected: { sandboxDir: string; workspaceDir?: string },
): string | undefined {
  if (!handle) return undefined;
  if (handle.id !== id) return `handle.id ${JSON.stringify(handle.id)} is not ${id}`;
  if (handle.sandboxDir !== expected.sandboxDir || !inside(dir, handle.sandboxDir))
    return `handle.sandboxDir ${JSON.stringify(handle.sandboxDir)} is not ${expected.sandboxDir}`;
  if (handle.workspaceDir !== undefined && handle.workspaceDir !== expected.workspaceDir)
    return `handle.workspaceDir ${JSON.stringify(handle.workspaceDir)} is not ${expected.workspaceDir}`;
  return undefined;
}

/**
 * The problem with a record at `dir` loaded as `id`, if any: the id it names (field `idField`)
 * must be `id`, and its handle must be its own (see handleProblem). The record store applies it
 * on every load, and the CLI's exec fast path before it trusts a record: a tampered record must
 * not aim a delete or an exec elsewhere.
 */
export function recordProblem(
  idField: string,
  recordId: string,
  id: string,
  dir: string,
  handle: StoredHandle | null,
  filesDir: boolean,
): string | undefined {
  return recordId !== id
    ? `${idField} ${JSON.stringify(recordId)} is not ${id}`
    : handleProblem(id, dir, handle, {
        sandboxDir: join(dir, "sandbox"),
        ...(filesDir ? { workspaceDir: join(dir, "files") } : {}),
      });
}
