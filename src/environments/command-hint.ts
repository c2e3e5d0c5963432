import { CATALOG } from "./catalog.js";

/**
 * A command missing from the environment (`python3` in `debian:12`) exits 127 and says
 * "not found" in its own words; a model then guesses, or installs what another environment
 * already has. This names the catalog environments that have the command (their declared
 * `commands`, checked against the built root filesystems by test/unit/catalog.test.ts), as a
 * note of the exec result. Only on exit 127, so no other run pays for it.
 */

/** Every such note starts so (the faces show it where they show no other notes). */
export const COMMAND_HINT_PREFIX = "command not found: ";

const NAME = "([A-Za-z0-9_][A-Za-z0-9_.+-]*)";
/** sh (`sh: 1: X: not found`), bash (`bash: line 1: X: command not found`), pyro's init (`pyro: X: not found`). */
const SHELL_NOT_FOUND = new RegExp(`^(?:.*?: )?${NAME}: (?:command )?not found$`);
/** Programs that exec their argument: env, xargs, pyro's guest agent. */
const EXEC_NOT_FOUND = new RegExp(
  `^(?:\\S*/)?(?:env|xargs|pyro-agent): '?${NAME}'?: No such file or directory$`,
);

/** The command a 127's output says was not found (the last one it names), if any. */
export function missingCommand(output: string): string | undefined {
  let found: string | undefined;
  for (const line of output.split("\n")) {
    const l = line.trimEnd();
    const m = SHELL_NOT_FOUND.exec(l) ?? EXEC_NOT_FOUND.exec(l);
    if (m) found = m[1];
  }
  return found;
}

/** The note for a run that exited 127 because a command was missing, or undefined. */
export function commandHint(r: {
  exit_code: number;
  stdout: string;
  stderr: string;
  environment: string;
  stdout_encoding?: string;
  stderr_encoding?: string;
}): string | undefined {
  if (r.exit_code !== 127) return undefined;
  const text = (s: string, enc: string | undefined) => (enc === "base64" ? "" : s);
  const name =
    missingCommand(text(r.stderr, r.stderr_encoding)) ?? missingCommand(text(r.stdout, r.stdout_encoding));
  if (!name) return undefined;
  const have = CATALOG.filter((c) => c.commands?.includes(name)).map((c) => c.name);
  // Declared there yet not found: a PATH or a deleted file, not the environment; no advice.
  if (have.includes(r.environment)) return undefined;
  if (have.length === 0)
    return `${COMMAND_HINT_PREFIX}${name} is in none of pyro's catalog environments (${CATALOG.map((c) => c.name).join(", ")}); an OCI image that has it can be the environment`;
  return `${COMMAND_HINT_PREFIX}${name} is not in ${r.environment}; catalog environments that have it: ${have.join(", ")} (run it in ${have[0]} instead)`;
}

/**
 * The result with the hint added to its notes when it is an exec result that exited 127 for a
 * missing command; anything else is returned as it is.
 */
export function withCommandHint<T>(result: T): T {
  if (result === null || typeof result !== "object") return result;
  const r = result as Record<string, unknown>;
  if (
    r.exit_code !== 127 ||
    typeof r.stdout !== "string" ||
    typeof r.stderr !== "string" ||
    typeof r.environment !== "string" ||
    !Array.isArray(r.notes)
  )
    return result;
  const note = commandHint(r as Parameters<typeof commandHint>[0]);
  if (!note || r.notes.includes(note)) return result;
  return { ...r, notes: [...r.notes, note] } as T;
}
