import { execFile, execFileSync, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The warm pool is on by default (pool/config.ts): a test's `pyro run` would leave ready
 * sandboxes, started by a detached fill, in its state dir after the test. Tests keep it off
 * unless they set PYRO_POOL_SIZE themselves (pool.test.ts, workspace-pool.test.ts, and the
 * test of the default in pool.test.ts, which deletes it).
 */
process.env.PYRO_POOL_SIZE ??= "0";

/**
 * Shared test plumbing. E2E tests drive the BUILT package (dist/), against the real engine.
 * Each test gets its own state dir (PYRO_STATE_DIR); environments come from the normal
 * cache (~/.cache/pyro-mcp or PYRO_CACHE_DIR) so they are built once per machine/CI run.
 */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const CLI = join(REPO, "dist", "cli", "main.js");

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export async function tempDir(prefix = "pyro-test-"): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** A fresh state dir and the env vars that point pyro at it. */
export async function testEnv(
  extra: Record<string, string> = {},
): Promise<{ stateDir: string; env: NodeJS.ProcessEnv; cleanup: () => Promise<void> }> {
  const stateDir = await tempDir("pyro-state-");
  const env = { ...process.env, PYRO_STATE_DIR: stateDir, PYRO_QUIET: "0", ...extra };
  return {
    stateDir,
    env,
    cleanup: async () => {
      try {
        await assertNoSandboxes(stateDir);
      } finally {
        // A failed test may leave a workspace disk mounted: rm -r would empty it, then fail.
        await unmountUnder(stateDir);
        await rm(stateDir, { recursive: true, force: true });
      }
    },
  };
}

export function runCli(
  args: string[],
  opts: {
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    input?: string;
    timeoutMs?: number;
    /** Another launcher than this checkout's dist/cli/main.js (a copy under test). */
    main?: string;
  } = {},
): Promise<CliResult> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [opts.main ?? CLI, ...args], {
      env: opts.env ?? process.env,
      cwd: opts.cwd ?? REPO,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => {
      stdout += c;
    });
    child.stderr.on("data", (c) => {
      stderr += c;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? "");
  });
}

function parseCliJson<T>(r: CliResult): { code: number | null; json: T; stderr: string } {
  let json: T;
  try {
    json = JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(
      `not JSON (exit ${r.code}): stdout=${r.stdout.slice(0, 500)} stderr=${r.stderr.slice(0, 1500)}`,
    );
  }
  return { code: r.code, json, stderr: r.stderr };
}

export async function runCliJson<T = Record<string, unknown>>(
  args: string[],
  opts: Parameters<typeof runCli>[1] = {},
): Promise<{ code: number | null; json: T; stderr: string }> {
  return parseCliJson<T>(await runCli([...args, "--json"], opts));
}

/** Like runCliJson, but puts --json before the `--` that starts the guest command (after it, it would belong to that command). */
export async function runCliJsonGuest<T = Record<string, unknown>>(
  args: string[],
  opts: Parameters<typeof runCli>[1] = {},
): Promise<{ code: number | null; json: T; stderr: string }> {
  const i = args.indexOf("--");
  const withFlag = i < 0 ? [...args, "--json"] : [...args.slice(0, i), "--json", ...args.slice(i)];
  return parseCliJson<T>(await runCli(withFlag, opts));
}

function execOut(file: string, args: string[]): Promise<string> {
  return new Promise((res) => execFile(file, args, (err, stdout) => res(err ? "" : stdout)));
}

export async function runscBinary(): Promise<string | undefined> {
  for (const p of [process.env.PYRO_RUNSC, "/usr/local/bin/runsc", "/usr/bin/runsc"])
    if (p && existsSync(p)) return p;
  return undefined;
}

/** Why gVisor e2e tests cannot run here, or undefined when they can. */
export async function gvisorSkipReason(): Promise<string | undefined> {
  if (process.getuid?.() !== 0)
    return "these gVisor tests run as root (test/e2e/rootless.test.ts covers ordinary users)";
  if (!(await runscBinary())) return "runsc not installed (run scripts/setup-host.sh)";
  return undefined;
}

/** Lazily unmounts every mount point below `dir` (workspace disks a failed test left). */
export async function unmountUnder(dir: string): Promise<void> {
  const info = await readFile("/proc/self/mountinfo", "utf8").catch(() => "");
  const points = info
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((m) => m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of points) await execOut("umount", ["-l", m]);
}

