import * as z from "zod";
import { workspaceId } from "../contract/workspace.js";

/**
 * Which input fields of an operation reference a workspace (an id or a name): those whose
 * schema is the shared `workspaceId`. Found from the schema, not from a list of operations
 * or field names, so an operation added later with such a field gets its names resolved
 * (invoke.ts, within the caller's tenant) and its ids checked (src/tenants/tenancy.ts)
 * without anyone remembering to. A field that takes a workspace without this schema gets
 * no name resolution, so a name there fails checkId as malformed: closed, not open.
 */
const cache = new WeakMap<z.ZodObject, readonly string[]>();

export function workspaceRefFields(input: z.ZodObject): readonly string[] {
  let out = cache.get(input);
  if (!out) {
    out = Object.entries(input.shape as Record<string, z.ZodType>)
      .filter(([, t]) => unwrap(t) === workspaceId)
      .map(([k]) => k);
    cache.set(input, out);
  }
  return out;
}

/** `workspaceId.optional()`, `.default(…)`, `.nullable()`: the schema inside. */
function unwrap(t: z.ZodType): z.ZodType {
  let cur = t;
  while (cur instanceof z.ZodOptional || cur instanceof z.ZodDefault || cur instanceof z.ZodNullable)
    cur = cur.unwrap() as z.ZodType;
  return cur;
}
