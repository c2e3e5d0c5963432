import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { lstat, mkdir, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { isAbsolute, join, resolve } from "node:path";
import * as tar from "tar";
import { PyroError } from "../core/errors.js";
import { ignore } from "../util/best-effort.js";
import type { SourceInfo } from "./archive.js";

/**
 * Project-aware start: the project an MCP server was started for (a git checkout it was
 * started in, `--project-path`, or a clone of `--repo-url`), from which `workspace_create`
 * seeds /workspace when the model gives no `seed_path`.
 *
 * The seed is what git tracks (`git ls-files`), not the directory: build output, caches,
 * `.env` files and everything else .gitignore keeps out stay on the host. With
 * `includeUntracked`, untracked files that are not ignored come too (`git ls-files -co
 * --exclude-standard`), for work not yet added. Files are read from the working tree, so
 * uncommitted edits are seeded as they are.
 */
export type OriginKind = "project_path" | "repo_url";

export interface ProjectSource {
  kind: OriginKind;
  /** The checkout's top-level directory (for a repo URL, pyro's clone of it). */
  root: string;
  /** The URL cloned, for repo_url. */
  url: string | null;
  /** The branch (or tag) checked out, or null on a detached HEAD. */
  ref: string | null;
  /** HEAD's commit, or null in a repository with no commit yet. */
  commit: string | null;
  includeUntracked: boolean;
}

export interface ProjectOptions {
  /** A directory inside a git checkout. */
  path?: string;
  /** A git URL (https://, ssh, file:// or a local path) to clone (shallow) into the cache. */
  repoUrl?: string;
  /** Branch or tag of repoUrl (default: its default branch). */
  repoRef?: string;
  /** Also seed untracked files that are not ignored. */
  includeUntracked?: boolean;
}

/** The seed a project hands workspace_create: an archive to unpack, and where it came from. */
export interface ProjectSeed {
  source: SourceInfo;
  origin: ProjectSource;
  fileCount: number;
  cleanup: () => Promise<void>;
}

export interface ProjectSeeder {
  readonly project: ProjectSource;
  snapshot(signal?: AbortSignal): Promise<ProjectSeed>;
}

async function git(
  args: string[],
  opts: { cwd?: string; signal?: AbortSignal; allowFail?: boolean } = {},
): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((res, rej) => {
    const child = spawn("git", args, {
      cwd: opts.cwd,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, GIT_TERMINAL_PROMPT: "0", LC_ALL: "C" },
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const out: Buffer[] = [];
    let err = "";
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => {
      err += c;
    });
    child.on("error", (e: NodeJS.ErrnoException) =>
      e.code === "ENOENT"
        ? rej(
            new PyroError(
              "host_dependency_missing",
              "git is not installed on this host",
              "install git (apt-get install git) or pass seed_path instead of a project",
            ),
          )
        : rej(e),
    );
    child.on("close", (code) => {
      const r = { code: code ?? 1, stdout: Buffer.concat(out), stderr: err.trim() };
      if (r.code !== 0 && !opts.allowFail)
        rej(
          new PyroError("invalid_argument", `git ${args.join(" ")} failed: ${r.stderr || `exit ${r.code}`}`),
        );
      else res(r);
    });
  });
}

/** The top level of the git checkout containing `dir`, or undefined when it is in none. */
export async function gitTopLevel(dir: string): Promise<string | undefined> {
  try {
    const r = await git(["rev-parse", "--show-toplevel"], { cwd: dir, allowFail: true });
    return r.code === 0 ? r.stdout.toString().trim() : undefined;
  } catch (e) {
    // No git on this host: no project detection, not a failure to start.
    if (e instanceof PyroError && e.code === "host_dependency_missing") return undefined;
    throw e;
  }
}

async function describeHead(root: string): Promise<{ ref: string | null; commit: string | null }> {
  const head = await git(["rev-parse", "--verify", "-q", "HEAD"], { cwd: root, allowFail: true });
  const branch = await git(["symbolic-ref", "-q", "--short", "HEAD"], { cwd: root, allowFail: true });
  return {
    commit: head.code === 0 ? head.stdout.toString().trim() : null,
    ref: branch.code === 0 ? branch.stdout.toString().trim() : null,
  };
}

/**
 * Clones `url` (shallow, one branch) into `<cacheDir>/projects/<hash>`, replacing an older
 * clone of the same URL and ref: every server start sees the repository as it is now. The
 * clone is made beside the target and renamed into place, so an interrupted clone never
 * leaves a half-populated project behind.
 */
