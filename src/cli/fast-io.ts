import { EXIT } from "./report.js";

/**
 * What a fast path (fast-run.ts, fast-exec.ts) does around its command, as the full CLI does
 * it (cli/main.ts, cli/commands.ts): Ctrl-C, SIGTERM and SIGHUP cancel it (a second one
 * quits at once), a reader that goes away (`| head -1`) ends it, and in plain mode its output
 * goes to ours live.
 */
export interface FastSession {
  /** Aborted by a signal or by the reader going away. */
  signal: AbortSignal;
  /** Live sinks for the command's output (plain mode only). */
  sinks: { onStdout?: (c: Buffer) => void; onStderr?: (c: Buffer) => void };
  /** Whether the command ended because our stdout's reader went away (exit 141). */
  pipeGone(): boolean;
  /** Removes the handlers (the path declined after all: the full CLI installs its own). */
  close(): void;
}

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/**
 * Ctrl-C, SIGTERM and a closed terminal (SIGHUP) abort `abort` (a second one quits at once);
 * the CLI's and its fast paths' shared handling. Returns what removes the handlers.
 */
export function cancelOnSignals(abort: AbortController): () => void {
  let interrupted = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (++interrupted > 1) process.exit(EXIT.cancelled);
    // After SIGHUP the terminal is gone: writing to it could only fail.
    if (sig !== "SIGHUP")
      process.stderr.write(
        `\npyro: ${sig} received, cleaning up${sig === "SIGINT" ? " (press Ctrl-C again to quit now)" : ""}\n`,
      );
    abort.abort();
  };
  for (const s of SIGNALS) process.on(s, onSignal);
  return () => {
    for (const s of SIGNALS) process.off(s, onSignal);
  };
}

export function fastSession(json: boolean): FastSession {
  const abort = new AbortController();
  const uncancel = cancelOnSignals(abort);
  const gone = new AbortController();
  const live = !json;
  const onError = (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") gone.abort();
  };
  if (live) process.stdout.on("error", onError);
  const write = (s: NodeJS.WriteStream) => (c: Buffer) => {
    if (!gone.signal.aborted) s.write(c);
  };
  return {
    signal: AbortSignal.any([abort.signal, gone.signal]),
    sinks: live ? { onStdout: write(process.stdout), onStderr: write(process.stderr) } : {},
    pipeGone: () => gone.signal.aborted && !abort.signal.aborted,
    close: () => {
      uncancel();
      process.stdout.off("error", onError);
    },
  };
}
