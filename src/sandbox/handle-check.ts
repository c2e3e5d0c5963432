import { isAbsolute, relative } from "node:path";

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
