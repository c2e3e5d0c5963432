import * as z from "zod";
import { modelSecretsField } from "../contract/secrets.js";
import { strictInput } from "./invoke.js";
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
}

const cache = new Map<string, z.ZodObject>();

/** The strict input schema a model may call `op` with. */
export function toolInput(op: Operation, opts: ToolOptions = {}): z.ZodObject {
  const key = `${op.name}|${opts.allowHostCompat === true}|${opts.allowSecretValues === true}`;
  let s = cache.get(key);
  if (!s) {
    const hidden = opts.allowHostCompat ? [] : OPERATOR_ONLY_FIELDS.filter((f) => f in op.input.shape);
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

/** The JSON Schema of `toolInput`, as published in MCP tools/list and usable as a function-tool schema. */
export function toolInputJsonSchema(
  nameOrOp: string | Operation,
  opts: ToolOptions = {},
): Record<string, unknown> {
  const op = typeof nameOrOp === "string" ? getOperation(nameOrOp) : nameOrOp;
  const json = z.toJSONSchema(toolInput(op, opts), { io: "input" }) as Record<string, unknown>;
  delete json.$schema;
  return json;
}
