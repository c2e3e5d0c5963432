import type { RunInputT, RunResultT } from "../contract/vm.js";
import { toArgv } from "../core/command.js";
import { IN_SANDBOX_DEADLINE_GRACE_MS } from "../engines/gvisor/bundle.js";
import type { Engine, SandboxHandle } from "../engines/types.js";
import { processOf, userOf } from "../environments/runtime-config.js";
import type { EnsuredEnvironment } from "../environments/store.js";
import { finishRecording, runResult, streamInto } from "../output/command.js";
import type { CommandRecorder } from "../output/recorder.js";
import type { CallContext, RuntimeDeps } from "../sandbox/context.js";
import { ignore } from "../util/best-effort.js";
import { keyEngineOf } from "./config.js";
import { WarmPool } from "./pool.js";

/** Run fields a pooled sandbox serves as well as a fresh one (the key, and per-command ones). */
const POOLABLE_FIELDS = new Set([
  "environment",
  "command",
  "vcpu_count",
  "mem_mib",
  "network",
  "timeout_seconds",
  "ttl_seconds",
  "allow_host_compat",
  "max_output_bytes",
]);

/**
 * A pooled sandbox was made with only the key's settings: a run asking for anything else (a
 * field added later: secrets, a network policy, published ports...) gets a fresh sandbox.
 */
export function poolableRun(input: Record<string, unknown>): boolean {
  for (const [k, v] of Object.entries(input))
    if (!POOLABLE_FIELDS.has(k) && v !== undefined && v !== false && !(Array.isArray(v) && v.length === 0))
      return false;
  return true;
}

/**
 * vm_run from the warm pool: when a pool is kept for the run's settings (gVisor, or QEMU for
 * `#qemu` keys) and a ready sandbox is there, the command runs in it with the engine's exec
 * (the init's exec channel; QEMU's guest agent) (no sandbox or VM start on the
 * path), the sandbox is then given up (never reused) and a detached `pyro pool fill` destroys
 * it and tops the pool up. Undefined when the pool has nothing for this run: the caller
 * starts a fresh sandbox as always (and a fill is started for next time).
 */
export async function runFromPool(
  d: RuntimeDeps,
  engine: Engine,
  env: EnsuredEnvironment,
  input: RunInputT,
  ctx: CallContext,
  /** The run's recorder, asked for once the sandbox is claimed (the caller marks the run then). */
  recorder: (vmId: string, handle: SandboxHandle) => Promise<CommandRecorder>,
): Promise<RunResultT | undefined> {
  const keyPart = engine.traits.pool ? keyEngineOf(engine.name) : undefined;
  if (!keyPart) return undefined;
  if (!poolableRun(input)) return undefined;
  const keyed = WarmPool.keyed(d, {
    environment: input.environment,
    vcpu_count: input.vcpu_count,
    mem_mib: input.mem_mib,
    network: input.network,
    ...keyPart,
  });
  if (!keyed) return undefined;
  const { pool, key } = keyed;
  const timeoutMs = input.timeout_seconds * 1000;
  const claim = await pool
    .claim(key, Date.now() + timeoutMs + IN_SANDBOX_DEADLINE_GRACE_MS)
    .catch(ignore("no warm sandbox claimed: the run takes the cold path"));
  if (!claim) {
    pool.spawnFill();
    return undefined;
  }
  const vm_id = claim.entry.id;
  let out: Awaited<ReturnType<Engine["exec"]>>;
  let rec: CommandRecorder | undefined;
  try {
    rec = await recorder(vm_id, claim.entry.handle);
    out = await engine.exec(claim.entry.handle, {
      argv: toArgv(input.command),
      ...processOf(env.runtime),
      ...userOf(env.runtime),
      timeoutMs,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      ...streamInto(rec),
    });
  } catch (e) {
    rec?.close();
    throw e;
  } finally {
    await pool.release(claim);
    pool.spawnFill();
  }
  finishRecording(rec, out);
  // duration_ms is set by the caller; boot_ms is 0 because the sandbox was already up.
  return runResult(vm_id, input, out, rec, engine.executionMode, { duration_ms: 0, boot_ms: 0 });
}
