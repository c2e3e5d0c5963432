import * as z from "zod";
import { PyroError } from "../core/errors.js";
import { withCommandHint } from "../environments/command-hint.js";
import type { Runtime } from "../runtime/runtime.js";
import type { CallContext } from "../sandbox/context.js";
import { ensureFloor, unmaskDiskFull } from "../sandbox/host-space.js";
import { redactOperation } from "../secrets/redact-op.js";
import { errorForFace, type Face } from "./hints.js";
import type { Operation } from "./operation.js";
import { workspaceRefFields } from "./refs.js";
import { unknownNames } from "./suggest.js";

/**
 * Inputs are strict: a parameter the operation does not have is an error, never silently
 * dropped (`timeout` for `timeout_seconds` would otherwise run with the default).
 */
const strictCache = new WeakMap<z.ZodObject, z.ZodObject>();
export function strictInput(schema: z.ZodObject): z.ZodObject {
  let s = strictCache.get(schema);
  if (!s) {
    s = schema.strict();
    strictCache.set(schema, s);
  }
  return s;
}

function isOptional(t: z.ZodType | undefined): boolean {
  return t instanceof z.ZodDefault || t instanceof z.ZodOptional;
}

/**
 * Turns zod issues into one line naming each bad field and what is allowed, in the caller's
 * spelling (`nameOf`: `--timeout-seconds` on the CLI, `timeoutSeconds` in the SDK).
 */
export function describeIssues(
  err: z.ZodError,
  nameOf: (field: string) => string = (f) => f,
  schema?: z.ZodObject,
  raw?: unknown,
): string {
  const shape = (schema?.shape ?? {}) as Record<string, z.ZodType>;
  const given = raw !== null && typeof raw === "object" ? (raw as Record<string, unknown>) : {};
  // Unknown names first: they usually explain the rest (a misspelt required field).
  const issues = [...err.issues].sort(
    (a, b) => Number(b.code === "unrecognized_keys") - Number(a.code === "unrecognized_keys"),
  );
  return issues
    .map((i) => {
      if (i.code === "unrecognized_keys" && i.path.length === 0)
        return unknownNames("parameter", i.keys.map(nameOf), Object.keys(shape).map(nameOf));
      const top = i.path.length ? String(i.path[0]) : undefined;
      const field = top !== undefined ? nameOf(top) : "input";
      if (
        top !== undefined &&
        i.path.length === 1 &&
        !(top in given) &&
        shape[top] &&
        !isOptional(shape[top])
      )
        return `\`${field}\` is required`;
      // Never echo what was given for a secret: it may be the value.
      const got =
        "input" in i && i.input !== undefined && top !== "secrets"
          ? ` (got ${JSON.stringify(i.input)?.slice(0, 80)})`
          : "";
      return `${field}: ${i.message}${got}`;
    })
    .join("; ");
}

export interface InvokeOptions {
  /** Who is calling: decides the language of hints. Default "sdk". */
  face?: Face;
  /** How the caller spells a wire field (for messages). */
  nameOf?: (field: string) => string;
  /**
   * The schema this face accepts, a restriction of the operation's input (MCP leaves out
   * operator-only fields such as allow_host_compat). Default: the full input.
   */
  schema?: z.ZodObject;
}

/**
 * Operations that write new host state, refused with `disk_full` below the free-space floor
 * (workspace_create and fork are checked by the manager, with the disk they reserve).
 */
const FLOOR_OPS: Readonly<Record<string, string>> = {
  workspace_sync_push: "a seed into a workspace",
  workspace_snapshot_create: "a snapshot",
  workspace_export: "an export",
  workspace_disk_export: "a disk export",
  vm_run: "a run",
  vm_create: "a VM",
};

/** Validates raw input against an operation's schema, reaps expired sandboxes, runs it. */
export async function invoke(
  rt: Runtime,
  op: Operation,
  raw: unknown,
  ctx: CallContext = {},
  opts: InvokeOptions = {},
): Promise<unknown> {
  const face = opts.face ?? "sdk";
  try {
    const schema = strictInput(opts.schema ?? op.input);
    const parsed = schema.safeParse(raw ?? {}, { reportInput: true });
    if (!parsed.success)
      throw new PyroError(
        "invalid_argument",
        `invalid input for ${op.name}: ${describeIssues(parsed.error, opts.nameOf, schema, raw)}`,
      );
    // A face's schema may leave fields out; the full schema fills in their defaults.
    const input = opts.schema ? op.input.parse(parsed.data) : parsed.data;
    await rt.ensureStateDir();
    // Below the host's free-space floor, nothing new is written (host-space.ts).
    const writes = FLOOR_OPS[op.name];
    if (writes) await ensureFloor(rt, writes);
    if (op.name !== "vm_reap_expired") await rt.reapIfDue();
    // A workspace's name stands wherever its id does (workspaces/naming.ts), resolved here and
    // only here, within the caller's tenant: every face and every workspace reference field
    // (refs.ts) passes this line, so no operation can look a name up across tenants.
    for (const f of workspaceRefFields(op.input))
      if (typeof input[f] === "string") input[f] = await rt.workspaces.resolveId(input[f], ctx.tenant);
    // Secret values never leave in a result or an error (src/secrets/redact-op.ts).
    const result = await redactOperation(rt.workspaces, op.name, input, () => op.handler(rt, input, ctx));
    // A command that exited 127 for a missing program: which catalog environments have it.
    return withCommandHint(result);
  } catch (e) {
    throw errorForFace(await unmaskDiskFull(e), face);
  }
}
