import { realpathSync, statSync } from "node:fs";
import { realpath } from "node:fs/promises";
import { isAbsolute, resolve, sep } from "node:path";
import { PyroError } from "./errors.js";

/**
 * Host paths are capabilities. Every host path an operation reads or writes (seed_path,
 * source_path today; export targets later) goes through `resolveHostPath`, which applies
 * the caller's policy:
 * - no policy (the CLI and the SDK, whose caller is the operator): relative paths resolve
 *   against the caller's directory, anything goes;
 * - a policy (the MCP server, whose caller is a model): the path must be absolute, and once
 *   symlinks and `..` are resolved (realpath) it must be one of the allowed roots or under
 *   one. A symlink inside a root that points at /etc is therefore refused.
 */
export interface HostAccessPolicy {
  /** Absolute, symlink-free directories; empty means no host path at all is allowed. */
  readonly roots: readonly string[];
  /** How the operator widens the roots, for error hints. */
  readonly widen: string;
  /** Why the roots are empty, when they are (said in the error). */
  readonly emptyBecause?: string;
}

/** What a caller's context says about host access; undefined policy = full access. */
export interface HostPathContext {
  cwd?: string;
  hostAccess?: HostAccessPolicy;
}

export const MCP_WIDEN_HINT =
  "the operator can allow more directories with `pyro mcp serve --allow-path DIR` (repeatable), or createServer({ allowPaths: [...] }) in the SDK";

/**
 * Builds a policy from directories the operator named. Each must exist and be a directory;
 * it is stored symlink-free so that checks compare like with like. Throws a clear error
 * otherwise (at startup, not at the first tool call). Synchronous: it runs once, when a
 * server is created.
 */
export function hostAccessPolicy(
  dirs: readonly string[],
  opts: { cwd?: string; widen?: string; emptyBecause?: string } = {},
): HostAccessPolicy {
  const roots: string[] = [];
  for (const d of dirs) {
    const abs = resolve(opts.cwd ?? process.cwd(), d);
    let real: string;
    try {
      real = realpathSync.native(abs);
      if (!statSync(real).isDirectory())
        throw Object.assign(new Error("not a directory"), { code: "ENOTDIR" });
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : "is not a directory";
      throw new PyroError(
        "invalid_argument",
        `allowed path ${JSON.stringify(d)} ${why}`,
        "pass an existing directory to --allow-path",
      );
    }
    if (!roots.includes(real)) roots.push(real);
  }
  return {
    roots,
    widen: opts.widen ?? MCP_WIDEN_HINT,
    ...(roots.length === 0 && opts.emptyBecause ? { emptyBecause: opts.emptyBecause } : {}),
  };
}

/**
 * The policy an MCP server gets when the operator names no directory: the directory the
 * server was started in. Not when that is `/`, though (some MCP clients start servers
 * there): allowing the whole host by accident is what this module exists to prevent, so
 * then nothing is allowed until the operator says what.
 */
export function defaultMcpPolicy(cwd: string = process.cwd()): HostAccessPolicy {
  const real = (() => {
    try {
      return realpathSync.native(cwd);
    } catch {
      return cwd;
    }
  })();
  if (real === "/")
    return hostAccessPolicy([], {
      emptyBecause: "this server was started in / and no --allow-path was given, so it allows no host paths",
    });
  return hostAccessPolicy([real]);
}

/** True when `p` (absolute, symlink-free) is `root` or below it. */
export function isUnder(p: string, root: string): boolean {
  if (root === sep) return p.startsWith(sep);
  return p === root || p.startsWith(root + sep);
}

/**
 * Resolves a host path a caller handed us, for reading (`mustExist`, the default) or for
 * writing (a path that may not exist yet: its deepest existing ancestor is resolved and
 * the rest may not contain `..`). `field` is the wire name used in errors (seed_path).
 * Returns the path to use: absolute, and with a policy also symlink-free.
 */
export async function resolveHostPath(
  value: string,
  field: string,
  ctx: HostPathContext = {},
  opts: { mustExist?: boolean } = {},
): Promise<string> {
  if (value.includes("\0"))
    throw new PyroError("invalid_argument", `${field} contains a NUL byte`, "pass a plain host path");
  const policy = ctx.hostAccess;
  if (!policy) return resolve(ctx.cwd ?? process.cwd(), value);
  if (!isAbsolute(value))
    throw new PyroError(
      "invalid_argument",
      `${field} ${JSON.stringify(value)} is a relative path; use an absolute path`,
      `an MCP server has no working directory of yours to resolve it against; pass e.g. ${JSON.stringify(
        `${policy.roots[0] ?? "/path/to/project"}/${value.replace(/^(\.\/)+/, "")}`,
      )}`,
    );
  const real = await realHostPath(value, field);
  const allowed = policy.roots.some((r) => isUnder(real.path, r));
  // A missing path is reported as missing only inside the roots: outside them, whether a
  // path exists is none of the caller's business.
  if (allowed && real.missing && (opts.mustExist ?? true)) {
    throw new PyroError(
      "invalid_argument",
      `${field} does not exist: ${value}`,
      "pass an existing directory or a .tar/.tar.gz/.tgz file",
    );
  }
  if (allowed) return real.path;
  return deny(policy, field, value, real.path);
}

function deny(policy: HostAccessPolicy, field: string, value: string, real: string): never {
  const resolvedNote = real === resolve(value) ? "" : ` (it resolves to ${real})`;
  const where =
    policy.roots.length > 0
      ? `outside the host paths this server may use: ${policy.roots.join(", ")}`
      : `not allowed: ${policy.emptyBecause ?? "this server allows no host paths"}`;
  throw new PyroError("host_path_denied", `${field} ${value}${resolvedNote} is ${where}`, policy.widen);
}

/**
 * realpath (the kernel's: `..` after a symlink goes up from where the link lands), or for a
 * path that does not exist, realpath of its deepest existing ancestor plus the rest, which
 * may then not contain `..` (it could not be resolved honestly).
 */
export async function realHostPath(
  value: string,
  field: string,
): Promise<{ path: string; missing: boolean }> {
  try {
    return { path: await realpath(value), missing: false };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "ENOENT")
      throw new PyroError("invalid_argument", `cannot read ${field} ${value}: ${(e as Error).message}`);
  }
  const parts = value.split("/").filter((c) => c !== "" && c !== ".");
  for (let keep = parts.length - 1; keep >= 0; keep--) {
    const rest = parts.slice(keep);
    if (rest.includes(".."))
      throw new PyroError(
        "invalid_argument",
        `${field} ${value} goes through .. below a directory that does not exist`,
        "pass a path without ..",
      );
    try {
      const base = await realpath(`/${parts.slice(0, keep).join("/")}`);
      return { path: resolve(base, ...rest), missing: true };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
  }
  return { path: resolve(value), missing: true };
}
