import type { WorkspaceCreateInputT } from "../contract/workspace.js";
import type { Engine } from "../engines/types.js";
import type { NetworkSpec } from "../network/policy.js";
import type { RuntimeDeps } from "../sandbox/context.js";
import { ignore } from "../util/best-effort.js";
import { DEFAULT_POOL_ENGINE } from "./config.js";
import { WarmPool } from "./pool.js";
import { type ClaimedSlot, claimSlot, SLOT_DISK_MIB } from "./workspace-slots.js";

/** Fields of `workspace create` a slot serves as well as a fresh workspace. */
const POOLABLE_FIELDS = new Set([
  "environment",
  "seed_path",
  "vcpu_count",
  "mem_mib",
  "disk_mib",
  "ttl_seconds",
  "max_ttl_seconds",
  "network",
  "network_policy",
  "allow_cidr",
  "deny_cidr",
  "allow_host",
  "publish",
  "allow_host_compat",
  "secrets",
  "name",
  "labels",
]);

/**
 * A slot was made with only its key's settings, the default disk and no network: anything
 * else (a network policy, published ports, another disk size, a field added later) gets a
 * fresh workspace. Secrets are fine: they are written into the running sandbox either way.
 */
export function poolableWorkspace(input: WorkspaceCreateInputT, net: NetworkSpec): boolean {
  for (const [k, v] of Object.entries(input))
    if (!POOLABLE_FIELDS.has(k) && v !== undefined && v !== false && !(Array.isArray(v) && v.length === 0))
      return false;
  return input.disk_mib === SLOT_DISK_MIB && net.policy === "off" && net.publish.length === 0;
}

/**
 * `workspace create`'s path into the pool: a claimed slot (already renamed into
 * `<state>/workspaces/<id>` with the record `intent` wrote), or undefined (no pool for these
 * settings, none ready, not gVisor): the caller creates afresh. Either way a detached fill
 * tops the pool up.
 */
export async function claimWorkspaceSlot(
  d: RuntimeDeps,
  engine: Engine,
  input: WorkspaceCreateInputT,
  net: NetworkSpec,
  intent: (id: string, dir: string) => Promise<void>,
): Promise<ClaimedSlot | undefined> {
  // Slots are the default key's sandboxes (`#ws` keys name no engine), moved into place running.
  if (engine.name !== DEFAULT_POOL_ENGINE || !engine.relocate || !poolableWorkspace(input, net))
    return undefined;
  const keyed = WarmPool.keyed(d, {
    environment: input.environment,
    vcpu_count: input.vcpu_count,
    mem_mib: input.mem_mib,
    network: false,
    workspace: true,
  });
  if (!keyed) return undefined;
  const { pool, key } = keyed;
  const slot = await claimSlot(engine, pool.keyDirOf(key), d.paths.workspacesDir, intent).catch(
    ignore("no warm slot claimed: the workspace is created cold"),
  );
  pool.spawnFill();
  return slot;
}
