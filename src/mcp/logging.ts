import type { CallToolResult, ServerContext } from "@modelcontextprotocol/server";
import { ignore } from "../util/best-effort.js";

/**
 * The MCP `logging` capability's messages: what an operator or host wants to see happen
 * beside a tool's own result. Environment builds and pulls, warm-pool top-ups and drains,
 * reaps of expired sandboxes, and tool failures, each as one `notifications/message` on the
 * request that caused it (so it reaches the client on stdio and on a Streamable HTTP
 * response stream alike). The SDK drops messages below the level the client set with
 * `logging/setLevel`.
 */

type Level = "debug" | "info" | "notice" | "warning" | "error";

/** The message a finished tool call logs, or undefined for calls that are not worth one. */
export function logLine(
  tool: string,
  result: CallToolResult,
): { level: Level; logger: string; data: Record<string, unknown> } | undefined {
  const s = (result.structuredContent ?? {}) as Record<string, unknown>;
  if (result.isError) {
    const err = (result._meta?.["pyro/error"] ?? {}) as { code?: unknown; message?: unknown };
    return { level: "error", logger: "pyro", data: { tool, code: err.code, message: err.message } };
  }
  const env = s.environment as { name?: unknown } | undefined;
  switch (tool) {
    case "env_pull":
      return {
        level: "info",
        logger: "pyro.environments",
        data: {
          event: s.pulled ? "environment pulled" : "environment already cached",
          environment: env?.name,
          bytes_downloaded: s.bytes_downloaded,
        },
      };
    case "env_build":
      return {
        level: "info",
        logger: "pyro.environments",
        data: {
          event: s.built ? "environment built" : "environment up to date",
          environment: env?.name,
          duration_ms: s.duration_ms,
        },
      };
    case "pool_fill":
    case "pool_drain":
      return {
        level: "info",
        logger: "pyro.pool",
        data: { event: tool === "pool_fill" ? "pool topped up" : "pool drained", ...s },
      };
    case "vm_reap_expired":
      return { level: "notice", logger: "pyro.reaper", data: { event: "expired sandboxes reaped", ...s } };
    default:
      return undefined;
  }
}

/** Logs a finished call's line on its request (never fails the call). */
export async function logCall(ctx: ServerContext, tool: string, result: CallToolResult): Promise<void> {
  const line = logLine(tool, result);
  if (!line) return;
  await ctx.mcpReq
    .log(line.level, line.data, line.logger)
    .catch(ignore("a log message the client can no longer receive: the result still goes"));
}
