import { realpathSync, statSync } from "node:fs";
import { lstat, mkdir, realpath, writeFile } from "node:fs/promises";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { PyroError } from "../core/errors.js";
import { isUnder, realHostPath } from "../core/host-paths.js";
import { ignore, noted } from "../util/best-effort.js";

/**
 * Where a model may export to. An export writes guest-made content onto the host, so over
 * MCP (stdio and HTTP; the CLI and SDK are the operator's and keep full freedom) it goes
 * only into an export area the operator chose, and never:
 * - outside that area, onto the area itself, or onto (or over) a directory the server
 *   allows reads from: one export must not be able to replace the project;
 * - into a dot-directory or onto a dot-file below it (`.git/hooks/pre-commit` is host code
 *   the operator's next `git commit` runs; `.envrc`, `.vscode/tasks.json` likewise);
 * - over an existing path, unless the operator allowed it (`--allow-export-overwrite`);
 * - with an execute bit on a file, unless the operator allowed it (`--allow-export-exec`):
 *   a guest-made executable stays data until someone decides to run it.
 *
 * Without a policy (the CLI, the SDK) none of this applies.
 */
export interface ExportPolicy {
  /** Absolute; undefined when this server has no export area (then `noAreaBecause`). */
  readonly area?: string;
  readonly noAreaBecause?: string;
  /**
   * The default area (`pyro-exports/` under the start directory): created non-recursively,
   * and refused when something else (a symlink a repository brought) is already there.
   */
  readonly isDefault: boolean;
  /** `--allow-export-overwrite`: `force` may replace an existing path in the area. */
  readonly allowOverwrite: boolean;
  /** `--allow-export-exec`: exported files keep their execute bits. */
  readonly allowExec: boolean;
  /** Directories the server allows reads from (`--allow-path`): an export never replaces one. */
  readonly roots: readonly string[];
}

export const DEFAULT_EXPORT_DIR = "pyro-exports";

const AREA_HINT =
  "the operator chooses it with `pyro mcp serve --export-dir DIR` (or createServer({ exportDir }) in the SDK)";

/**
 * The export policy of an MCP server. `http`: no default area (over HTTP a client exports
 * with output "download:"; a server directory only when the operator names one). Checked
 * once, at startup: an explicit --export-dir that exists must be a directory.
 */
export function serverExportPolicy(opts: {
  exportDir?: string;
  allowOverwrite?: boolean;
  allowExec?: boolean;
  roots: readonly string[];
  cwd?: string;
  http?: boolean;
}): ExportPolicy {
  const cwd = opts.cwd ?? process.cwd();
  const base = {
    allowOverwrite: opts.allowOverwrite === true,
    allowExec: opts.allowExec === true,
    roots: opts.roots,
  };
  if (opts.exportDir !== undefined) {
    const abs = resolve(cwd, opts.exportDir);
    let area = abs;
    try {
      area = realpathSync.native(abs);
    } catch (e) {
      noted("export dir not there yet: created when the first export needs it", e);
    }
    const st = statSync(area, { throwIfNoEntry: false });
    if (st && !st.isDirectory())
      throw new PyroError(
        "invalid_argument",
        `export directory ${JSON.stringify(opts.exportDir)} is not a directory`,
        "pass a directory (it is created when missing) to --export-dir",
      );
    if (area === sep)
      throw new PyroError(
        "invalid_argument",
        "--export-dir / would let a model write anywhere on the host",
        "pass a directory for exports only, e.g. --export-dir ./pyro-exports",
      );
    return { area, isDefault: false, ...base };
  }
  if (opts.http)
    return {
      noAreaBecause:
        'this server is reached over HTTP and its operator set no --export-dir; export with output "download:"',
      isDefault: false,
      ...base,
    };
  let real = cwd;
  try {
    real = realpathSync.native(cwd);
  } catch (e) {
    noted("cwd's real path unresolvable: its path as given is judged", e);
  }
  if (real === sep)
    return {
      noAreaBecause: "this server was started in / and no --export-dir was given, so it has no export area",
      isDefault: false,
      ...base,
    };
  return { area: join(real, DEFAULT_EXPORT_DIR), isDefault: true, ...base };
}

/** The same policy with its area moved to a subdirectory (one per HTTP token). */
export function narrowExportArea(p: ExportPolicy, sub: string): ExportPolicy {
  return p.area ? { ...p, area: join(p.area, sub), isDefault: false } : p;
}

