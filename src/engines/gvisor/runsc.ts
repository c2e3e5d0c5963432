import { stat } from "node:fs/promises";
import { join } from "node:path";
import { ignore } from "../../util/best-effort.js";
import { readJson, writeJsonAtomic } from "../../util/json-store.js";
import {
  type CaptureOptions,
  type CaptureResult,
  runCapture,
  sandboxProcessEnv,
  which,
} from "../../util/proc.js";
import { parseRunscVersion, type RunscFeature, type RunscVersion, versionSupports } from "./features.js";

/**
 * Process plumbing for the runsc CLI. Global flags must be byte-identical on every call for
 * one sandbox (create, start, exec, kill, delete), so they are computed once and stored in
 * the sandbox handle.
 */
export interface RunscFlags {
  binary: string;
  global: string[];
}

export async function findRunsc(env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  if (env.PYRO_RUNSC) return which(env.PYRO_RUNSC, env);
  return which("runsc", env);
}

/**
 * Whether runsc runs without root: as any user but root. `--rootless` makes runsc put the
 * sandbox and gofer in a user namespace of their own, mapped to the caller (measured on
 * Debian 12, runsc 20240729: `run`, `run --detach`, `exec`, `kill`, `state`, `delete` work;
 * `create` refuses with "Rootless mode not supported with create"). No cgroups are set up,
 * so the memory and CPU limits are not enforced by the host.
 */
export function runscRootless(): boolean {
  return (process.getuid?.() ?? 0) !== 0;
}

/**
 * runsc's network modes: `none` (loopback only), `sandbox` (gVisor's netstack over the
 * interfaces of the sandbox's namespace, named in the OCI spec) and `host` (the network stack
 * of the namespace runsc is started in, which for pyro is the sandbox's own: runsc is started
 * with `nsenter --net=…`, engine.ts). Which of the last two a sandbox with network gets is
 * net-route.ts's choice: `sandbox` where the runsc accepts it (runsc 20240729 decides it was
 * given the root namespace when /proc/sys/net/core/rmem_default exists, which kernel 6.18
 * shows in every namespace; release-20240807.0 fixed that check). Before issue 13 `host`
 * meant the host's own namespace.
 */
export type RunscNetwork = "none" | "sandbox" | "host";

export function globalFlags(
  root: string,
  network: boolean | RunscNetwork,
  env: NodeJS.ProcessEnv = process.env,
  rootless: boolean = runscRootless(),
  execChannel = false,
  goferNetnsFlag = false,
): string[] {
  const flags = [
    `--root=${root}`,
    `--network=${network === true ? "host" : network === false ? "none" : network}`,
    "--overlay2=root:memory",
    `--platform=${runscPlatform(env).platform}`,
  ];
  // Newer runsc pins one empty network namespace for all gofers by bind-mounting it at
  // `<root>/null-netns`: a mount that outlives every sandbox and makes the state dir
  // unremovable (EBUSY). A namespace per gofer is what older runsc did and leaves nothing.
  if (goferNetnsFlag) flags.push("--gofer-network-namespace=new");
  if (rootless) flags.push("--rootless");
  // The init's exec channel: the guest may create (never open) host Unix sockets, in the
  // host directories bound into it (all under the sandbox's own state). See exec-channel.ts.
  if (execChannel) flags.push("--host-uds=create");
  return flags;
}

/**
 * The gVisor platform (how the sandbox's Sentry traps the guest's system calls) pyro asks for
 * unless PYRO_RUNSC_PLATFORM names another. Chosen by measurement (issue 29, `BENCH_ONLY=platform
 * npm run bench`, docs/architecture.md "The gVisor platform"), on a quiet 2-core machine: on
 * the current runsc idle costs the same on both (0.04 % of a core per workspace, once the
 * init's fork-bomb watch backs off when far below its limit); ptrace ran 200 × /bin/true 15 %
 * faster, systrap agent-like work (gcc + python3 starts) 12 % faster; and under ptrace a fork
 * bomb kills the whole sandbox (each guest process has host processes, which meet the host's
 * pids backstop before the guest's limit holds), under systrap the limit holds and the
 * workspace survives (test/e2e/pids-limit.test.ts). runsc's own default is systrap too; KVM
 * (`/dev/kvm` here is PVM) starts but never runs the guest's command.
 */
export const DEFAULT_RUNSC_PLATFORM = "systrap";
/** The measurement behind it, in a few words (doctor shows it). */
const PLATFORM_CHOICE =
  "measured: idle as cheap as ptrace on a current runsc, agent-like work faster, and a fork bomb held by the guest's limit instead of killing the sandbox";

