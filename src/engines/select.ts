import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Hint, PyroError } from "../core/errors.js";
import type { PyroPaths } from "../core/paths.js";
import { noted } from "../util/best-effort.js";
import { FirecrackerEngine, firecrackerQuickAvailable } from "./firecracker/engine.js";
import { GvisorEngine } from "./gvisor/engine.js";
import { findRunsc } from "./gvisor/runsc.js";
import { HostEngine } from "./host/engine.js";
import { clusterConfigured } from "./kubernetes/config.js";
import { KubernetesEngine } from "./kubernetes/engine.js";
import { QemuEngine } from "./qemu/engine.js";
import { qemuQuickAvailable } from "./qemu/select.js";
import type { Engine, EngineName } from "./types.js";

/**
 * Which engine runs a sandbox. Preference: firecracker → qemu (KVM) → gvisor → qemu (TCG);
 * this build ships firecracker, qemu and gvisor, and host only when the caller allows unisolated execution.
 * `PYRO_ENGINE` forces one and fails clearly if it cannot run.
 */
export const ENGINE_ORDER: readonly EngineName[] = ["firecracker", "qemu", "gvisor"];

/** Every engine that can leave a sandbox behind: where to look when a record cannot say which. */
export function allEngines(paths: PyroPaths, env: NodeJS.ProcessEnv = process.env): Engine[] {
  // A cluster is asked only when pyro is set to use one: recovery must not reach out otherwise.
  const names = [
    "gvisor",
    "qemu",
    "firecracker",
    ...(env.PYRO_ENGINE === "kubernetes" ? ["kubernetes"] : []),
  ] as const;
  return (names as readonly EngineName[]).flatMap((n) => engineByName(n, paths, env) ?? []);
}

export function engineByName(
  name: EngineName,
  paths: PyroPaths,
  env: NodeJS.ProcessEnv = process.env,
): Engine | undefined {
  switch (name) {
    case "gvisor":
      return new GvisorEngine(paths.runscRoot, env, paths.cacheDir);
    case "host":
      return new HostEngine();
    case "qemu":
      return new QemuEngine(paths, env);
    case "firecracker":
      return new FirecrackerEngine(paths, env);
    case "kubernetes":
      return new KubernetesEngine(paths, env);
    default:
      return undefined;
  }
}

/** Cheap readiness check used on every call; `pyro doctor` does the real probe boots. */
/**
 * Answers are kept for a few seconds per (engine, env, cache dir): a long-lived SDK or MCP
 * process would otherwise scan PATH for three engines' binaries on every run (~5 ms).
 */
const AVAILABILITY_TTL_MS = 5_000;
const availability = new WeakMap<NodeJS.ProcessEnv, Map<string, { at: number; ok: boolean }>>();

async function quickAvailable(
  name: EngineName,
  env: NodeJS.ProcessEnv,
  paths: PyroPaths,
  forced = false,
): Promise<boolean> {
  let memo = availability.get(env);
  if (!memo) {
    memo = new Map();
    availability.set(env, memo);
  }
  const key = `${name}|${forced}|${paths.cacheDir}`;
  const hit = memo.get(key);
  if (hit && Date.now() - hit.at < AVAILABILITY_TTL_MS) return hit.ok;
  const ok = await probeQuick(name, env, paths, forced);
  memo.set(key, { at: Date.now(), ok });
  return ok;
}

async function probeQuick(
  name: EngineName,
  env: NodeJS.ProcessEnv,
  paths: PyroPaths,
  forced: boolean,
): Promise<boolean> {
  if (name === "gvisor") return (await findRunsc(env)) !== undefined;
  if (name === "host") return true;
  // In the preference order qemu means qemu with a KVM that was proven to boot guests;
  // forced (PYRO_ENGINE=qemu) it may fall back to TCG emulation.
  if (name === "qemu") return qemuQuickAvailable(paths, env, { requireKvm: !forced });
  if (name === "firecracker") return firecrackerQuickAvailable(paths, env);
  // Only when forced (never in ENGINE_ORDER): a kubeconfig or a pod's service account.
  if (name === "kubernetes") return clusterConfigured(env);
  return false;
}

