/** How a command given as a string or an argv becomes a guest argv and a display string. */
export function toArgv(command: string | string[]): string[] {
  return typeof command === "string" ? ["/bin/sh", "-c", command] : [...command];
}

export function shellQuote(arg: string): string {
  if (arg !== "" && /^[A-Za-z0-9_./:=@%+,-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function displayCommand(command: string | string[]): string {
  return typeof command === "string" ? command : command.map(shellQuote).join(" ");
}
