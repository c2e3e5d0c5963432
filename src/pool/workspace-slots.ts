import { mkdir, readdir, rename } from "node:fs/promises";
import { dirname, join } from "node:path";
import { newId } from "../core/ids.js";
import { sandboxPid } from "../engines/channel.js";
import type { Engine, SandboxHandle } from "../engines/types.js";
import { userOf } from "../environments/runtime-config.js";
import type { EnvironmentStore } from "../environments/store.js";
import { createDisk, removeWorkspaceDir } from "../sandbox/disk.js";
import { ignore } from "../util/best-effort.js";
import { readJson, writeJsonAtomic } from "../util/json-store.js";
import { pidAlive } from "../util/proc.js";
import type { PoolKey } from "./config.js";

/**
 * Workspaces from the warm pool (keys `ENV[#VCPUxMEM]#ws`): `workspace create` = claim a
 * pre-started slot + seed it, instead of making a disk and starting a sandbox.
 *
 * A slot is laid out exactly like a workspace directory (`disk.img`, `files/` loop-mounted
 * where pyro may mount, `sandbox/` with the running gVisor sandbox whose /workspace is that
 * `files/`) and its id is a `ws_` id chosen at fill time, since the container and every other
 * name derive from the id. Under the key's directory:
 *
 *   making/<id>/          being made by the filler (under fill.lock), renamed to slots/ when done
 *   slots/<id>/           ready: `slot.json` (handle, idle expiry, disk) beside the workspace files
 *   claiming/<id>.<pid>/  won by process <pid>: its `workspace.json` (state creating) is written here
 *   dead/<id>/            to be destroyed (stale, or a claim that could not be finished)
 *
 * Claim (claimSlot): rename slots/<id> to claiming/<id>.<pid> (atomic: of two claimers one
 * wins), write the workspace record there (state `creating`, this process as owner), then
 * rename the whole directory to `<state>/workspaces/<id>`. Renaming a directory whose child is
 * a mount point moves the mount with it, and the running sandbox does not notice: its gofer
 * holds the bound directories open (measured: host writes to the moved files/ are seen by the
 * guest, its expiry file is read, exec/kill/delete work). So whatever moment the claimer dies
 * at, what it leaves is found: a claiming/ dir of a dead pid is destroyed by the next pool
 * clean; a workspace dir always has its record (creating, dead owner), which list shows and
 * delete and the reaper remove as any interrupted create. A claimed slot is never handed out
 * again.
 */
export const WS_SLOT_DIRS = ["slots", "claiming", "making", "dead"] as const;
const SLOT_FILE = "slot.json";
/** The disk a slot is made with: `workspace create`'s default disk_mib (schemas.ts). */
export const SLOT_DISK_MIB = 4096;
/** A slot this close to its idle expiry is not handed out (the init polls every 5 s). */
const CLAIM_MARGIN_MS = 10_000;

export interface SlotEntry {
  id: string;
  key: PoolKey;
  /** As made (paths under making/<id>): relocated to wherever the slot is now before use. */
  handle: SandboxHandle;
  created_at: string;
  idle_expires_at: string;
  disk_mib: number;
  disk_enforced: boolean;
}

export interface ClaimedSlot {
  id: string;
  /** Its paths already those of `<state>/workspaces/<id>`. */
  handle: SandboxHandle;
  disk_enforced: boolean;
}

const SLOT_ID = /^ws_[0-9a-f]{16}$/;

/** The handle of a slot as it is now in `dir`. */
function handleAt(engine: Engine, entry: SlotEntry, dir: string): SandboxHandle {
  const from = dirname(entry.handle.sandboxDir);
  return engine.relocate ? engine.relocate(entry.handle, from, dir) : entry.handle;
}

/** Fill: one slot for `key`, made in making/ and renamed into slots/ once it runs. */
export async function makeSlot(
  engine: Engine,
  envs: EnvironmentStore,
  keyDir: string,
  key: PoolKey,
  idleSeconds: number,
): Promise<void> {
  const env = await envs.ensure(key.environment);
  for (const d of WS_SLOT_DIRS) await mkdir(join(keyDir, d), { recursive: true, mode: 0o700 });
  await writeJsonAtomic(join(keyDir, "key.json"), key);
  const id = newId("ws");
  const dir = join(keyDir, "making", id);
  await mkdir(dir, { mode: 0o700 });
  const idle = new Date(Date.now() + idleSeconds * 1000).toISOString();
  try {
    const disk = await createDisk(dir, join(dir, "files"), SLOT_DISK_MIB, true);
    const handle = await engine.create({
      id,
      environment: key.environment,
      rootfs: env.rootfs,
      sandboxDir: join(dir, "sandbox"),
      workspaceDir: join(dir, "files"),
      vcpuCount: key.vcpu_count,
      memMib: key.mem_mib,
      network: false,
      expiresAt: idle,
      ...userOf(env.runtime),
    });
    const entry: SlotEntry = {
      id,
      key,
      handle,
      created_at: new Date().toISOString(),
      idle_expires_at: idle,
      disk_mib: disk.disk_mib,
      disk_enforced: disk.disk_enforced,
    };
    await writeJsonAtomic(join(dir, SLOT_FILE), entry);
    await rename(dir, join(keyDir, "slots", id));
  } catch (e) {
    await destroySlot(engine, dir, id);
    throw e;
  }
}

