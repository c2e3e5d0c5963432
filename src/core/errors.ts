/**
 * One error type for everything pyro reports to a user. `code` is stable (agents and the
 * troubleshooting doc key on it); `hint` says how to fix it. The CLI prints
 * "pyro: <message>" plus the hint, MCP returns it as an isError result, the SDK throws it.
 */
export type ErrorCode =
  | "invalid_argument"
  | "unknown_operation"
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
  | "host_path_denied"
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
  | "recipe_invalid"
  // Remote (src/remote/): a token's limits, a refused token, an operation a remote server cannot do.
  | "limit_exceeded"
  | "unauthorized"
  | "remote_unsupported"
  | "disk_full";

/**
 * A hint is written once, below the faces, but read in a face's language: "list workspaces
 * with `pyro workspace list`" on the CLI, `pyro.listWorkspaces()` in the SDK, the
 * `workspace_list` tool over MCP. So a hint names operations by wire name, as data, and each
 * face renders it (src/operations/hints.ts). Parts:
 * - a string: literal text;
 * - `{ op, args? }`: a call of a public operation (wire name, wire-named arguments);
 * - `{ option, value }`: an input parameter by wire name (`--allow-host-compat` on the CLI);
 * - `{ unisolated: [...] }`: advice to give up isolation. Only the operator may take it, so
 *   faces whose caller is a model drop it entirely.
 */
export type HintPart =
  | string
  | { op: string; args?: Record<string, string | number | boolean> }
  | { option: string; value: string | number | boolean }
  | { unisolated: HintPart[] };
export type Hint = readonly HintPart[];

/** The face-neutral rendering (wire names), used until a face renders its own. */
export function renderHintNeutral(parts: Hint): string {
  return parts
    .map((p) => {
      if (typeof p === "string") return p;
      if ("op" in p) return `\`${p.op}${p.args ? ` ${JSON.stringify(p.args)}` : ""}\``;
      if ("option" in p) return `\`${p.option}: ${JSON.stringify(p.value)}\``;
      return renderHintNeutral(p.unisolated);
    })
    .join("");
}

export class PyroError extends Error {
  readonly code: ErrorCode;
  /** The hint as text, in the language of the face that threw or re-rendered it. */
  readonly hint: string | undefined;
  /** The structured hint, when it names operations or options (for faces to re-render). */
  readonly hintParts: Hint | undefined;
  constructor(code: ErrorCode, message: string, hint?: string | Hint, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PyroError";
    this.code = code;
    if (typeof hint === "string" || hint === undefined) {
      this.hint = hint;
      this.hintParts = hint === undefined ? undefined : [hint];
    } else {
      this.hintParts = hint;
      this.hint = renderHintNeutral(hint) || undefined;
    }
  }

  /** The same error with its hint rendered by a face; keeps the stack and cause. */
  withHint(hint: string | undefined): PyroError {
    const e = new PyroError(this.code, this.message, hint, { cause: this.cause });
    Object.defineProperty(e, "hintParts", { value: this.hintParts });
    if (this.stack) e.stack = this.stack;
    return e;
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
  const full = diskFullFrom(e);
  if (full) return full;
  const msg = e instanceof Error ? e.message : String(e);
  return new PyroError("engine_failure", msg, undefined, { cause: e });
}

/** Errno codes (or their text, from a child process) of a full disk or an exhausted quota. */
export function isDiskFullErrno(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ENOSPC" || code === "EDQUOT") return true;
  const msg = e instanceof Error ? e.message : typeof e === "string" ? e : "";
  return /\bENOSPC\b|\bEDQUOT\b|No space left on device|Disk quota exceeded/.test(msg);
}

/**
 * The last-resort mapping of a full disk to `disk_full` (toPyroError, and the CLI's catch of
 * last resort): the path the system call named when it named one, and the way out. Which disk
 * filled is not known here: the host's, or a workspace's own /workspace image.
 */
export function diskFullFrom(e: unknown): PyroError | undefined {
  if (!isDiskFullErrno(e)) return undefined;
  const err = e as NodeJS.ErrnoException | undefined;
  const path = err?.path ?? (e instanceof Error ? /'(\/[^']+)'/.exec(e.message)?.[1] : undefined);
  return new PyroError(
    "disk_full",
    `${err?.code === "EDQUOT" ? "disk quota exceeded" : "no space left on the disk"}${path ? ` holding ${path}` : ""}; the operation did not finish`,
    "free space on the host (delete workspaces, snapshots or old outputs; see docs/troubleshooting.md, disk_full), or, if a workspace's /workspace is what filled, delete files there or use a larger disk_mib, then try again",
    { cause: e },
  );
}
