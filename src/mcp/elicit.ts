import type { McpServer, ServerContext } from "@modelcontextprotocol/server";
import { PyroError } from "../core/errors.js";

/**
 * "Ask first" (`pyro mcp serve --ask-first delete,export,reset`): operations the operator
 * wants a human to confirm before a model's call runs them. Where the client offers MCP
 * elicitation, the server asks the human (a yes/no form) and runs the call only on an
 * explicit yes; where it cannot ask (no elicitation capability, or a stateless HTTP request
 * whose server cannot wait for a reply), the operator's fallback decides: `deny` (the
 * default) refuses, `allow` runs.
 */

export const ASK_FIRST_KINDS = ["delete", "export", "reset"] as const;
export type AskFirstKind = (typeof ASK_FIRST_KINDS)[number];

export interface AskFirstPolicy {
  kinds: ReadonlySet<AskFirstKind>;
  /** What a call does when the client cannot ask its human. */
  fallback: "allow" | "deny";
}

/** `--ask-first` values (comma-separated, repeatable) and `--ask-first-fallback`, or a clear error. */
export function parseAskFirst(values: readonly string[], fallback = "deny"): AskFirstPolicy {
  const kinds = new Set<AskFirstKind>();
  for (const v of values.flatMap((x) => x.split(",")).map((x) => x.trim()))
    if (v) {
      if (!(ASK_FIRST_KINDS as readonly string[]).includes(v))
        throw new PyroError(
          "invalid_argument",
          `--ask-first ${JSON.stringify(v.slice(0, 100))} is not one of ${ASK_FIRST_KINDS.join(", ")}`,
          "e.g. --ask-first delete,reset (delete: workspace/VM/snapshot deletes; export: exports with force; reset: workspace_reset)",
        );
      kinds.add(v as AskFirstKind);
    }
  if (fallback !== "allow" && fallback !== "deny")
    throw new PyroError(
      "invalid_argument",
      `--ask-first-fallback ${JSON.stringify(fallback.slice(0, 100))} is not allow or deny`,
      "deny (the default) refuses an ask-first call a client cannot confirm; allow runs it",
    );
  return { kinds, fallback };
}

/** Which ask-first kind a tool call is, if any. */
export function askFirstKind(tool: string, args: unknown): AskFirstKind | undefined {
  const a = (args && typeof args === "object" ? args : {}) as Record<string, unknown>;
  if (tool === "workspace_delete" || tool === "vm_delete" || tool === "workspace_snapshot_delete")
    return "delete";
  if (tool === "workspace_reset") return "reset";
  if (tool === "workspace_export" && a.force === true) return "export";
  return undefined;
}

function describe(tool: string, args: unknown): string {
  const a = (args && typeof args === "object" ? args : {}) as Record<string, unknown>;
  const target = a.workspace_id ?? a.vm_id ?? "";
  const extra = tool === "workspace_snapshot_delete" || tool === "workspace_reset" ? a.name : a.output;
  return `${tool} ${String(target).slice(0, 100)}${extra !== undefined ? ` (${String(extra).slice(0, 200)})` : ""}`;
}

/**
 * Throws a PyroError unless the call may go on: asked and confirmed, or not askable and the
 * fallback allows it. `canAsk` is false where the server cannot wait for a client's reply.
 */
export async function confirmAskFirst(
  policy: AskFirstPolicy | undefined,
  server: McpServer,
  ctx: ServerContext,
  tool: string,
  args: unknown,
  canAsk: boolean,
): Promise<void> {
  const kind = askFirstKind(tool, args);
  if (!policy || !kind || !policy.kinds.has(kind)) return;
  const what = describe(tool, args);
  if (!canAsk || !server.server.getClientCapabilities()?.elicitation) {
    if (policy.fallback === "allow") return;
    throw new PyroError(
      "cancelled",
      `the operator asks a human to confirm ${kind} operations, and this client cannot ask: ${what} was not run`,
      "ask the user to run it themselves, or to use a client that supports MCP elicitation",
    );
  }
  const answer = await ctx.mcpReq.elicitInput({
    mode: "form",
    message: `The model wants to run ${what}. Allow it?`,
    requestedSchema: {
      type: "object",
      properties: {
        confirm: { type: "boolean", title: `Run ${tool}`, description: what, default: false },
      },
      required: ["confirm"],
    },
  });
  if (answer.action === "accept" && answer.content?.confirm === true) return;
  throw new PyroError(
    "cancelled",
    `the user did not confirm ${what} (${answer.action === "accept" ? "answered no" : answer.action}): nothing was run`,
    "do not retry it unless the user asks for it",
  );
}
