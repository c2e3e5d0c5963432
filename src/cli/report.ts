import { diskFullFrom, type PyroError } from "../core/errors.js";

/**
 * How the CLI reports an error and leaves: shared by the full CLI (commands.ts, after the
 * hint is worded for the CLI) and its fast paths (fast-run.ts, fast-exec.ts), whose errors
 * have plain hints, so that both print the same thing.
 */
export const EXIT = { error: 1, usage: 2, cancelled: 130, sigpipe: 141 } as const;

export function exitCodeFor(e: PyroError): number {
  if (e.code === "cancelled") return EXIT.cancelled;
  if (e.code === "invalid_argument" || e.code === "unknown_environment" || e.code === "unknown_operation")
    return EXIT.usage;
  return EXIT.error;
}

interface Out {
  write(s: string): unknown;
}

/** Prints the error (one line and its fix, or the JSON error document) and returns the exit code. */
export function printError(stdout: Out, stderr: Out, pe: PyroError, json: boolean): number {
  if (json) stdout.write(`${JSON.stringify(pe.toJSON(), null, 2)}\n`);
  else stderr.write(`pyro: error: ${pe.message}\n${pe.hint ? `  fix: ${pe.hint}\n` : ""}`);
  return exitCodeFor(pe);
}

/**
 * A fast path run so that a full host disk (its command log, its output file) is said as the
 * full CLI says it, not as the launcher's "internal error" with a stack trace.
 */
export async function reportingDiskFull(
  argv: readonly string[],
  run: () => Promise<number | undefined>,
): Promise<number | undefined> {
  try {
    return await run();
  } catch (e) {
    const full = diskFullFrom(e);
    if (full) return printError(process.stdout, process.stderr, full, argv.includes("--json"));
    throw e;
  }
}