async function cloneRepo(url: string, ref: string | undefined, cacheDir: string): Promise<string> {
  const key = createHash("sha256")
    .update(`${url}\0${ref ?? ""}`)
    .digest("hex")
    .slice(0, 16);
  const base = join(cacheDir, "projects");
  await mkdir(base, { recursive: true });
  const target = join(base, key);
  const tmp = await mkdtemp(join(base, `.tmp-${key}-`));
  try {
    await git([
      "clone",
      "--quiet",
      "--depth",
      "1",
      "--single-branch",
      ...(ref ? ["--branch", ref] : []),
      "--",
      url,
      join(tmp, "repo"),
    ]).catch((e: unknown) => {
      throw new PyroError(
        "invalid_argument",
        `cannot clone --repo-url ${url}${ref ? ` at --repo-ref ${ref}` : ""}: ${(e as Error).message.replace(/^git [^:]*: /, "")}`,
        "check the URL is reachable from this host and the ref is a branch or tag of it",
      );
    });
    await rm(target, { recursive: true, force: true });
    await rename(join(tmp, "repo"), target);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return target;
}

/**
 * Works out the server's project: `repoUrl` (cloned now), else `path`, else the git checkout
 * `cwd` is in. Undefined when none applies (not in a checkout, nothing asked for). Explicit
 * options that do not work are errors; an undetected project is not.
 */
export async function resolveProject(
  opts: ProjectOptions,
  ctx: { cwd: string; cacheDir: string },
): Promise<ProjectSource | undefined> {
  const includeUntracked = opts.includeUntracked === true;
  if (opts.repoUrl) {
    if (opts.path)
      throw new PyroError(
        "invalid_argument",
        "--project-path and --repo-url are exclusive",
        "pass one of them",
      );
    const root = await cloneRepo(opts.repoUrl, opts.repoRef, ctx.cacheDir);
    const head = await describeHead(root);
    return { kind: "repo_url", root, url: opts.repoUrl, ...head, includeUntracked };
  }
  if (opts.repoRef)
    throw new PyroError(
      "invalid_argument",
      "--repo-ref needs --repo-url",
      "pass --repo-url URL --repo-ref REF",
    );
  const dir = opts.path ? resolve(ctx.cwd, opts.path) : ctx.cwd;
  if (opts.path && !existsSync(dir))
    throw new PyroError(
      "invalid_argument",
      `--project-path ${opts.path} does not exist`,
      "pass a git checkout",
    );
  const root = await gitTopLevel(dir);
  if (!root) {
    if (!opts.path) return undefined;
    throw new PyroError(
      "invalid_argument",
      `--project-path ${opts.path} is not inside a git checkout`,
      "pass a git checkout, or allow the directory with --allow-path and give seed_path",
    );
  }
  return { kind: "project_path", root, url: null, ...(await describeHead(root)), includeUntracked };
}

/** The files of a project that a seed carries: tracked ones (and untracked unignored ones). */
export async function projectFiles(p: ProjectSource, signal?: AbortSignal): Promise<string[]> {
  const args = [
    "ls-files",
    "-z",
    "--cached",
    ...(p.includeUntracked ? ["--others", "--exclude-standard"] : []),
  ];
  const r = await git(args, { cwd: p.root, ...(signal ? { signal } : {}) });
  const names = [...new Set(r.stdout.toString("utf8").split("\0").filter(Boolean))];
  const out: string[] = [];
  for (const n of names) {
    // Deleted in the working tree but still in the index: nothing to seed. A submodule is
    // a directory entry (a gitlink); its files belong to another repository.
    const st = await lstat(join(p.root, n)).catch(
      ignore("deleted in the working tree but still in the index: nothing to seed"),
    );
    if (!st || st.isDirectory()) continue;
    out.push(n);
  }
  return out.sort();
}

/**
 * A seeder over `p`: each workspace_create gets a fresh archive of the project's files as
 * they are at that moment, written to a private temporary directory under `tmpRoot` and
 * removed once the workspace is seeded. The archive then goes through the same checks as
 * any seed archive (no entry escapes /workspace, no devices, limits).
 */
export function projectSeeder(p: ProjectSource, tmpRoot: string): ProjectSeeder {
  return {
    project: p,
    async snapshot(signal) {
      if (!isAbsolute(tmpRoot)) throw new Error(`tmpRoot must be absolute: ${tmpRoot}`);
      await mkdir(tmpRoot, { recursive: true, mode: 0o700 });
      const dir = await mkdtemp(join(tmpRoot, "project-seed-"));
      const cleanup = () => rm(dir, { recursive: true, force: true });
      try {
        const files = await projectFiles(p, signal);
        const file = join(dir, "project.tar");
        // portable: no uid/gid/uname from the host; the files arrive as the guest's.
        if (files.length) await tar.create({ cwd: p.root, file, portable: true, noDirRecurse: true }, files);
        else await writeFile(file, Buffer.alloc(1024)); // an empty archive: two zero blocks
        return {
          source: { kind: "tar_archive", path: file, gzip: false },
          origin: p,
          fileCount: files.length,
          cleanup,
        };
      } catch (e) {
        await cleanup();
        throw e;
      }
    },
  };
}