function denied(message: string, hint: string): PyroError {
  return new PyroError("host_path_denied", message, hint);
}

/**
 * The export area, made when first needed: 0700, because what lands there is a workspace's
 * files (which live under pyro's 0700 state dir, and may hold what a guest copied from a
 * secret): an export should not widen who on the host can read them. A fresh area gets a
 * `.gitignore` of `*`, so exports made inside a checkout are not committed by accident.
 * Returns the area's real path.
 */
async function ensureArea(p: ExportPolicy & { area: string }): Promise<string> {
  const st = await lstat(p.area).catch(ignore("export area missing: created below"));
  if (!st) {
    const made = await mkdir(p.area, { recursive: !p.isDefault, mode: 0o700 }).then(
      () => true,
      (e: NodeJS.ErrnoException) => {
        if (e.code === "EEXIST") return false;
        throw new PyroError(
          "invalid_state",
          `cannot create the export area ${p.area}: ${e.message}`,
          `create it, or ${AREA_HINT}`,
        );
      },
    );
    if (made)
      await writeFile(
        join(p.area, ".gitignore"),
        "# pyro: exports from sandboxes land here; not part of the project\n*\n",
        { flag: "wx" },
      ).catch(ignore("export area .gitignore not written: the export goes on"));
  } else if (p.isDefault && (st.isSymbolicLink() || !st.isDirectory())) {
    throw denied(
      `the export area ${p.area} exists and is not a plain directory (a symlink or a file); pyro will not export through it`,
      `remove it, or ${AREA_HINT}`,
    );
  }
  const real = await realpath(p.area);
  if (!(await lstat(real)).isDirectory())
    throw denied(`the export area ${p.area} is not a directory`, `remove it, or ${AREA_HINT}`);
  return real;
}

/**
 * The host path a model's `output` names, under `policy`: a relative path inside the export
 * area, an absolute one only when it lies strictly below it (symlinks resolved). Throws
 * `host_path_denied` naming the area and the operator's flag otherwise.
 */
export async function resolveExportTarget(
  value: string,
  force: boolean,
  policy: ExportPolicy,
): Promise<{ target: string; lexical: string }> {
  if (value.includes("\0"))
    throw new PyroError("invalid_argument", "output contains a NUL byte", "pass a plain path");
  if (!policy.area)
    throw denied(
      `output ${value}: this server has no export area (${policy.noAreaBecause ?? "none was set"})`,
      AREA_HINT,
    );
  if (force && !policy.allowOverwrite)
    throw denied(
      "force is refused: this server never replaces an existing path with an export",
      "name a new output; the operator allows replacing with `pyro mcp serve --allow-export-overwrite`",
    );
  const area = await ensureArea(policy as ExportPolicy & { area: string });
  const lexical = isAbsolute(value) ? resolve(value) : resolve(area, value);
  const real = (await realHostPath(lexical, "output")).path;
  const shown = `${JSON.stringify(value)}${real === lexical ? "" : ` (it resolves to ${real})`}`;
  const where = `a relative output lands in the export area ${area}`;
  if (real === area)
    throw denied(
      `output ${shown} is the export area itself; an export goes strictly below it`,
      `name a file or directory inside it, e.g. "result"; ${where}`,
    );
  if (!isUnder(real, area))
    throw denied(
      `output ${shown} is outside this server's export area ${area}`,
      `pass a relative path (${where}) or an absolute one below it; ${AREA_HINT}`,
    );
  const dot = relative(area, real)
    .split(sep)
    .find((c) => c.startsWith("."));
  if (dot !== undefined)
    throw denied(
      `output ${shown} goes through ${JSON.stringify(dot)}: exports never write into dot-directories or dot-files (.git, .vscode, .env…)`,
      `name a path without a component starting with "."; ${where}`,
    );
  const root = policy.roots.find((r) => isUnder(r, real));
  if (root !== undefined)
    throw denied(
      `output ${shown} is (or holds) ${root}, a directory this server reads from; an export never replaces it`,
      `name a new path below the export area ${area}`,
    );
  if (!policy.allowOverwrite)
    for (const p of new Set([lexical, real]))
      if (await lstat(p).catch(ignore("export output does not exist: nothing would be replaced")))
        throw denied(
          `output ${shown} already exists, and this server never replaces an existing path`,
          "name a new output; the operator allows replacing with `pyro mcp serve --allow-export-overwrite` (then pass force: true)",
        );
  return { target: real, lexical };
}