// Structured so each face names things its own way; the unisolated part is dropped for
// models (isolation is the operator's choice).
const FIX: Hint = [
  "the host needs gVisor's runsc (`sudo scripts/setup-host.sh` installs it); check ",
  { op: "doctor" },
  { unisolated: [", or pass ", { option: "allow_host_compat", value: true }, " to run WITHOUT isolation"] },
];

export async function selectEngine(
  paths: PyroPaths,
  opts: { allowHostCompat: boolean },
  env: NodeJS.ProcessEnv = process.env,
): Promise<Engine> {
  const forced = env.PYRO_ENGINE as EngineName | undefined;
  if (forced) {
    const valid: EngineName[] = ["firecracker", "qemu", "gvisor", "kubernetes", "host"];
    if (!valid.includes(forced)) {
      throw new PyroError(
        "invalid_argument",
        `PYRO_ENGINE=${JSON.stringify(forced)} is not an engine`,
        `use one of ${valid.join(", ")}`,
      );
    }
    if (forced === "host" && !opts.allowHostCompat) {
      throw new PyroError(
        "invalid_argument",
        "PYRO_ENGINE=host runs without isolation, which this call does not allow",
        [
          { unisolated: ["pass ", { option: "allow_host_compat", value: true }, " or "] },
          "unset PYRO_ENGINE",
        ],
      );
    }
    const e = engineByName(forced, paths, env);
    if (!e || !(await quickAvailable(forced, env, paths, true))) {
      throw new PyroError(
        "engine_unavailable",
        `engine ${forced} (forced by PYRO_ENGINE) cannot run on this host`,
        forced === "kubernetes"
          ? "set KUBECONFIG to the cluster's kubeconfig (or run pyro in a pod with a service account); see docs/kubernetes.md"
          : FIX,
      );
    }
    return e;
  }
  for (const name of ENGINE_ORDER) {
    if (await quickAvailable(name, env, paths)) {
      const e = engineByName(name, paths, env);
      if (e) return e;
    }
  }
  // Last isolated resort: QEMU under TCG emulation (slow, but a real VM boundary). Not silently:
  // every start then takes seconds, and the usual cause (no runsc) is one command to fix.
  if (await qemuQuickAvailable(paths, env, { requireKvm: false })) {
    noteOnce(
      paths.stateDir,
      "qemu-tcg-fallback",
      "pyro: runsc (gVisor) was not found, so sandboxes run under QEMU with TCG emulation (seconds per start). " +
        "Install gVisor with `sudo scripts/setup-host.sh` (or point PYRO_RUNSC at runsc); set PYRO_ENGINE=qemu to choose QEMU and not be told again. " +
        "(Said once for this state dir.)",
    );
    return new QemuEngine(paths, env);
  }
  if (opts.allowHostCompat) return new HostEngine();
  throw new PyroError(
    "no_engine",
    "no isolated engine can run here: runsc (gVisor) was not found and no microVM engine is available",
    FIX,
  );
}

/**
 * Writes `message` to stderr the first time `name` is noted in this state dir (a marker file
 * under `notes/`), so a note that matters reaches the user once instead of on every call.
 */
export function noteOnce(stateDir: string, name: string, message: string): void {
  try {
    mkdirSync(join(stateDir, "notes"), { recursive: true });
    writeFileSync(join(stateDir, "notes", name), `${new Date().toISOString()}\n`, { flag: "wx" });
  } catch (e) {
    // EEXIST: said before. Anything else (a read-only state dir): say it on every run instead.
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return;
    noted("the note's marker could not be written: said on every run", e);
  }
  process.stderr.write(`${message}\n`);
}
