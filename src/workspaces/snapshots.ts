import { randomBytes } from "node:crypto";
import { appendFile, copyFile, lstat, readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { WorkspaceCreateInputT, WorkspaceStatusResultT } from "../contract/workspace.js";
import { PyroError, toPyroError } from "../core/errors.js";
import { checkId } from "../core/ids.js";
import type { Engine, SandboxHandle } from "../engines/types.js";
import type { CallContext } from "../sandbox/context.js";
import { currentOwner, type Owner, ownerAlive } from "../sandbox/owner.js";
import { asHandle } from "../sandbox/sandbox-record.js";
import { ignore } from "../util/best-effort.js";
import { readJson, withLock, writeJsonAtomic } from "../util/json-store.js";
import { runCapture } from "../util/proc.js";
import { baselineDir } from "./baseline.js";
import { Guest, stdoutBytes } from "./guest.js";
import type { RecoveryHook, SnapshotPort } from "./port.js";
import type { PreparedFiles, WorkspaceRecord } from "./record.js";
import { snapshotOpPath } from "./snapshot-op.js";
import {
  diskFullError,
  type Manifest,
  type SkippedEntry,
  SnapshotStore,
  skipReason,
} from "./snapshot-store.js";

/**
 * Named snapshots, reset and fork of a workspace (see docs/architecture.md, "Snapshots,
 * reset and fork"). The bytes live in a content-addressed store (snapshot-store.ts); this
 * module decides when it is safe to read or write `/workspace` on the host and keeps every
 * multi-step operation crash-safe:
 *
 * - **Intent first.** `snapshots/op.json` names the operation and its pyro process before the
 *   first step, and is removed after the last. It is also the lock: a second operation on
 *   the workspace is refused while its owner lives. When the owner died (SIGKILL), the next
 *   call that touches the workspace (exec, status, any snapshot operation) finishes or undoes
 *   it: a snapshot's sandbox is thawed and its unreferenced objects removed (the manifest is
 *   the commit point, written last), a reset is run again to the end (restoring is
 *   idempotent), a fork's implicit snapshot is dropped.
 * - **No guest runs while the host walks its files.** A snapshot pauses the gVisor sandbox
 *   (`runsc pause`, ~20 ms) for the scan, so the tree is one point in time and no guest
 *   process can swap a directory for a symlink under the walk; a reset kills the sandbox
 *   before it restores, then starts a fresh one (shells and services end with the old one).
 */

const SNAPSHOT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const BASELINE = "baseline";
/** Skipped entries a create result lists (skipped_count counts them all), as export does. */
const SKIPPED_LIST_MAX = 1000;

interface OpRecord {
  op: "snapshot" | "reset" | "fork" | "delete";
  owner: Owner;
  started_at: string;
  name?: string;
  target?: string;
  paused?: boolean;
}

export interface SnapshotInfo {
  name: string;
  created_at: string;
  files: number;
  bytes: number;
  new_bytes: number;
  disk_bytes: number;
  skipped_count: number;
}

/** find's %y letters for the special files a snapshot does not keep. */
const SPECIAL_KINDS: Record<string, string> = {
  p: "FIFO",
  s: "socket",
  b: "block device",
  c: "character device",
};

/** The host walk's and the guest's lists as one, by path, in path order. */
function mergeSkipped(host: SkippedEntry[], guest: SkippedEntry[]): SkippedEntry[] {
  const byPath = new Map(guest.map((x) => [x.path, x]));
  for (const x of host) byPath.set(x.path, x);
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * The intent hook the manager runs before a workspace is used (manager.usable, status; see
 * port.ts RecoveryHook): finishes an operation whose pyro process died. Returns whether it
 * did. A reset in progress by a live process refuses the caller (its sandbox is being
 * replaced); a live snapshot only pauses the sandbox briefly.
 */
export async function recoverInterruptedOp(m: SnapshotPort, id: string): Promise<boolean> {
  const dir = m.dir(id);
  const cur = await readJson<OpRecord>(snapshotOpPath(dir)).catch(
    ignore("no readable op.json: no interrupted snapshot operation to recover"),
  );
  if (!cur) return false;
  if (ownerAlive(cur.owner)) {
    if (cur.op === "reset")
      throw new PyroError(
        "invalid_state",
        `workspace ${id} is being reset by pyro process ${cur.owner.pid}`,
        "try again when the reset has returned (a few seconds)",
      );
    // runsc refuses an exec into a paused sandbox: wait out the snapshot's pause (~0.1 s).
    if (cur.paused) {
      await waitWhilePaused(snapshotOpPath(dir), cur.owner);
      if (!ownerAlive(cur.owner)) return recoverInterruptedOp(m, id);
    }
    return false;
  }
  await new Snapshots(m).recover(id);
  return true;
}

/** recoverInterruptedOp as the manager's recovery hook (registered where the two are wired). */
export function snapshotRecovery(m: SnapshotPort): RecoveryHook {
  return (id) => recoverInterruptedOp(m, id);
}

export class Snapshots {
  constructor(private readonly x: SnapshotPort) {}

  private store(id: string): SnapshotStore {
    return new SnapshotStore(join(this.x.dir(id), "snapshots"));
  }

  /**
   * A running workspace whose engine snapshots are implemented for; with `revive`, a failed
   * one too (its sandbox died: a reset gives it a fresh one).
   */
  private async target(id: string, revive = false): Promise<WorkspaceRecord> {
    checkId("ws", id);
    await recoverInterruptedOp(this.x, id);
    const failed = revive ? await this.x.records.load(id) : undefined;
    const rec = failed?.state === "failed" ? failed : await this.x.usable(id);
    if (!this.x.engineFor(rec).traits.sharedWorkspaceDir)
      throw new PyroError(
        "engine_unavailable",
        `snapshots, reset and fork are not implemented yet for ${rec.engine} workspaces (${id})`,
        "use a gVisor workspace (the default engine here) for snapshots, reset and fork",
      );
    return rec;
  }

  /** Takes the workspace's operation slot (op.json), finishing a dead owner's operation first. */
  private async claim(id: string, op: Omit<OpRecord, "owner" | "started_at">): Promise<void> {
    const path = snapshotOpPath(this.x.dir(id));
    await withLock(path, async () => {
      const cur = await readJson<OpRecord>(path).catch(
        ignore("no readable op.json: the operation slot is free"),
      );
      if (cur && ownerAlive(cur.owner))
        throw new PyroError(
          "invalid_state",
          `workspace ${id} is busy: a ${cur.op} by pyro process ${cur.owner.pid} is in progress`,
          "try again when it has returned",
        );
      if (cur) await this.finish(id, cur);
      await writeJsonAtomic(path, { ...op, owner: currentOwner(), started_at: new Date().toISOString() });
    });
  }

  private async release(id: string): Promise<void> {
    await rm(snapshotOpPath(this.x.dir(id)), { force: true });
  }

  /** Finishes the operation of a pyro process that died, if there still is one. */
  async recover(id: string): Promise<void> {
    const path = snapshotOpPath(this.x.dir(id));
    await withLock(path, async () => {
      const cur = await readJson<OpRecord>(path).catch(
        ignore("no readable op.json: no interrupted operation to finish"),
      );
      if (!cur || ownerAlive(cur.owner)) return;
      await this.finish(id, cur);
      await rm(path, { force: true });
    });
  }

  private async finish(id: string, cur: OpRecord): Promise<void> {
    const store = this.store(id);
    // The dead process's runsc children (a pause, a delete) outlive it: let them end first,
    // or a late `runsc delete` would remove the sandbox this recovery starts under the same name.
    await settle(this.x, await this.x.records.load(id));
    if (cur.paused) {
      const rec = await this.x.records.load(id);
      await thaw(this.x, rec).catch(
        ignore("thawing the sandbox of an interrupted operation: it may be gone or running already"),
      );
    }
    if (cur.op === "reset") {
      // A reset killed after its new sandbox started but before the record named it left a
      // sandbox no handle points at (the engine's create waits for the exec channel, which
      // widens that window): every sandbox of the workspace goes, then the reset runs again.
      const rec = await this.x.records.load(id);
      await this.x
        .engineFor(rec)
        .removeOrphan(id, join(this.x.dir(id), "sandbox"))
        .catch(ignore("removing a leftover sandbox before an interrupted reset reruns: it may not exist"));
      await this.resetBody(id, cur.target ?? BASELINE);
    }
    if (cur.op === "fork" && cur.name) await rm(store.manifestPath(cur.name), { force: true });
    await store.gc();
  }

  // ---- snapshots ----

  async create(
    id: string,
    name: string | undefined,
  ): Promise<SnapshotInfo & { workspace_id: string; skipped: SkippedEntry[] }> {
    const rec = await this.target(id);
    const store = this.store(id);
    const chosen = name ?? (await this.nextName(store));
    checkName(chosen);
    if (await store.readManifest(chosen))
      throw new PyroError(
        "invalid_argument",
        `workspace ${id} already has a snapshot named ${JSON.stringify(chosen)}`,
        "pick another name, or delete that snapshot first",
      );
    await this.claim(id, { op: "snapshot", name: chosen });
    try {
      const { manifest: m, skipped } = await this.snapshotLocked(id, rec, chosen, "snapshot");
      await this.event(id, { event: "snapshot_create", name: chosen });
      return {
        workspace_id: id,
        ...(await this.info(store, m)),
        skipped: skipped.slice(0, SKIPPED_LIST_MAX),
      };
    } finally {
      await this.release(id);
    }
  }

  /** Pauses the sandbox, scans /workspace into the store, writes the manifest (the commit). */
  private async snapshotLocked(
    id: string,
    rec: WorkspaceRecord,
    name: string,
    op: OpRecord["op"],
  ): Promise<{ manifest: Manifest; skipped: SkippedEntry[] }> {
    const store = this.store(id);
    const files = join(this.x.dir(id), "files");
    const added: string[] = [];
    let paused = false;
    // Asked before the pause (a paused sandbox runs nothing), so best effort by a moment.
    const engine = this.x.engineFor(rec);
    const guestSkipped = engine.traits.guestOnlySpecialFiles ? await this.guestSpecialFiles(rec) : [];
    // Whether the sandbox is frozen, on disk, so a process killed mid-operation leaves a state recovery reads.
    const markOp = (frozen: boolean) =>
      writeJsonAtomic(snapshotOpPath(this.x.dir(id)), {
        op,
        name,
        paused: frozen,
        owner: currentOwner(),
        started_at: new Date().toISOString(),
      } satisfies OpRecord);
    try {
      if (engine.freeze && rec.handle) {
        // Said before the pause, so a process that dies paused leaves a sandbox recovery thaws.
        await markOp(true);
        await engine.freeze(asHandle(rec.handle));
        paused = true;
      }
      let scanned: Awaited<ReturnType<SnapshotStore["scan"]>>;
      try {
        scanned = await store.scan(files, name, added, (await store.readIndex()).entries);
      } finally {
        if (paused) {
          await thaw(this.x, rec);
          await markOp(false);
        }
        paused = false;
      }
      const skipped = mergeSkipped(scanned.skipped, guestSkipped);
      scanned.manifest.skipped = skipped.map((x) => x.path);
      await writeJsonAtomic(store.manifestPath(name), scanned.manifest);
      await store.writeIndex(scanned.index).catch(() => store.dropIndex());
      return { manifest: scanned.manifest, skipped };
    } catch (e) {
      if (paused)
        await thaw(this.x, rec).catch(
          ignore("thawing after a failed snapshot: the snapshot's own error is the one reported"),
        );
      await store
        .removeObjects(added)
        .catch(ignore("removing a failed snapshot's new objects: the next gc collects any left"));
      await rmTemps(store.manifestsDir);
      throw diskFullError(e, store.dir) ?? toPyroError(e);
    }
  }

  /**
   * Special files as the guest sees them. Under gVisor a FIFO (or device) made in /workspace
   * exists only in the sandbox (the gofer emulates it; nothing appears in `files/`), so the
   * host walk cannot see what it leaves out: the guest's `find` lists them. Best effort: an
   * image without GNU find, or a failing exec, leaves the host walk's list alone, and one
   * made between this and the pause is not listed.
   */
  private async guestSpecialFiles(rec: WorkspaceRecord): Promise<SkippedEntry[]> {
    const guest = new Guest(this.x.engineFor(rec), asHandle(rec.handle!), rec.workspace_id);
    const out = await guest
      .sh(
        "find . -xdev -mindepth 1 \\( -type p -o -type s -o -type b -o -type c \\) -printf '%y %P\\0'",
        [],
        {
          timeoutMs: 60_000,
          maxOutputBytes: 4 * 1024 * 1024,
        },
      )
      .catch(
        ignore(
          "listing the guest's special files: without GNU find or a working exec the host walk's list stands",
        ),
      );
    if (out?.exitCode !== 0) return [];
    return stdoutBytes(out)
      .toString("utf8")
      .split("\0")
      .filter((x) => x.length > 2)
      .map((x) => ({ path: x.slice(2), reason: skipReason(SPECIAL_KINDS[x[0]!] ?? "special file") }));
  }

  private async nextName(store: SnapshotStore): Promise<string> {
    const n = (await store.manifestNames())
      .map((x) => /^s(\d+)$/.exec(x)?.[1])
      .filter(Boolean)
      .map(Number);
    return `s${n.length ? Math.max(...n) + 1 : 1}`;
  }

  private async info(store: SnapshotStore, m: Manifest): Promise<SnapshotInfo> {
    const manifestBytes =
      (
        await stat(store.manifestPath(m.name)).catch(
          ignore("manifest size for the listing: an unreadable manifest counts as 0 bytes"),
        )
      )?.size ?? 0;
    return {
      name: m.name,
      created_at: m.created_at,
      files: m.files,
      bytes: m.bytes,
      new_bytes: m.new_bytes,
      disk_bytes: m.new_bytes + manifestBytes,
      skipped_count: m.skipped.length,
    };
  }

  async list(id: string): Promise<{ workspace_id: string; snapshots: SnapshotInfo[] }> {
    checkId("ws", id);
    await this.x.records.load(id);
    await recoverInterruptedOp(this.x, id);
    const store = this.store(id);
    const out: SnapshotInfo[] = [];
    for (const n of await store.manifestNames()) {
      const m = await store
        .readManifest(n)
        .catch(ignore("unreadable manifest: left out of the snapshot list"));
      if (m && !this.implicit(n)) out.push(await this.info(store, m));
    }
    out.sort((a, b) => a.created_at.localeCompare(b.created_at));
    return { workspace_id: id, snapshots: out };
  }

  /** Snapshots a fork takes of the current state are internal and dropped after it. */
  private implicit(name: string): boolean {
    return name.startsWith(".fork-");
  }

  async delete(
    id: string,
    name: string,
  ): Promise<{ workspace_id: string; name: string; deleted: boolean; bytes_freed: number }> {
    checkId("ws", id);
    await this.x.records.load(id);
    const store = this.store(id);
    await this.manifestOrThrow(id, store, name);
    await this.claim(id, { op: "delete", name });
    try {
      await rm(store.manifestPath(name), { force: true });
      const freed = await store.gc();
      await this.event(id, { event: "snapshot_delete", name });
      return { workspace_id: id, name, deleted: true, bytes_freed: freed };
    } finally {
      await this.release(id);
    }
  }

  private async manifestOrThrow(id: string, store: SnapshotStore, name: string): Promise<Manifest> {
    const m = SNAPSHOT_NAME.test(name)
      ? await store
          .readManifest(name)
          .catch(ignore("missing or unreadable manifest: reported as an unknown snapshot"))
      : undefined;
    if (m) return m;
    const known = (await store.manifestNames()).filter((n) => !this.implicit(n)).sort();
    throw new PyroError(
      "not_found",
      `workspace ${id} has no snapshot named ${JSON.stringify(name)}; ${
        known.length ? `its snapshots are: ${known.join(", ")}` : "it has no snapshots yet"
      } (and "baseline", the seeded state, for reset)`,
      ["list them with ", { op: "workspace_snapshot_list", args: { workspace_id: id } }],
    );
  }

  /**
   * The baseline as a manifest in the store, made once per baseline (keyed by its `.at` stamp,
   * which sync push --update-baseline moves), so reset to the baseline works like any snapshot.
   */
  private async baselineManifest(id: string): Promise<Manifest> {
    const dir = this.x.dir(id);
    const store = this.store(id);
    const stamp = (await readFile(`${baselineDir(dir)}.at`, "utf8").catch(() => "0")).replace(/[^0-9]/g, "");
    const name = `.baseline-${stamp || "0"}`;
    const have = await store
      .readManifest(name)
      .catch(ignore("no readable baseline manifest yet: it is scanned now"));
    if (have) return have;
    for (const n of await store.manifestNames())
      if (n.startsWith(".baseline-")) await rm(store.manifestPath(n), { force: true });
    const added: string[] = [];
    try {
      const { manifest } = await store.scan(baselineDir(dir), name, added, {});
      // Owners as the guest sees them: the baseline copy is the host user's (cp
      // --no-preserve=ownership), the workspace's files are the image user's.
      const files = await lstat(join(dir, "files")).catch(
        ignore("no files/ dir: the baseline manifest keeps the copy's owners"),
      );
      if (files)
        for (const e of [manifest.root, ...manifest.entries])
          Object.assign(e, { uid: files.uid, gid: files.gid });
      await writeJsonAtomic(store.manifestPath(name), manifest);
      return manifest;
    } catch (e) {
      await store
        .removeObjects(added)
        .catch(ignore("removing a failed baseline scan's new objects: the next gc collects any left"));
      throw diskFullError(e, store.dir) ?? toPyroError(e);
    }
  }

  // ---- reset ----

  async reset(id: string, snapshot: string) {
    const t0 = performance.now();
    await this.target(id, true);
    if (snapshot !== BASELINE) await this.manifestOrThrow(id, this.store(id), snapshot);
    const running = await runningExecs(this.x.dir(id));
    if (running.length)
      throw new PyroError(
        "invalid_state",
        `workspace ${id} has ${running.length} command(s) running (pyro process ${running.join(", ")}); a reset now would cut them off mid-write`,
        "wait for them to return (or cancel them), then reset",
      );
    await this.claim(id, { op: "reset", target: snapshot });
    try {
      const r = await this.resetBody(id, snapshot);
      await this.event(id, { event: "reset", name: snapshot });
      return { ...r, duration_ms: Math.round(performance.now() - t0) };
    } finally {
      await this.release(id);
    }
  }

  /**
   * Kill the sandbox, make /workspace the target's tree, start a fresh sandbox. Safe to run
   * again from the start after an interruption at any point (recovery does exactly that).
   */
  private async resetBody(id: string, snapshot: string) {
    const x = this.x;
    const dir = x.dir(id);
    const store = this.store(id);
    const rec = await x.records.load(id);
    const engine = x.engineFor(rec);
    const manifest =
      snapshot === BASELINE
        ? await this.baselineManifest(id)
        : await this.manifestOrThrow(id, store, snapshot);
    const shells = (await readdir(join(dir, "shells")).catch(() => [] as string[]))
      .filter((n) => n.endsWith(".json"))
      .map((n) => n.slice(0, -5));
    const services = (await readdir(join(dir, "services")).catch(() => [] as string[]))
      .filter((n) => n.endsWith(".json"))
      .map((n) => n.slice(0, -5));
    const t0 = performance.now();
    const sandboxDir = join(dir, "sandbox");
    // From here no guest process writes /workspace.
    if (rec.handle)
      await engine
        .stop(asHandle(rec.handle))
        .catch(
          ignore(
            "stopping the old sandbox before a reset: it may be stopped already, and it is destroyed next",
          ),
        );
    // The old sandbox's removal (runsc delete takes ~2 s on these hosts) overlaps the restore.
    let restoreMs = 0;
    const [restored] = await Promise.all([
      store.restore(join(dir, "files"), manifest, { useIndex: true }).then((r) => {
        restoreMs = performance.now() - t0;
        return r;
      }),
      rec.handle
        ? engine.retire
          ? engine.retire(asHandle(rec.handle))
          : engine.destroy(asHandle(rec.handle))
        : engine
            .removeOrphan(id, sandboxDir)
            .catch(ignore("removing a leftover sandbox during a reset: it may not exist")),
    ]);
    const t1 = performance.now();
    let handle: SandboxHandle;
    try {
      handle = await startSandbox(x, engine, rec);
    } catch (e) {
      await x.records.update(id, (r) => {
        r.handle = null;
        r.state = "failed";
        r.reason = `reset restored /workspace but could not start a new sandbox: ${toPyroError(e).message}`;
      });
      throw e;
    }
    const t2 = performance.now();
    const now = Date.now();
    const updated = await x.records.update(id, (r) => {
      r.handle = handle as WorkspaceRecord["handle"];
      r.state = "running";
      r.reason = null;
      const idle = new Date(Math.min(now + r.ttl_seconds * 1000, Date.parse(r.max_expires_at ?? "9999")));
      if (idle.getTime() > Date.parse(r.expires_at)) r.expires_at = idle.toISOString();
      r.last_activity_at = new Date(now).toISOString();
    });
    await engine
      .setExpiry?.(handle, updated.expires_at)
      .catch(
        ignore("pushing the expiry into the new sandbox: the reaper enforces the record's expiry regardless"),
      );
    // Their supervisors died with the old sandbox: their records go too.
    await rm(join(dir, "shells"), { recursive: true, force: true });
    await rm(join(dir, "services"), { recursive: true, force: true });
    return {
      workspace_id: id,
      snapshot,
      files_written: restored.written,
      files_removed: restored.removed,
      bytes_written: restored.bytes_written,
      shells_ended: shells,
      services_ended: services,
      sandbox_restarted: true,
      restore_ms: Math.round(restoreMs),
      sandbox_ms: Math.round(t2 - t1),
      old_sandbox_ms: Math.round(t1 - t0),
    };
  }

  // ---- fork ----

  async fork(id: string, snapshot: string | undefined, count: number, ctx: CallContext = {}) {
    const t0 = performance.now();
    const rec = await this.target(id);
    const store = this.store(id);
    if (snapshot !== undefined && snapshot !== BASELINE) await this.manifestOrThrow(id, store, snapshot);
    const implicit = snapshot === undefined ? `.fork-${randomBytes(4).toString("hex")}` : undefined;
    await this.claim(id, { op: "fork", ...(implicit ? { name: implicit } : {}) });
    try {
      const manifest = implicit
        ? (await this.snapshotLocked(id, rec, implicit, "fork")).manifest
        : snapshot === BASELINE
          ? await this.baselineManifest(id)
          : await this.manifestOrThrow(id, store, snapshot!);
      const engine = this.x.engineFor(rec);
      const parentBaseline = baselineDir(this.x.dir(id));
      const input: WorkspaceCreateInputT = {
        environment: rec.environment,
        vcpu_count: rec.vcpu_count,
        mem_mib: rec.mem_mib,
        disk_mib: rec.disk_mib,
        ttl_seconds: rec.ttl_seconds,
        max_ttl_seconds: 86_400,
        network: rec.network,
        // The parent's policy and rules, not its published ports (host ports are one per workspace).
        ...(rec.network_spec
          ? {
              network_policy: rec.network_spec.policy,
              allow_cidr: rec.network_spec.allow_cidrs,
              deny_cidr: rec.network_spec.deny_cidrs,
              allow_host: rec.network_spec.allow_hosts,
            }
          : {}),
        allow_host_compat: !this.x.engineFor(rec).traits.isolated,
      };
      const fill: PreparedFiles = {
        seed: rec.workspace_seed,
        extra: { forked_from: { workspace_id: id, snapshot: implicit ? null : snapshot } },
        into: async (filesDir) => {
          await store.restore(filesDir, manifest, { useIndex: false });
        },
        // The baseline is never written in place (sync push --update-baseline replaces
        // files), so the fork's can share the parent's inodes: hardlinks, no copy.
        baseline: async (wsDir) => {
          const r = await runCapture("cp", ["-al", "--", parentBaseline, baselineDir(wsDir)], {
            timeoutMs: 600_000,
          });
          if (r.exitCode !== 0)
            throw new PyroError(
              "engine_failure",
              `copying the baseline failed: ${r.stderr.trim().slice(-300)}`,
            );
          await copyFile(`${parentBaseline}.at`, `${baselineDir(wsDir)}.at`).catch(
            ignore("copying the parent's baseline stamp: without it the fork's baseline reads as stamp 0"),
          );
        },
      };
      const settled = await Promise.allSettled(
        Array.from({ length: count }, () => this.x.createFrom(input, engine, fill, ctx)),
      );
      const made = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
      if (failed) {
        // All or nothing: the forks that did start go again.
        for (const w of made)
          await this.x
            .delete(w.workspace_id)
            .catch(
              ignore("deleting a fork of a failed all-or-nothing fork: the fork error is the one reported"),
            );
        throw toPyroError(failed.reason);
      }
      await this.event(id, { event: "fork", name: implicit ? null : (snapshot ?? null), count });
      return {
        workspace_id: id,
        snapshot: implicit ? null : snapshot!,
        workspaces: made as WorkspaceStatusResultT[],
        duration_ms: Math.round(performance.now() - t0),
      };
    } finally {
      if (implicit) await rm(store.manifestPath(implicit), { force: true });
      if (implicit)
        await store.gc().catch(ignore("collecting objects after a fork: the next gc collects any left"));
      await this.release(id);
    }
  }

  // ---- activity (for workspace summary) ----

  private async event(id: string, e: Record<string, unknown>): Promise<void> {
    await appendFile(
      join(this.x.dir(id), "snapshots", "events.jsonl"),
      `${JSON.stringify({ at: new Date().toISOString(), ...e })}\n`,
    ).catch(ignore("appending to the snapshot event log, which is informational: one line is lost"));
  }
}

/** Polls until the operation at `path` no longer has the sandbox paused (or its owner died). */
async function waitWhilePaused(path: string, owner: Owner): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < 60_000) {
    await new Promise((r) => setTimeout(r, 20));
    const cur = await readJson<OpRecord>(path).catch(
      ignore("op.json gone or unreadable while waiting: the pause is over"),
    );
    if (!cur?.paused || cur.owner.pid !== owner.pid || !ownerAlive(owner)) return;
  }
}

