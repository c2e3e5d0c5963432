/**
 * One error type for everything pyro reports to a user. `code` is stable (agents and the
 * troubleshooting doc key on it); `hint` says how to fix it. The CLI prints
 * "pyro: <message>" plus the hint, MCP returns it as an isError result, the SDK throws it.
 */
export type ErrorCode =
  | "invalid_argument"
  | "unknown_environment"
  | "environment_build_failed"
  | "no_engine"
  | "engine_unavailable"
  | "engine_failure"
  | "not_found"
  | "expired"
  | "sandbox_dead"
  | "invalid_state"
  | "seed_rejected"
  | "timeout"
  | "cancelled"
  | "host_dependency_missing"
  | "registry_unreachable"
  | "registry_auth_failed"
  | "registry_error"
  | "image_not_found"
  | "image_digest_mismatch"
  | "image_layer_unsafe"
  | "image_unsupported"
  | "recipe_invalid";

export class PyroError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  constructor(code: ErrorCode, message: string, hint?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PyroError";
    this.code = code;
    this.hint = hint;
  }

  toJSON(): { error: { code: ErrorCode; message: string; hint?: string } } {
    return { error: { code: this.code, message: this.message, ...(this.hint ? { hint: this.hint } : {}) } };
  }
}

export function isPyroError(e: unknown): e is PyroError {
  return e instanceof PyroError;
}

/** Wraps anything thrown into a PyroError so every face reports errors the same way. */
export function toPyroError(e: unknown): PyroError {
  if (e instanceof PyroError) return e;
  if (e instanceof Error && e.name === "AbortError") return new PyroError("cancelled", "operation cancelled");
  const msg = e instanceof Error ? e.message : String(e);
  return new PyroError("engine_failure", msg, undefined, { cause: e });
}
