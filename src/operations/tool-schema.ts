import * as z from "zod";
import { modelSecretsField } from "../contract/secrets.js";
import { strictInput } from "./invoke.js";
import { compactJsonSchema } from "./schema-compact.js";
import { getOperation, type Operation } from "./table.js";

/**
 * What a model sees of an operation. Isolation is the operator's choice, never the model's:
 * fields that turn it off are left out of every model-facing schema (MCP tools/list, the
 * provider examples) unless the operator allowed them for this server, and a model that
 * sends one anyway is told the parameter does not exist.
 */
export const OPERATOR_ONLY_FIELDS = ["allow_host_compat"] as const;

export interface ToolOptions {
  /** The operator allows unisolated execution (`pyro mcp serve --allow-host-compat`). */
  allowHostCompat?: boolean;
  /** The operator lets a model send secret values (`pyro mcp serve --allow-secret-values`). */
  allowSecretValues?: boolean;
  /**
   * Input fields this server leaves out of the tool: a profile's or a mode's narrower
   * schema (src/operations/profiles.ts, modes.ts). Required fields are never left out.
   */
  omitFields?: readonly string[];
  /** Only these input fields (and the required ones): a mode's schema for its job. */
  onlyFields?: readonly string[];
}

/** The fields of `op` that `opts` leaves out of its model-facing schema, sorted. */
function hiddenFields(op: Operation, opts: ToolOptions): string[] {
  const shape = op.input.shape as Record<string, z.ZodType>;
  const hidden = new Set<string>(opts.allowHostCompat ? [] : OPERATOR_ONLY_FIELDS.filter((f) => f in shape));
  for (const f of opts.omitFields ?? []) if (f in shape) hidden.add(f);
  if (opts.onlyFields) for (const f of Object.keys(shape)) if (!opts.onlyFields.includes(f)) hidden.add(f);
  // A tool without its required fields could not be called at all.
  return [...hidden].filter((f) => shape[f]!.isOptional()).sort();
}

const cache = new Map<string, z.ZodObject>();

/** The strict input schema a model may call `op` with. */
export function toolInput(op: Operation, opts: ToolOptions = {}): z.ZodObject {
  const hidden = hiddenFields(op, opts);
  const key = `${op.name}|${opts.allowSecretValues === true}|${hidden.join(",")}`;
  let s = cache.get(key);
  if (!s) {
    const mask = Object.fromEntries(hidden.map((f) => [f, true as const]));
    let base = hidden.length ? (op.input.omit(mask as never) as z.ZodObject) : op.input;
    // A model names secrets; host files and variables are the operator's (src/secrets/spec.ts).
    if ("secrets" in base.shape)
      base = base.extend({ secrets: modelSecretsField(opts.allowSecretValues === true).optional() });
    s = strictInput(base);
    cache.set(key, s);
  }
  return s;
}

/**
 * The JSON Schema of `toolInput`, as published in MCP tools/list and usable as a
 * function-tool schema: compacted (src/operations/schema-compact.ts), the server checks
 * the rest.
 */
export function toolInputJsonSchema(
  nameOrOp: string | Operation,
  opts: ToolOptions = {},
): Record<string, unknown> {
  const op = typeof nameOrOp === "string" ? getOperation(nameOrOp) : nameOrOp;
  const json = z.toJSONSchema(toolInput(op, opts), { io: "input" }) as Record<string, unknown>;
  return compactJsonSchema(json, { for: "input" });
}

/**
 * The outputSchema published for `op`: its result's fields, their types, enums and which
 * are required, to one level (what an object or list field holds is in
 * docs/public-contract.md). A client validates structuredContent with it; pyro parses every
 * result with the full zod schema before sending it (src/mcp/server.ts).
 */
export function toolOutputJsonSchema(nameOrOp: string | Operation): Record<string, unknown> {
  const op = typeof nameOrOp === "string" ? getOperation(nameOrOp) : nameOrOp;
  const json = z.toJSONSchema(op.result, { io: "output" }) as Record<string, unknown>;
  return compactJsonSchema(json, { for: "output", depth: 1 });
}