function checkName(name: string): void {
  if (!SNAPSHOT_NAME.test(name) || name === BASELINE)
    throw new PyroError(
      "invalid_argument",
      `bad snapshot name ${JSON.stringify(name)}`,
      `use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit (not "${BASELINE}", which names the seeded state)`,
    );
}

/** Pyro processes with a workspace exec in flight (their output files are still `running-<pid>-…`). */
async function runningExecs(wsDir: string): Promise<number[]> {
  const pids = new Set<number>();
  for (const n of await readdir(join(wsDir, "commands")).catch(() => [] as string[])) {
    const m = /^running-(\d+)-[0-9a-f]+\.stdout$/.exec(n);
    if (m && Number(m[1]) !== process.pid && ownerAlive({ pid: Number(m[1]), start: 0 }))
      pids.add(Number(m[1]));
    if (m && Number(m[1]) === process.pid) pids.add(process.pid);
  }
  return [...pids];
}

async function rmTemps(dir: string): Promise<void> {
  for (const n of await readdir(dir).catch(() => [] as string[]))
    if (n.startsWith(".") && n.includes(`.${process.pid}.`)) await rm(join(dir, n), { force: true });
}

/**
 * Lets a dead process's engine commands against the sandbox end first (Engine.settle), or a
 * late `runsc delete` would remove the sandbox this recovery starts under the same name.
 */
async function settle(x: Pick<SnapshotPort, "engineFor">, rec: WorkspaceRecord): Promise<void> {
  const engine = rec.engine ? x.engineFor(rec) : undefined;
  await engine?.settle?.(rec.workspace_id, rec.handle ? asHandle(rec.handle) : undefined);
}

/** Lets a sandbox frozen for a snapshot run on (Engine.thaw); nothing where the engine has none. */
async function thaw(x: Pick<SnapshotPort, "engineFor">, rec: WorkspaceRecord): Promise<void> {
  const engine = x.engineFor(rec);
  if (engine.thaw && rec.handle) await engine.thaw(asHandle(rec.handle));
}

/** A fresh sandbox on the workspace's existing files: the spec create (or update) left. */
async function startSandbox(x: SnapshotPort, engine: Engine, rec: WorkspaceRecord): Promise<SandboxHandle> {
  return engine.create(await x.spec(rec, true));
}