export interface RunscPlatform {
  platform: string;
  /** `PYRO_RUNSC_PLATFORM` when that set it, else `default` (DEFAULT_RUNSC_PLATFORM). */
  source: "PYRO_RUNSC_PLATFORM" | "default";
}

export function runscPlatform(env: NodeJS.ProcessEnv = process.env): RunscPlatform {
  const set = env.PYRO_RUNSC_PLATFORM?.trim();
  return set
    ? { platform: set, source: "PYRO_RUNSC_PLATFORM" }
    : { platform: DEFAULT_RUNSC_PLATFORM, source: "default" };
}

/** What `pyro doctor` says of the platform: which one, who chose it, and why. */
export function platformReport(env: NodeJS.ProcessEnv = process.env): RunscPlatform & { detail: string } {
  const p = runscPlatform(env);
  return {
    ...p,
    detail:
      p.source === "default"
        ? `${p.platform} (pyro's default, ${PLATFORM_CHOICE}; PYRO_RUNSC_PLATFORM=ptrace|systrap|kvm overrides)`
        : `${p.platform} (PYRO_RUNSC_PLATFORM; pyro's default is ${DEFAULT_RUNSC_PLATFORM})`,
  };
}

/** Every runsc call, with the minimal environment (sandboxProcessEnv) unless one is given. */
export function runsc(flags: RunscFlags, args: string[], opts: CaptureOptions = {}): Promise<CaptureResult> {
  return runCapture(flags.binary, [...flags.global, ...args], { env: sandboxProcessEnv(), ...opts });
}

export async function runscVersion(binary: string): Promise<string | undefined> {
  try {
    const r = await runCapture(binary, ["--version"], { timeoutMs: 5000 });
    return r.stdout.split("\n")[0]?.trim() || undefined;
  } catch {
    return undefined;
  }
}

/** What `runsc --version` said, per binary, in this process: keyed by the file's identity. */
const versions = new Map<string, { id: string; version: RunscVersion }>();

/**
 * The runsc binary's version, parsed (features.ts). Running it costs ~30 ms (a Go binary's
 * start), so the answer is kept per file identity (path, size, mtime, inode): in this
 * process, and with `cacheDir` in `<cacheDir>/gvisor/runsc-version.json` for the next one
 * (a CLI call is one short process). A replaced binary has another identity and is run again.
 */
export async function readRunscVersion(binary: string, cacheDir?: string): Promise<RunscVersion> {
  const s = await stat(binary).catch(ignore("a missing binary has no version to keep"));
  const id = s ? `${binary}:${s.size}:${Math.round(s.mtimeMs)}:${s.ino}` : "";
  const mine = versions.get(binary);
  if (id && mine?.id === id) return mine.version;
  const file = cacheDir ? join(cacheDir, "gvisor", "runsc-version.json") : undefined;
  if (id && file) {
    const kept = await readJson<{ id: string; text: string }>(file).catch(ignore("a damaged file is a miss"));
    if (kept?.id === id && typeof kept.text === "string") {
      const version = parseRunscVersion(kept.text);
      versions.set(binary, { id, version });
      return version;
    }
  }
  const text = (await runscVersion(binary)) ?? "";
  const version = parseRunscVersion(text);
  if (id && text) {
    versions.set(binary, { id, version });
    if (file)
      await writeJsonAtomic(file, { id, text }).catch(ignore("not kept: the next process asks runsc"));
  }
  return version;
}

/**
 * Whether the runsc pyro uses (PYRO_RUNSC or PATH, as the engine finds it; or `binary`) has
 * this feature (features.ts RUNSC_FEATURES): the one question code choosing a route or a
 * platform asks. False when there is no runsc or its version says no date.
 */
export async function runscSupports(
  feature: RunscFeature,
  opts: { binary?: string; cacheDir?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<boolean> {
  const binary = opts.binary ?? (await findRunsc(opts.env));
  if (!binary) return false;
  return versionSupports(await readRunscVersion(binary, opts.cacheDir), feature);
}

/** runsc state's JSON, or undefined when the container does not exist. */
export async function runscState(
  flags: RunscFlags,
  id: string,
): Promise<{ status: string; pid?: number } | undefined> {
  const r = await runsc(flags, ["state", id], { timeoutMs: 10_000 });
  if (r.exitCode !== 0) return undefined;
  try {
    return JSON.parse(r.stdout) as { status: string; pid?: number };
  } catch {
    return undefined;
  }
}

/** Zombie-aware (a sandbox killed from outside may linger as an unreaped zombie). */
export { pidAlive } from "../../util/proc.js";
