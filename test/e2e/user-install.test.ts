import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { after, test } from "node:test";
import { CLI, REPO, runscBinary } from "../helpers.js";
import { packTarball, registryUnreachable, sh } from "../pack.js";

/**
 * docs/install.md's per-user route, as a fresh ordinary user: the packed tarball installed
 * with `npm install -g` into a prefix in their home (`npm config set prefix ~/.local`), no
 * root. The installed `pyro` answers --version, runs a real sandbox from a shared read-only
 * environment cache (a hard-linked copy of root's debian:12 with its EROFS image, as
 * setup-host.sh fills /var/cache/pyro) without building anything in the user's own cache,
 * and `pyro doctor` tells that user what the shared cache holds. Needs root (to create the
 * user); pyro's dependencies come from the npm registry, as they would for that user.
 */

const USER = `pyro-ui${process.pid % 100000}`;
let work: string | undefined;
let created = false;

function shSync(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function has(bin: string): boolean {
  try {
    shSync("sh", ["-c", `command -v ${bin}`]);
    return true;
  } catch {
    return false;
  }
}

function npmNetwork(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of [
    "NODE_EXTRA_CA_CERTS",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
  ]) {
    const v = process.env[k];
    if (v) out[k] = v;
  }
  for (const key of ["registry", "cafile", "proxy", "https-proxy"]) {
    let v = "";
    try {
      v = shSync("npm", ["config", "get", key]).trim();
    } catch {
      continue;
    }
    if (v && v !== "null" && v !== "undefined") out[`npm_config_${key.replace("-", "_")}`] = v;
  }
  return out;
}

after(async () => {
  if (created) {
    // A sandbox a failed run left behind is deleted by id, as its owner; then the user.
    const home = shSync("getent", ["passwd", USER]).split(":")[5]!;
    const root = join(home, ".local", "state", "pyro-mcp", "runsc");
    const runsc = await runscBinary();
    if (runsc && existsSync(root))
      for (const id of shSync("runuser", [
        "-u",
        USER,
        "--",
        runsc,
        "--rootless",
        `--root=${root}`,
        "list",
        "-quiet",
      ])
        .split("\n")
        .filter(Boolean))
        shSync("runuser", ["-u", USER, "--", runsc, "--rootless", `--root=${root}`, "delete", "--force", id]);
    shSync("userdel", ["--remove", USER]);
  }
  if (work) await rm(work, { recursive: true, force: true });
});

