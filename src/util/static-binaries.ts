import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { PyroError } from "../core/errors.js";
import { ignore } from "./best-effort.js";
import { runCapture, which } from "./proc.js";

/**
 * The static helper programs pyro puts inside sandboxes (the microVM agent, gVisor's
 * sandbox init), built from guest/*.c by `npm run build` into dist/guest/. They must be
 * static: they run inside whatever root filesystem the environment has.
 */
export interface StaticBinarySpec {
  /** File name under dist/guest/ (and in the compile cache). */
  name: string;
  /** Source file under guest/. */
  source: string;
  /** Environment variable that points at a prebuilt binary instead. */
  envVar: string;
  hint: string;
}

/** The sandbox init (guest/sandbox-init.c): gVisor's in-sandbox init, and the host-side VM watchdog. */
export const SANDBOX_INIT: StaticBinarySpec = {
  name: "pyro-sandbox-init",
  source: "sandbox-init.c",
  envVar: "PYRO_SANDBOX_INIT",
  hint: "run `npm run build` (compiles guest/sandbox-init.c with `cc -static`), or set PYRO_SANDBOX_INIT",
};

/**
 * The package root (where package.json and guest/ or dist/guest/ live). Searched upwards
 * because this module runs from src/ (tests), dist/engines/ (tsc) or a dist/cli bundle chunk.
 */
export function packageRoot(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (
      existsSync(join(dir, "package.json")) &&
      (existsSync(join(dir, "guest", "agent.c")) || existsSync(join(dir, "dist", "guest", "pyro-agent")))
    ) {
      return dir;
    }
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/** True when the ELF file has no program interpreter (is statically linked). */
export function isStaticElf(buf: Buffer): boolean {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2) return false;
  const phoff = Number(buf.readBigUInt64LE(32));
  const phentsize = buf.readUInt16LE(54);
  const phnum = buf.readUInt16LE(56);
  for (let i = 0; i < phnum; i++) {
    const off = phoff + i * phentsize;
    if (off + 4 > buf.length) return false;
    if (buf.readUInt32LE(off) === 3) return false; // PT_INTERP
  }
  return true;
}

export async function readStaticBinary(path: string): Promise<Buffer | undefined> {
  const buf = await readFile(path).catch(ignore("no readable binary here: not usable"));
  return buf && isStaticElf(buf) ? buf : undefined;
}

/** Per process: the answer does not change while it runs, and runs are on the hot path. */
const resolved = new Map<string, string>();

/**
 * `$envVar`, else dist/guest/<name> (fresh against its source), else compiled from
 * guest/<source> into the cache when a C compiler exists.
 */
export async function ensureStaticBinary(
  spec: StaticBinarySpec,
  cacheDir: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const key = `${spec.name}\0${cacheDir}\0${env[spec.envVar] ?? ""}`;
  const hit = resolved.get(key);
  if (hit) return hit;
  const path = await findOrBuild(spec, cacheDir, env);
  resolved.set(key, path);
  return path;
}

async function findOrBuild(
  spec: StaticBinarySpec,
  cacheDir: string,
  env: NodeJS.ProcessEnv,
): Promise<string> {
  const override = env[spec.envVar];
  if (override) {
    if (await readStaticBinary(override)) return override;
    throw new PyroError(
      "host_dependency_missing",
      `${spec.envVar}=${override} is not a static executable`,
      spec.hint,
    );
  }
  const root = packageRoot();
  if (!root)
    throw new PyroError(
      "host_dependency_missing",
      `cannot find pyro's ${spec.name} (no dist/guest/${spec.name})`,
      spec.hint,
    );
  const source = join(root, "guest", spec.source);
  const src = await readFile(source).catch(
    ignore("guest source not shipped: the built binary is used as is"),
  );
  const built = join(root, "dist", "guest", spec.name);
  if (existsSync(built)) {
    // A stale build (source edited since) is rebuilt below rather than silently used.
    const fresh = !src || (await stat(built)).mtimeMs >= (await stat(source)).mtimeMs;
    if (fresh && (await readStaticBinary(built))) return built;
  }
  if (!src)
    throw new PyroError(
      "host_dependency_missing",
      `${spec.name} is not built (${built} is missing)`,
      spec.hint,
    );
  const cc = (await which(env.CC || "cc", env)) ?? (await which("gcc", env));
  if (!cc)
    throw new PyroError(
      "host_dependency_missing",
      `${spec.name} is not built and no C compiler is installed`,
      spec.hint,
    );
  const digest = createHash("sha256").update(src).digest("hex").slice(0, 16);
  const out = join(cacheDir, "guest-bin", digest, spec.name);
  if (await readStaticBinary(out)) return out;
  await mkdir(dirname(out), { recursive: true });
  const tmp = `${out}.tmp-${process.pid}`;
  const r = await runCapture(cc, ["-static", "-O2", "-o", tmp, source], { timeoutMs: 120_000, env });
  if (r.exitCode !== 0) {
    await rm(tmp, { force: true });
    throw new PyroError(
      "host_dependency_missing",
      `compiling ${spec.name} failed: ${r.stderr.trim().slice(-500)}`,
      spec.hint,
    );
  }
  await rename(tmp, out);
  return out;
}
