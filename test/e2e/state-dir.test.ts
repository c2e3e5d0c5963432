import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, chown, mkdir, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { CLI, REPO, tempDir } from "../helpers.js";

/**
 * PYRO_STATE_DIR that pyro must not use, as an ordinary user would meet it: another user's
 * 0700 directory, a symlink (to a directory of the user's own), a path inside another user's
 * directory. Each is one clear error naming the directory and why (exit 2, `--json` an error
 * object), never a bare EACCES or a stack trace, and for `run` as well as `workspace list`
 * (which before this said "no workspaces").
 */

const USER = "pyro-statedir";

function run(
  file: string,
  args: string[],
  env?: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) =>
    execFile(file, args, { cwd: REPO, ...(env ? { env } : {}) }, (err, stdout, stderr) =>
      res({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

async function ensureUser(): Promise<{ uid: number; gid: number } | string> {
  if ((await run("id", [USER])).code !== 0) {
    const r = await run("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER]);
    if (r.code !== 0) return `cannot create a test user: ${r.stderr.trim()}`;
  }
  const uid = Number((await run("id", ["-u", USER])).stdout);
  const gid = Number((await run("id", ["-g", USER])).stdout);
  return { uid, gid };
}

/** The built CLI as USER, with only these variables (no build can reach a real mirror). */
function cliAs(env: Record<string, string>, args: string[]) {
  const all = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    PYRO_SHARED_CACHE: "",
    // Should anything try to build an environment, it fails here, on this host.
    PYRO_DEBIAN_MIRROR: "http://127.0.0.1:9/debian",
    // No warm pool (on by default): nothing of the user's outlives the test.
    PYRO_POOL_SIZE: "0",
    ...env,
  };
  return run("runuser", [
    "-u",
    USER,
    "--",
    "env",
    "-i",
    ...Object.entries(all).map(([k, v]) => `${k}=${v}`),
    process.execPath,
    CLI,
    ...args,
  ]);
}

/** `args` with --json where it belongs (before the guest command's `--`). */
const withJson = (args: string[]) => {
  const dd = args.indexOf("--");
  return dd < 0 ? [...args, "--json"] : [...args.slice(0, dd), "--json", ...args.slice(dd)];
};

test("a PYRO_STATE_DIR that is someone else's, a symlink or unreachable is one clear error", async (t) => {
  if (process.getuid?.() !== 0) return t.skip("skipped: needs root to create an ordinary user");
  const user = await ensureUser();
  if (typeof user === "string") return t.skip(`skipped: ${user}`);
  const base = await tempDir("pyro-statedir-");
  try {
    await chmod(base, 0o755);
    // The user's own scratch (HOME, cache) and a state dir of theirs a symlink points at.
    const home = join(base, "home");
    const mine = join(base, "mine");
    for (const d of [home, mine]) {
      await mkdir(d, { mode: 0o700 });
      await chown(d, user.uid, user.gid);
    }
    const link = join(base, "link");
    await symlink(mine, link);
    // Another user's (root's) private directory, and a path below it.
    const theirs = join(base, "theirs");
    await mkdir(theirs, { mode: 0o700 });
    const cases: [string, RegExp][] = [
      [theirs, /belongs to someone else/],
      [link, /is a symlink/],
      [join(theirs, "state"), /cannot be made or reached: permission denied/],
    ];
    for (const [stateDir, why] of cases)
      for (const args of [
        ["run", "debian:12", "--", "true"],
        ["workspace", "list"],
      ]) {
        const env = { HOME: home, PYRO_STATE_DIR: stateDir, PYRO_CACHE_DIR: join(home, "cache") };
        const as = (a: string[]) => cliAs(env, a);
        const what = `${args.join(" ")} with PYRO_STATE_DIR=${stateDir}`;
        const text = await as(args);
        assert.equal(text.code, 2, `${what}: ${text.stdout}${text.stderr}`);
        assert.ok(text.stderr.includes(`pyro's state dir ${stateDir} `), `${what}: ${text.stderr}`);
        assert.match(text.stderr, why, what);
        assert.match(text.stderr, /fix: point PYRO_STATE_DIR/, what);
        assert.doesNotMatch(text.stderr, /EACCES|internal error|\n\s+at /, what);
        const json = await as(withJson(args));
        assert.equal(json.code, 2, `${what} --json: ${json.stdout}${json.stderr}`);
        const err = (JSON.parse(json.stdout) as { error: { code: string; message: string } }).error;
        assert.equal(err.code, "invalid_argument", what);
        assert.match(err.message, why, what);
        assert.ok(err.message.includes(stateDir), what);
      }
  } finally {
    await rm(base, { recursive: true, force: true });
  }
});

test("a PYRO_CACHE_DIR that is someone else's is one clear error when an environment must be built", async (t) => {
  if (process.getuid?.() !== 0) return t.skip("skipped: needs root to create an ordinary user");
  const user = await ensureUser();
  if (typeof user === "string") return t.skip(`skipped: ${user}`);
  const base = await tempDir("pyro-cachedir-");
  try {
    await chmod(base, 0o755);
    const home = join(base, "home");
    await mkdir(home, { mode: 0o700 });
    await chown(home, user.uid, user.gid);
    const theirs = join(base, "theirs");
    await mkdir(theirs, { mode: 0o700 });
    const env = { HOME: home, PYRO_STATE_DIR: join(home, "state"), PYRO_CACHE_DIR: theirs };
    const args = ["run", "debian:12", "--", "true"];
    const text = await cliAs(env, args);
    assert.equal(text.code, 2, `${text.stdout}${text.stderr}`);
    assert.ok(text.stderr.includes(`pyro's cache dir ${theirs} belongs to someone else`), text.stderr);
    assert.match(text.stderr, /fix: point PYRO_CACHE_DIR/);
    assert.doesNotMatch(text.stderr, /EACCES|internal error|mmdebstrap|\n\s+at /);
    const json = await cliAs(env, withJson(args));
    assert.equal(json.code, 2, json.stdout + json.stderr);
    const err = (JSON.parse(json.stdout) as { error: { code: string; message: string } }).error;
    assert.equal(err.code, "invalid_argument");
    assert.match(err.message, /belongs to someone else/);
    // Listing needs no cache of one's own: it still works.
    const list = await cliAs(env, ["workspace", "list", "--json"]);
    assert.equal(list.code, 0, list.stdout + list.stderr);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
});
