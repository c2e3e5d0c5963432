import type { ServerContext } from "@modelcontextprotocol/server";
import { LatestLine } from "../output/recorder.js";
import type { CallContext, Progress } from "../sandbox/context.js";

/** How often a running call reports progress; clients reset a 60 s request timeout on it. */
export const PROGRESS_INTERVAL_MS = 5_000;

export interface ProgressReporter {
  /** The CallContext callbacks that feed the reports. */
  callbacks: Pick<CallContext, "onProgress" | "onStdout" | "onStderr">;
  stop: () => void;
}

/**
 * Turns a call's work into notifications/progress, but only when the client asked for them
 * (sent a progressToken): unsolicited progress is a protocol violation. Each runtime step
 * (environment build, seeding…) is reported as it happens, and while the call runs a
 * heartbeat goes out every `intervalMs` with the elapsed time and the latest output line
 * or step, so a client that resets its request timeout on progress (the MCP SDKs'
 * `resetTimeoutOnProgress`) can wait for a command longer than that timeout. `progress`
 * is a step counter: the spec requires it to increase with every notification.
 */
export function progressReporter(
  ctx: ServerContext,
  log: (line: string) => void,
  intervalMs = PROGRESS_INTERVAL_MS,
): ProgressReporter | undefined {
  const token = ctx.mcpReq._meta?.progressToken;
  if (token === undefined) return undefined;
  const started = Date.now();
  const latest = new LatestLine();
  let lastStep = "";
  let sawOutput = false;
  let step = 0;
  const send = (message: string) => {
    step++;
    ctx.mcpReq
      .notify({
        method: "notifications/progress",
        params: { progressToken: token, progress: step, message },
      })
      // A lost progress line must never fail the call it reports on.
      .catch((e: unknown) =>
        log(`progress notification failed: ${e instanceof Error ? e.message : String(e)}`),
      );
  };
  const timer = setInterval(() => {
    const secs = Math.round((Date.now() - started) / 1000);
    const line = sawOutput ? latest.get() : "";
    const what = line ? `last output: ${line}` : lastStep || "working";
    send(`${secs} s elapsed; ${what}`);
  }, intervalMs);
  timer.unref();
  const onOutput = (chunk: Buffer) => {
    sawOutput = true;
    latest.push(chunk);
  };
  return {
    callbacks: {
      onProgress: (p: Progress) => {
        lastStep = p.message;
        send(p.message);
      },
      onStdout: onOutput,
      onStderr: onOutput,
    },
    stop: () => clearInterval(timer),
  };
}
