import { PyroError } from "../core/errors.js";
import type { EngineName } from "../engines/types.js";

/**
 * The warm pool's settings, from the environment (no config file: the CLI, SDK and MCP
 * server of one user read the same variables).
 *
 *   PYRO_POOL_SIZE          ready sandboxes kept per key (default 2; 0 turns the pool off; what it
 *                           costs at rest: docs/architecture.md "The warm pool")
 *   PYRO_POOL_KEYS          which keys, comma-separated (default `debian:12`); a key is
 *                           `ENV[#VCPUxMEM][#net]`, e.g. `debian:12#2x2048#net`, for one-shot
 *                           runs, or `ENV[#VCPUxMEM]#ws` for `workspace create` (a
 *                           workspace-shaped slot: disk, files/ and sandbox; see workspace-pool.ts);
 *                           `#qemu` keeps microVMs (booted from the snapshot, agent answering)
 *                           for runs under the QEMU engine (PYRO_ENGINE=qemu)
 *   PYRO_POOL_IDLE_SECONDS  a ready sandbox not claimed within this stops itself (default 900)
 */
export interface PoolKey {
  environment: string;
  vcpu_count: number;
  mem_mib: number;
  network: boolean;
  /** A workspace slot (`#ws`) rather than a one-shot run's sandbox. Absent: a run's key. */
  workspace?: boolean;
  /** `#qemu`: microVMs for runs under the QEMU engine. Absent: the default, gVisor. */
  engine?: PoolKeyEngine;
}

/** The engine of keys that name none: gVisor's sandboxes. */
export const DEFAULT_POOL_ENGINE = "gvisor" satisfies EngineName;
/** The engines a key may name (`#qemu`) besides the default: part of the key syntax. */
const KEY_ENGINES = ["qemu"] as const satisfies readonly EngineName[];
export type PoolKeyEngine = (typeof KEY_ENGINES)[number];

/** The engine a key's sandboxes run on. */
export function keyEngine(k: Pick<PoolKey, "engine">): EngineName {
  return k.engine ?? DEFAULT_POOL_ENGINE;
}

/** A key's part naming this engine (`{}` for the default), or undefined when no key can. */
export function keyEngineOf(name: EngineName): Pick<PoolKey, "engine"> | undefined {
  if (name === DEFAULT_POOL_ENGINE) return {};
  const engine = KEY_ENGINES.find((e) => e === name);
  return engine ? { engine } : undefined;
}

export interface PoolConfig {
  size: number;
  keys: PoolKey[];
  idleSeconds: number;
}

/**
 * On by default since issue 29: on the current runsc an idle sandbox costs next to no CPU
 * (bench/idle.ts), so two ready `debian:12` sandboxes (~2 × 50 MiB RSS, less in PSS: runsc's
 * text is shared) are a small price for runs that skip the sandbox start. Under runsc 20240729's
 * systrap they cost ~3 % of a core each, forever, which is why the pool used to be opt-in.
 */
export const POOL_DEFAULTS = { size: 2, keys: "debian:12", idleSeconds: 900, vcpu: 1, mem: 1024 } as const;

/** `debian:12`, `debian:12#2x2048`, `debian:12#net`, `debian:12#2x2048#net`, `debian:12#ws`. */
export function parsePoolKey(text: string): PoolKey {
  const [environment, ...rest] = text.trim().split("#");
  const bad = (why: string) =>
    new PyroError(
      "invalid_argument",
      `PYRO_POOL_KEYS: bad key ${JSON.stringify(text)} (${why})`,
      "write keys as ENV[#VCPUxMEM][#net] (runs) or ENV[#VCPUxMEM]#ws (workspaces), comma-separated, e.g. debian:12,debian:12#2x2048#net,debian:12#ws",
    );
  if (!environment) throw bad("no environment");
  const key: PoolKey = {
    environment,
    vcpu_count: POOL_DEFAULTS.vcpu,
    mem_mib: POOL_DEFAULTS.mem,
    network: false,
  };
  for (const part of rest) {
    const m = /^(\d+)x(\d+)$/.exec(part);
    if (m) {
      key.vcpu_count = Number(m[1]);
      key.mem_mib = Number(m[2]);
    } else if (part === "net") key.network = true;
    else if (part === "ws") key.workspace = true;
    else if (KEY_ENGINES.some((e) => e === part)) key.engine = part as PoolKeyEngine;
    else throw bad(`unknown part ${JSON.stringify(part)}`);
  }
  if (key.vcpu_count < 1 || key.mem_mib < 128) throw bad("at least 1 vCPU and 128 MiB");
  // A workspace's network is a policy (egress rules, published ports) set up at create: the
  // pool keeps only network-off slots, which every other policy's create does without.
  if (key.workspace && key.network) throw bad("#ws slots have no network: drop #net");
  // Workspace slots are moved into place with the sandbox running (relocate): gVisor only.
  if (key.workspace && key.engine) throw bad(`#ws slots are gVisor sandboxes: drop #${key.engine}`);
  return key;
}

