/**
 * How a command given as a string or an argv becomes a guest argv and a display string.
 *
 * An argv is run through `/bin/sh -c 'exec "$@"'` rather than handed to the engine as is:
 * the shell looks the program up and replaces itself with it (same pid, same argv, no
 * shell parsing of the arguments), and a missing or non-executable program gives the
 * POSIX exit codes 127 / 126 with a "not found" message, the same on every engine. Handed
 * to runsc directly, a missing program is an engine error instead (exit 128, or a runsc
 * killed by SIGPIPE with no message at all).
 */
export const EXEC_WRAPPER = ["/bin/sh", "-c", 'exec "$@"', "sh"] as const;

export function toArgv(command: string | string[]): string[] {
  return typeof command === "string" ? ["/bin/sh", "-c", command] : [...EXEC_WRAPPER, ...command];
}

export function shellQuote(arg: string): string {
  if (arg !== "" && /^[A-Za-z0-9_./:=@%+,-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function displayCommand(command: string | string[]): string {
  return typeof command === "string" ? command : command.map(shellQuote).join(" ");
}
