import { lchown, lstat, mkdir, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { PyroError } from "../core/errors.js";
import { ignore } from "../util/best-effort.js";
import { runCapture } from "../util/proc.js";

/**
 * What an environment asks of every process started in it, beyond its files: the image
 * config's Env, WorkingDir and User (resolved to numbers against the image's own
 * /etc/passwd and /etc/group at pull time, so engines never parse guest files).
 * Catalog environments have none of it.
 */
export interface RuntimeConfig {
  env: Record<string, string>;
  /** Working directory for `run` (workspaces always start in /workspace). */
  cwd: string | null;
  uid: number;
  gid: number;
}

export const DEFAULT_RUNTIME: RuntimeConfig = { env: {}, cwd: null, uid: 0, gid: 0 };

export function envListToRecord(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list) {
    const i = kv.indexOf("=");
    if (i > 0) out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

/** Reads a file of the rootfs only if neither it nor /etc is a symlink (it could point at the host's). */
async function guestFile(rootfs: string, rel: string): Promise<string | undefined> {
  for (const p of [join(rootfs, "etc"), join(rootfs, rel)]) {
    const st = await lstat(p).catch(ignore("guest path missing: no guest file to read"));
    if (!st || st.isSymbolicLink()) return undefined;
  }
  return readFile(join(rootfs, rel), "utf8").catch(ignore("guest file unreadable: treated as absent"));
}

function lookup(text: string | undefined, name: string): { id: number; gid?: number } | undefined {
  for (const line of (text ?? "").split("\n")) {
    const f = line.split(":");
    if (f[0] === name && f[2] !== undefined && /^\d+$/.test(f[2]))
      return { id: Number(f[2]), ...(f[3] && /^\d+$/.test(f[3]) ? { gid: Number(f[3]) } : {}) };
  }
  return undefined;
}

export async function resolveUser(
  rootfs: string,
  user: string | null,
): Promise<{ uid: number; gid: number }> {
  if (!user) return { uid: 0, gid: 0 };
  const [u = "", g] = user.split(":");
  const passwd = await guestFile(rootfs, "etc/passwd");
  let uid: number;
  let gid: number | undefined;
  if (/^\d+$/.test(u)) {
    uid = Number(u);
    const byId = (passwd ?? "")
      .split("\n")
      .map((l) => l.split(":"))
      .find((f) => f[2] === u);
    if (byId?.[3] && /^\d+$/.test(byId[3])) gid = Number(byId[3]);
  } else {
    const hit = lookup(passwd, u);
    if (!hit)
      throw new PyroError(
        "image_unsupported",
        `the image's User ${JSON.stringify(user)} is not in its /etc/passwd`,
        "use an image whose config names an existing user, or a numeric uid",
      );
    uid = hit.id;
    gid = hit.gid;
  }
  if (g !== undefined && g !== "") {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const hit = lookup(await guestFile(rootfs, "etc/group"), g);
      if (!hit)
        throw new PyroError(
          "image_unsupported",
          `the image's group ${JSON.stringify(g)} is not in its /etc/group`,
        );
      gid = hit.id;
    }
  }
  return { uid, gid: gid ?? uid };
}

export async function resolveRuntimeConfig(
  rootfs: string,
  c: { env: string[]; working_dir: string | null; user: string | null },
): Promise<RuntimeConfig> {
  const { uid, gid } = await resolveUser(rootfs, c.user);
  return { env: envListToRecord(c.env), cwd: c.working_dir, uid, gid };
}

export async function duBytes(path: string): Promise<number> {
  const r = await runCapture("du", ["-sb", path], { timeoutMs: 120_000 });
  const n = Number.parseInt(r.stdout.split(/\s/)[0] ?? "", 10);
  if (!Number.isFinite(n))
    throw new PyroError("engine_failure", `could not measure ${path}: ${r.stderr.trim()}`);
  return n;
}

/** An image's Env and WorkingDir for the command (catalog environments: none, cwd /). */
export function processOf(r: RuntimeConfig): { cwd: string; env?: Record<string, string> } {
  return { cwd: r.cwd ?? "/", ...(Object.keys(r.env).length ? { env: r.env } : {}) };
}

/** An image's User, when it is not root. */
export function userOf(r: RuntimeConfig): { user?: { uid: number; gid: number } } {
  return r.uid !== 0 || r.gid !== 0 ? { user: { uid: r.uid, gid: r.gid } } : {};
}

/** chown -hR without following symlinks (the tree is pyro's own fresh workspace dir). */
export async function chownTree(path: string, uid: number, gid: number): Promise<void> {
  await lchown(path, uid, gid);
  const st = await lstat(path);
  if (!st.isDirectory()) return;
  for (const n of await readdir(path)) await chownTree(join(path, n), uid, gid);
}

/**
 * `mkdir -p` of an absolute guest path inside a rootfs that may hold hostile symlinks: every
 * component is lstat'ed and a symlink (or a non-directory) stops the walk, so nothing is ever
 * created through a link, i.e. outside the rootfs. Returns whether the whole path now exists
 * as real directories.
 */
export async function mkdirInRootfs(rootfs: string, guestPath: string): Promise<boolean> {
  let cur = rootfs;
  for (const part of guestPath.split("/").filter((p) => p && p !== ".")) {
    if (part === "..") return false;
    cur = join(cur, part);
    const st = await lstat(cur).catch(ignore("guest directory missing: created here"));
    if (!st) await mkdir(cur, { mode: 0o755 });
    else if (!st.isDirectory()) return false;
  }
  return true;
}
