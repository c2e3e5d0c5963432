/**
 * Best-effort steps: errors dropped on purpose (a cleanup of something that may be gone, a
 * hint file that may not exist yet), each with the reason dropping it is right. Silent by
 * default; with `PYRO_DEBUG=1` each dropped error is one line on stderr,
 * `pyro debug: <reason>: <code: message>`, so "why did that not happen" has an answer.
 *
 * Never stdout (the MCP stdio server owns it), never throws, and no imports: the CLI fast
 * paths load this module, and with debug off a dropped error costs one env lookup.
 * A catch that turns the error into a result, a fallback value with meaning, or rethrows is
 * not best-effort and does not come here.
 */

/** Notes an error dropped on purpose inside `catch (e) { noted("why", e) }`. */
export function noted(reason: string, err: unknown): void {
  if (process.env.PYRO_DEBUG !== "1") return;
  try {
    process.stderr.write(`pyro debug: ${reason}: ${describe(err)}\n`);
  } catch {
    // A closed stderr must not turn a best-effort step into a failure. (This file is the one
    // place a bare catch is right: the ratchet in test/unit/best-effort.test.ts skips it.)
  }
}

/** A `.catch` handler that drops the error with its reason: `p.catch(ignore("why"))`. */
export function ignore(reason: string): (err: unknown) => undefined {
  return (err) => {
    noted(reason, err);
    return undefined;
  };
}

/** One line: the error's code (ENOENT, a PyroError code) unless its message starts with it. */
function describe(err: unknown): string {
  let text: string;
  try {
    if (err instanceof Error || (typeof err === "object" && err !== null && "message" in err)) {
      const { code, message } = err as { code?: unknown; message?: unknown };
      const m = String(message);
      text = typeof code === "string" && code !== "" && !m.startsWith(code) ? `${code}: ${m}` : m;
    } else {
      text = String(err);
    }
  } catch {
    // An object whose toString throws: the reason alone still says what was dropped.
    text = "(unprintable error)";
  }
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > 500 ? `${line.slice(0, 500)}…` : line;
}
