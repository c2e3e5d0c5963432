import type * as z from "zod";
import type { Runtime } from "../runtime/runtime.js";
import type { CallContext } from "../sandbox/context.js";

/**
 * Every public operation, once. The CLI commands, SDK methods and MCP tools are derived
 * from this table, and the public-contract test walks it, so the three faces cannot drift.
 */
export interface CliSpec {
  /** Command path, e.g. ["workspace", "sync", "push"]. */
  path: string[];
  /** Input fields taken as positional arguments, in order. */
  positional?: string[];
  /** Input field filled from everything after `--`. */
  rest?: "command";
  examples: string[];
  /** Extra CLI-only flags handled by the renderer (e.g. --id-only); repeatable ones collect a list. */
  extraFlags?: { flag: string; description: string; repeatable?: boolean }[];
  /**
   * Input fields the CLI spells with other flags (`secrets` as --secret/--secret-file/
   * --secret-env): no flag of their own; `fromFlags` builds them from the parsed options.
   */
  fieldFlags?: Record<string, string[]>;
  fromFlags?: (opts: Record<string, unknown>) => Record<string, unknown>;
}

export interface Operation<I extends z.ZodObject = z.ZodObject, R extends z.ZodObject = z.ZodObject> {
  /** Wire name: the MCP tool name, and the key SDK calls go through. */
  name: string;
  /** SDK method name (camelCase). */
  sdk: string;
  title: string;
  /** Written for a model: what it does, when to use it, units and defaults. */
  description: string;
  input: I;
  result: R;
  mcp: boolean;
  cli: CliSpec;
  readOnly?: boolean;
  destructive?: boolean;
  handler: (rt: Runtime, input: z.infer<I>, ctx: CallContext) => Promise<z.infer<R>>;
}

export function op<const N extends string, I extends z.ZodObject, R extends z.ZodObject>(
  o: Operation<I, R> & { name: N },
): Operation<I, R> & { name: N } {
  return o;
}
