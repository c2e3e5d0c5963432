import { isAbsolute, relative } from "node:path";
import * as z from "zod";
import type { SandboxHandle } from "../engines/types.js";

/**
 * What every sandbox record (VM or workspace) shares and how it is checked on load: a record
 * is read back by later processes, maybe after a crash or a hand edit, and its paths drive
 * deletes, so nothing in it is trusted before it passes these checks.
 */
export const OwnerSchema = z.object({
  pid: z.number().int().positive(),
  start: z.number().int().nonnegative(),
});

export const HandleSchema = z.object({
  engine: z.enum(["firecracker", "qemu", "gvisor", "host"]),
  id: z.string(),
  sandboxDir: z.string(),
  workspaceDir: z.string().optional(),
  data: z.record(z.string(), z.unknown()),
});

function inside(dir: string, p: string): boolean {
  const r = relative(dir, p);
  return r === "" || (!!r && !r.startsWith("..") && !isAbsolute(r));
}

/**
 * The problem with a handle stored in the record at `dir`, if any: it must name this
 * record's id and keep its engine files inside the record's directory.
 */
export function handleProblem(
  id: string,
  dir: string,
  handle: z.infer<typeof HandleSchema> | null,
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

export function asHandle(h: z.infer<typeof HandleSchema>): SandboxHandle {
  return h as SandboxHandle;
}