/** Fails if any runsc sandbox or container state is left under this state dir. */
export async function assertNoSandboxes(stateDir: string): Promise<void> {
  const root = join(stateDir, "runsc");
  const runsc = await runscBinary();
  if (!runsc || !existsSync(root)) return;
  const list = await execOut(runsc, [`--root=${root}`, "list", "--quiet"]);
  const left = list.split("\n").filter(Boolean);
  // pyro asks runsc for a network namespace per gofer (runsc.ts), so a `null-netns` bind
  // mount here means a sandbox was started without it: reported like a sandbox left behind.
  const files = (await readdir(root).catch(() => [] as string[])).filter((f) => !f.startsWith("."));
  if (left.length || files.length) {
    throw new Error(`sandboxes left behind under ${root}: ${[...left, ...files].join(", ")}`);
  }
}

/** The runsc containers left under this state dir's runsc root. */
export async function runscList(stateDir: string): Promise<string[]> {
  const bin = (await runscBinary())!;
  const out = await new Promise<string>((res) => {
    const ch = spawn(bin, [`--root=${join(stateDir, "runsc")}`, "list", "-quiet"], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    let o = "";
    ch.stdout.on("data", (d) => {
      o += d;
    });
    ch.on("close", () => res(o));
  });
  return out.split("\n").filter(Boolean);
}

export type Skippable = { skip: (msg?: string) => void };
export type TestState = Awaited<ReturnType<typeof testEnv>>;

/** Skips a test visibly: node:test prints "# SKIP skipped: <reason>". */
export function skipped(t: Skippable, reason: string): void {
  t.skip(`skipped: ${reason}`);
}

/** Env that pins the gVisor engine, whatever else this host could run. */
export const GVISOR_ENV = { PYRO_ENGINE: "gvisor" };

/**
 * Runs `fn` on a fresh state dir (testEnv with `extra`), or skips the test when `skipReason`
 * is set. Cleans up afterwards, failing if sandboxes are left; when `fn` fails, its own
 * failure is the one reported (cleanup is still tried).
 */
export async function withTestState(
  t: Skippable,
  skipReason: string | undefined,
  extra: Record<string, string>,
  fn: (c: TestState) => Promise<void>,
): Promise<void> {
  if (skipReason) return skipped(t, skipReason);
  const c = await testEnv(extra);
  try {
    await fn(c);
  } catch (e) {
    await c.cleanup().catch(() => undefined);
    throw e;
  }
  await c.cleanup();
}

/** withTestState on the gVisor engine (GVISOR_ENV plus `extra`), skipped where gVisor cannot run. */
export async function withGvisorState(
  t: Skippable,
  fn: (c: TestState) => Promise<void>,
  extra: Record<string, string> = {},
): Promise<void> {
  return withTestState(t, await gvisorSkipReason(), { ...GVISOR_ENV, ...extra }, fn);
}

/** Runs `fn` with a scratch dir for host-side files, removed afterwards. */
export async function withHostDir<R>(prefix: string, fn: (host: string) => Promise<R>): Promise<R> {
  const host = await tempDir(prefix);
  try {
    return await fn(host);
  } finally {
    await rm(host, { recursive: true, force: true });
  }
}

/**
 * Ids (`vm_…` / `ws_…`) in one subdirectory of every warm-pool key (ready, claimed, used for
 * runs; slots, claiming, dead for workspace slots), sorted.
 */
export async function poolEntryIds(stateDir: string, where: string): Promise<string[]> {
  const root = join(stateDir, "pool");
  const out: string[] = [];
  for (const k of await readdir(root).catch(() => [] as string[]))
    for (const n of await readdir(join(root, k, where)).catch(() => [] as string[])) out.push(n.slice(0, 19));
  return out.sort();
}

/** Host runsc processes (sandbox, gofer) whose command line contains `needle` (a path part). */
export async function runscProcesses(needle: string): Promise<number[]> {
  const pids: number[] = [];
  for (const p of await readdir("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    const cmd = await readFile(`/proc/${p}/cmdline`, "utf8").catch(() => "");
    if (cmd.startsWith("runsc") && cmd.includes(needle)) pids.push(Number(p));
  }
  return pids;
}

/** Host processes of this state dir's sandboxes (runsc and its sandbox/gofer), zombies aside. */
export function sandboxProcesses(stateDir: string): number[] {
  const marker = `--root=${join(stateDir, "runsc")}`;
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, "utf8");
      const st = readFileSync(`/proc/${name}/stat`, "utf8");
      const state = st.slice(st.lastIndexOf(")") + 2, st.lastIndexOf(")") + 3);
      if (cmd.includes(marker) && state !== "Z") pids.push(Number(name));
    } catch {
      // gone
    }
  }
  return pids;
}

/** A self-signed certificate for 127.0.0.1 (openssl, valid a day) written into `dir`. */
export function selfSignedCert(dir: string): { cert: string; key: string } {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-keyout",
      key,
      "-out",
      cert,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  return { cert, key };
}