test("a normal user installs the packed tarball into ~/.local and runs pyro", {
  timeout: 900_000,
}, async (t) => {
  if (process.getuid?.() !== 0) return t.skip("skipped: needs root to create a test user");
  for (const bin of ["useradd", "userdel", "runuser", "npm", "newuidmap"])
    if (!has(bin)) return t.skip(`skipped: ${bin} is missing (scripts/setup-host.sh installs uidmap)`);
  if (!existsSync(CLI)) return t.skip("skipped: pyro is not built (npm run build)");
  const runsc = await runscBinary();
  const version = (JSON.parse(await readFile(join(REPO, "package.json"), "utf8")) as { version: string })
    .version;

  // Where the user can read the tarball (a checkout under /root is not readable to them).
  work = await mkdtemp("/var/tmp/pyro-user-install-");
  const tarball = await packTarball(work);

  // The shared cache, as root fills /var/cache/pyro: root's debian:12 entry, hard-linked.
  let shared: string | undefined;
  if (runsc) {
    const rootState = join(work, "root-state");
    const rootEnv = { ...process.env, PYRO_STATE_DIR: rootState };
    const warm = await sh(process.execPath, [CLI, "run", "debian:12", "--", "true"], {
      env: rootEnv,
      timeoutMs: 300_000,
    });
    assert.equal(warm.code, 0, `root's debian:12 does not run: ${warm.stderr}`);
    const info = JSON.parse(
      (await sh(process.execPath, [CLI, "env", "inspect", "debian:12", "--json"], { env: rootEnv })).stdout,
    ) as { path: string };
    if (existsSync(`${info.path}.erofs`)) {
      shared = join(work, "shared");
      await mkdir(join(shared, "environments"), { recursive: true });
      shSync("cp", ["-al", dirname(info.path), join(shared, "environments")]);
    }
  }
  shSync("chmod", ["-R", "a+rX", work]);
  await chmod(work, 0o755);

  shSync("useradd", ["--create-home", "--shell", "/bin/sh", USER]);
  created = true;
  const home = shSync("getent", ["passwd", USER]).split(":")[5]!;
  const env = {
    HOME: home,
    USER,
    LOGNAME: USER,
    // docs/install.md: the prefix's bin goes first on PATH.
    PATH: `${home}/.local/bin:${dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`,
    ...(shared ? { PYRO_SHARED_CACHE: shared } : {}),
    // No warm pool (on by default): userdel at the end must find none of the user's sandboxes.
    PYRO_POOL_SIZE: "0",
    // How this machine reaches the registry (CA bundle, proxy), as the user's own npm
    // config would say: file paths and addresses, never credentials.
    ...npmNetwork(),
  };
  const as = (args: string[], timeoutMs = 120_000) =>
    sh(
      "runuser",
      ["-u", USER, "--", "env", "-i", ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...args],
      {
        cwd: home,
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
        timeoutMs,
      },
    );

  const cfg = await as(["npm", "config", "set", "prefix", `${home}/.local`]);
  assert.equal(cfg.code, 0, cfg.stderr);
  const install = await as(["npm", "install", "-g", "--no-audit", "--no-fund", tarball], 600_000);
  if (install.code !== 0 && registryUnreachable(install.stderr))
    return t.skip(
      `skipped: the npm registry cannot be reached for pyro's dependencies: ${install.stderr.trim().split("\n").at(-1)}`,
    );
  assert.equal(
    install.code,
    0,
    `npm install -g as ${USER} (exit ${install.code}): ${install.stderr}${install.stdout}`,
  );
  assert.ok(existsSync(join(home, ".local", "bin", "pyro")), "pyro is in the user's prefix");

  const v = await as(["pyro", "--version"]);
  assert.equal(v.code, 0, v.stderr);
  assert.equal(v.stdout.trim(), version);
  const which = await as(["sh", "-c", "command -v pyro"]);
  assert.equal(which.stdout.trim(), join(home, ".local", "bin", "pyro"));

  if (!runsc) return t.skip("skipped (after --version): runsc not installed (run scripts/setup-host.sh)");
  if (!shared)
    return t.skip("skipped (after --version): no EROFS image beside root's debian:12 (mkfs.erofs missing?)");
  const run = await as(
    ["pyro", "run", "debian:12", "--json", "--", "sh", "-c", "echo hello from $(id -un)"],
    300_000,
  );
  assert.equal(run.code, 0, `pyro run as ${USER}: ${run.stderr}\n${run.stdout}`);
  const r = JSON.parse(run.stdout) as { exit_code: number; stdout: string; execution_mode: string };
  assert.equal(r.exit_code, 0);
  assert.equal(r.stdout, "hello from root\n", "root inside the sandbox, the user outside");
  assert.notEqual(r.execution_mode, "host_compat");
  const own = join(home, ".cache", "pyro-mcp", "environments");
  const built = existsSync(own) ? (await readdir(own)).filter((f) => f.startsWith("debian-12")) : [];
  assert.deepEqual(built, [], "the shared cache was read; nothing was built in the user's home");

  const doctor = await as(["pyro", "doctor", "--json"], 300_000);
  const d = JSON.parse(doctor.stdout) as {
    platform: { root: boolean };
    shared_cache: { dirs: string[]; environments: string[]; filled: boolean; detail: string };
  };
  assert.equal(d.platform.root, false);
  assert.deepEqual(d.shared_cache.dirs, [join(shared, "environments")]);
  assert.deepEqual(d.shared_cache.environments, ["debian:12"]);
  assert.equal(d.shared_cache.filled, false, "the other catalog environments are not there");
  assert.match(d.shared_cache.detail, /sudo scripts\/setup-host\.sh/);
});