export function formatPoolKey(k: PoolKey): string {
  const res =
    k.vcpu_count === POOL_DEFAULTS.vcpu && k.mem_mib === POOL_DEFAULTS.mem
      ? ""
      : `#${k.vcpu_count}x${k.mem_mib}`;
  return `${k.environment}${res}${k.network ? "#net" : ""}${k.workspace ? "#ws" : ""}${k.engine ? `#${k.engine}` : ""}`;
}

/**
 * A key's directory name: a digest, since environment names hold `:` and `/`. FNV-1a (64-bit),
 * not SHA-256: node:crypto costs a pooled `pyro run` ~2 ms just to load, and these names need
 * only be stable and distinct. Directories named by an older pyro's SHA-256 are stale (the
 * pool's clean destroys what they hold).
 */
export function poolKeyId(k: PoolKey): string {
  const text = JSON.stringify([
    k.environment,
    k.vcpu_count,
    k.mem_mib,
    k.network,
    ...(k.workspace ? ["ws"] : []),
    ...(k.engine ? [k.engine] : []),
  ]);
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(text)) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return h.toString(16).padStart(16, "0");
}

function intFrom(v: string | undefined, fallback: number, name: string, min: number): number {
  if (v === undefined || v.trim() === "") return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new PyroError(
      "invalid_argument",
      `${name}=${JSON.stringify(v)} is not a whole number ≥ ${min}`,
      `set ${name} to a whole number, or unset it`,
    );
  return n;
}

export function poolConfig(env: NodeJS.ProcessEnv): PoolConfig {
  const size = intFrom(env.PYRO_POOL_SIZE, POOL_DEFAULTS.size, "PYRO_POOL_SIZE", 0);
  const idleSeconds = intFrom(
    env.PYRO_POOL_IDLE_SECONDS,
    POOL_DEFAULTS.idleSeconds,
    "PYRO_POOL_IDLE_SECONDS",
    10,
  );
  const keys = (env.PYRO_POOL_KEYS ?? POOL_DEFAULTS.keys)
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map(parsePoolKey);
  return { size: Math.min(size, 64), keys, idleSeconds };
}

/** The configured key a run with these settings may take a sandbox from, if any. */
export function keyFor(cfg: PoolConfig, want: PoolKey): PoolKey | undefined {
  if (cfg.size === 0) return undefined;
  return cfg.keys.find(
    (k) =>
      k.environment === want.environment &&
      k.vcpu_count === want.vcpu_count &&
      k.mem_mib === want.mem_mib &&
      k.network === want.network &&
      (k.workspace ?? false) === (want.workspace ?? false) &&
      keyEngine(k) === keyEngine(want),
  );
}

/**
 * A claimed entry's file name carries its claim: `<id>.<deadline s>.<pid>.json`, so claiming
 * is one rename and nothing else is written on the run's path.
 */
export function claimedName(id: string, deadlineMs: number, pid: number): string {
  return `${id}.${Math.ceil(deadlineMs / 1000)}.${pid}.json`;
}

export function parseClaimedName(name: string): { id: string; deadlineMs: number; pid: number } | undefined {
  const m = /^(vm_[0-9a-f]{16})\.(\d+)\.(\d+)\.json$/.exec(name);
  return m ? { id: m[1]!, deadlineMs: Number(m[2]) * 1000, pid: Number(m[3]) } : undefined;
}
