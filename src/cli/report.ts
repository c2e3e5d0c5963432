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
  isTTY?: boolean;
}

/**
 * Whether to colour what goes to `out`: only a terminal, and never when NO_COLOR is set to
 * anything (no-color.org) or TERM=dumb. `--json` output is never coloured (its callers do not ask).
 */
export function colourOn(out: Out, env: NodeJS.ProcessEnv = process.env): boolean {
  return out.isTTY === true && !env.NO_COLOR && env.TERM !== "dumb";
}

/** `text` in an SGR style (`1;31` bold red, `33` yellow) when `on`, else as it is. */
export const paint = (on: boolean, style: string, text: string) =>
  on ? `\x1b[${style}m${text}\x1b[0m` : text;

/** Prints the error (one line and its fix, or the JSON error document) and returns the exit code. */
export function printError(stdout: Out, stderr: Out, pe: PyroError, json: boolean): number {
  const c = colourOn(stderr);
  if (json) stdout.write(`${JSON.stringify(pe.toJSON(), null, 2)}\n`);
  else
    stderr.write(
      `${paint(c, "1;31", "pyro: error:")} ${pe.message}\n${pe.hint ? `  ${paint(c, "33", "fix:")} ${pe.hint}\n` : ""}`,
    );
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