/**
 * Takes a ready slot of this key: won by a rename, `intent` writes the workspace record into
 * it, then it is renamed into `workspacesDir`. Undefined when none is there (or the one won
 * could not be finished: it goes to dead/ and the caller creates afresh).
 */
export async function claimSlot(
  engine: Engine,
  keyDir: string,
  workspacesDir: string,
  intent: (id: string, dir: string) => Promise<void>,
): Promise<ClaimedSlot | undefined> {
  const names = await readdir(join(keyDir, "slots")).catch(() => [] as string[]);
  for (const id of names) {
    if (!SLOT_ID.test(id)) continue;
    const claiming = join(keyDir, "claiming", `${id}.${process.pid}`);
    try {
      await rename(join(keyDir, "slots", id), claiming);
    } catch {
      continue; // another process took it first
    }
    const toDead = () =>
      rename(claiming, join(keyDir, "dead", id)).catch(
        ignore("moving a claimed slot to dead/: a slot left in claiming/ is cleaned as stale"),
      );
    const entry = await readJson<SlotEntry>(join(claiming, SLOT_FILE)).catch(
      ignore("unreadable slot entry: not fresh, it goes to dead/"),
    );
    const fresh =
      entry?.handle &&
      Date.parse(entry.idle_expires_at) > Date.now() + CLAIM_MARGIN_MS &&
      pidAlive(sandboxPid(entry.handle));
    if (!entry || !fresh) {
      await toDead();
      continue;
    }
    const dest = join(workspacesDir, id);
    try {
      await intent(id, claiming);
      await mkdir(workspacesDir, { recursive: true, mode: 0o700 });
      await rename(claiming, dest);
    } catch {
      // e.g. EXDEV (a state dir split over file systems): nothing of it is a workspace yet.
      await toDead();
      return undefined;
    }
    return { id, handle: handleAt(engine, entry, dest), disk_enforced: entry.disk_enforced };
  }
  return undefined;
}

/** Ends a slot's sandbox (by its entry's handle, else found by id) and removes its directory. */
async function destroySlot(engine: Engine, dir: string, id: string): Promise<boolean> {
  const entry = await readJson<SlotEntry>(join(dir, SLOT_FILE)).catch(
    ignore("unreadable slot entry: the sandbox is found by id instead"),
  );
  try {
    if (entry?.handle) await engine.destroy(handleAt(engine, entry, dir));
    else await engine.removeOrphan(id, join(dir, "sandbox"));
    await removeWorkspaceDir(dir);
    return true;
  } catch {
    return false; // left for the next clean
  }
}

export interface SlotCounts {
  ready: number;
  in_use: number;
  pending_destroy: number;
  readyIds: string[];
}

/** What one key directory holds (status). */
export async function slotCounts(keyDir: string): Promise<SlotCounts> {
  const ls = (d: string) => readdir(join(keyDir, d)).catch(() => [] as string[]);
  const ready = (await ls("slots")).filter((n) => SLOT_ID.test(n));
  const claiming = (await ls("claiming")).filter((n) => pidAlive(claimerPid(n)));
  return {
    ready: ready.length,
    in_use: claiming.length,
    pending_destroy: (await ls("dead")).length,
    readyIds: ready,
  };
}

function claimerPid(name: string): number | undefined {
  const m = /^ws_[0-9a-f]{16}\.(\d+)$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/**
 * Under the fill lock: destroys slots being made (a filler that died: the lock says no other
 * runs), claims of dead processes, dead/ ones, and ready ones that are dead, near their idle
 * expiry or no longer wanted (`drop`). Returns how many it destroyed.
 */
export async function cleanSlots(engine: Engine, keyDir: string, drop: boolean): Promise<number> {
  const ls = (d: string) => readdir(join(keyDir, d)).catch(() => [] as string[]);
  const doomed: { id: string; dir: string }[] = [];
  for (const id of await ls("making"))
    if (SLOT_ID.test(id)) doomed.push({ id, dir: join(keyDir, "making", id) });
  for (const id of await ls("dead")) if (SLOT_ID.test(id)) doomed.push({ id, dir: join(keyDir, "dead", id) });
  for (const n of await ls("claiming")) {
    const pid = claimerPid(n);
    if (pid !== undefined && !pidAlive(pid))
      doomed.push({ id: n.slice(0, 19), dir: join(keyDir, "claiming", n) });
  }
  for (const id of await ls("slots")) {
    if (!SLOT_ID.test(id)) continue;
    const entry = await readJson<SlotEntry>(join(keyDir, "slots", id, SLOT_FILE)).catch(
      ignore("unreadable slot entry: treated as stale"),
    );
    const stale =
      drop ||
      !entry?.handle ||
      Date.parse(entry.idle_expires_at) < Date.now() + CLAIM_MARGIN_MS * 3 ||
      !pidAlive(sandboxPid(entry.handle));
    if (!stale) continue;
    // Out of slots/ first, so no claimer can win it meanwhile.
    const dead = join(keyDir, "dead", id);
    if (
      await rename(join(keyDir, "slots", id), dead).then(
        () => true,
        () => false,
      )
    )
      doomed.push({ id, dir: dead });
  }
  // In parallel: `runsc delete` waits ~1.5 s here for the sandbox's pid to vanish.
  const done = await Promise.all(doomed.map((d) => destroySlot(engine, d.dir, d.id)));
  return done.filter(Boolean).length;
}
