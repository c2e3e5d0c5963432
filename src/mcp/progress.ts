import type { ServerContext } from "@modelcontextprotocol/server";
import type { Progress } from "../runtime/context.js";

/**
 * Turns runtime progress callbacks into notifications/progress, but only when the client
 * asked for them (sent a progressToken): unsolicited progress is a protocol violation.
 * The runtime's steps rarely know a total, so `progress` is a step counter; the spec
 * requires it to increase with every notification, which a counter guarantees.
 */
export function progressForwarder(
  ctx: ServerContext,
  log: (line: string) => void,
): ((p: Progress) => void) | undefined {
  const token = ctx.mcpReq._meta?.progressToken;
  if (token === undefined) return undefined;
  let step = 0;
  return (p) => {
    step++;
    ctx.mcpReq
      .notify({
        method: "notifications/progress",
        params: { progressToken: token, progress: step, message: p.message },
      })
      // A lost progress line must never fail the call it reports on.
      .catch((e: unknown) =>
        log(`progress notification failed: ${e instanceof Error ? e.message : String(e)}`),
      );
  };
}
