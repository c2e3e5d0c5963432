import type * as z from "zod";
import { PyroError, toPyroError } from "../errors.js";
import type { CallContext } from "../runtime/context.js";
import type { Runtime } from "../runtime/runtime.js";
import type { Operation } from "./table.js";

/** Turns zod issues into one line naming each bad field and what is allowed. */
export function describeIssues(err: z.ZodError, nameOf: (field: string) => string = (f) => f): string {
  return err.issues
    .map((i) => {
      const field = i.path.length ? nameOf(String(i.path[0])) : "input";
      const got =
        "input" in i && i.input !== undefined ? ` (got ${JSON.stringify(i.input)?.slice(0, 80)})` : "";
      return `${field}: ${i.message}${got}`;
    })
    .join("; ");
}

/** Validates raw input against an operation's schema, reaps expired sandboxes, runs it. */
export async function invoke(
  rt: Runtime,
  op: Operation,
  raw: unknown,
  ctx: CallContext = {},
  nameOf?: (f: string) => string,
): Promise<unknown> {
  const parsed = op.input.safeParse(raw ?? {}, { reportInput: true });
  if (!parsed.success)
    throw new PyroError(
      "invalid_argument",
      `invalid input for ${op.name}: ${describeIssues(parsed.error, nameOf)}`,
    );
  if (op.name !== "vm_reap_expired") await rt.reapIfDue();
  try {
    return await op.handler(rt, parsed.data, ctx);
  } catch (e) {
    throw toPyroError(e);
  }
}
