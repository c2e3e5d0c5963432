import { PyroError } from "../core/errors.js";

/**
 * Parsers of the few flags that are not operation fields (`mcp serve --http`'s limits, token
 * lifetimes): operation flags are checked by their zod schema instead.
 */

/** Commander's argParser for a flag that takes a positive whole number. */
export function positiveInt(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0)
      throw new PyroError(
        "invalid_argument",
        `${flag} must be a positive whole number (got ${JSON.stringify(v)})`,
      );
    return n;
  };
}
