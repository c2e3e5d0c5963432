import { join } from "node:path";
import type * as z from "zod";
import { PyroError } from "../core/errors.js";
import type { IdKind } from "../core/ids.js";
import type { Engine, EngineName } from "../engines/types.js";
import { ignore } from "../util/best-effort.js";
import { isPast } from "./context.js";
import type { EngineRegistry } from "./engines.js";
import { recordProblem } from "./handle-check.js";
import { type Owner, ownerAlive } from "./owner.js";
import { REAP_LOCK_WAIT_MS, type RecordEntry, RecordStore, type RecordValidator } from "./record-store.js";
import { asHandle, type HandleSchema, removeRecordSandbox } from "./sandbox-record.js";

type StoredHandle = z.infer<typeof HandleSchema>;

/** What the core reads and writes in every sandbox record (a VM's or a workspace's). */
export interface SandboxRecord {
  state: string;
  reason: string | null;
  expires_at: string;
  /** The engine that runs (or ran) its sandbox; null in VM records made before engines were stored. */
  engine: EngineName | null;
  handle: StoredHandle | null;
  owner?: Owner | null | undefined;
}

export interface SandboxRecordsOptions<R> {
  /** The directory holding one `<id>/` directory per record. */
  root: string;
  kind: IdKind;
  /** The record's file in its directory ("vm.json"). */
  file: string;
  idOf: (rec: R) => string;
  schema: RecordValidator<R>;
  /** How messages name one ("VM", "workspace") and the operations hints point at. */
  noun: string;
  ops: { list: string; delete: string; idArg: string };
  /** More of the not-found hint, after "list <noun>s with <list>". */
  notFoundMore?: string;
  /** More of the expired hint, after "delete it with <delete>". */
  expiredMore?: string;
  /**
   * The intent state: written with this process as `owner` before the engine makes the
   * sandbox (`starting`, `creating`), so whatever moment the process dies at, what it left is
   * found. `verb` says it in messages ("started"), `wait` is the hint while its owner lives.
   */
  intent: { state: string; verb: string; wait: string };
  /** Whether the sandbox shares a `files/` directory beside `sandbox/` (checked in handles). */
  filesDir?: boolean;
  /** What expiry removes besides the sandbox (disks, baselines), and the reason's tail. */
  onExpire?: (rec: R, dir: string) => Promise<void>;
  expiredNote?: string;
  /** A directory a killed removal left that the reaper must keep for now (RecordStore). */
  keepRemoving?: (dir: string) => Promise<boolean>;
  engines: EngineRegistry;
}

/**
 * The record core VMs and workspaces share: their records (RecordStore, checked on every
 * load), the engine each names, the intent state and its crash recovery, TTL expiry, the
 * running check that views make, delete under the record's lock, and the reaper's rounds.
 * What differs (a VM's one-shot runs, a workspace's disk and name) stays with each manager,
 * through the hooks of the options and of `reap`.
 */
export class SandboxRecords<R extends SandboxRecord> {
  readonly store: RecordStore<R>;

  constructor(private readonly o: SandboxRecordsOptions<R>) {
    const { noun, ops } = o;
    this.store = new RecordStore<R>({
      root: o.root,
      kind: o.kind,
      file: o.file,
      idOf: o.idOf,
      ...(o.keepRemoving ? { keepRemoving: o.keepRemoving } : {}),
      notFound: (id) =>
        new PyroError("not_found", `no ${noun} with id ${id}`, [
          `list ${noun}s with `,
          { op: ops.list },
          ...(o.notFoundMore ? [o.notFoundMore] : []),
        ]),
      unreadable: (id, why) =>
        new PyroError("invalid_state", `${noun} ${id} is damaged (${why})`, [
          "delete it with ",
          { op: ops.delete, args: { [ops.idArg]: id } },
          " (its sandbox, if any, is found and removed too)",
        ]),
      schema: o.schema,
      // The paths a record names must be its own (a tampered record must not aim a delete elsewhere).
      check: (id, dir, rec) => recordProblem(ops.idArg, o.idOf(rec), id, dir, rec.handle, !!o.filesDir),
    });
  }

  dir(id: string): string {
    return this.store.dir(id);
  }

  sandboxDir(id: string): string {
    return join(this.dir(id), "sandbox");
  }

  /** The engine that made the record's sandbox (VM records from before engines were stored: gVisor). */
  engineFor(rec: R): Engine {
    const e = this.o.engines.byName(rec.engine ?? "gvisor");
    if (!e) throw new PyroError("engine_unavailable", `engine ${rec.engine} is not available in this build`);
    return e;
  }

  /** The engine a marker names, else every engine that could have left something behind. */
  enginesFor(name: EngineName | undefined): Engine[] {
    const known = name ? this.o.engines.byName(name) : undefined;
    return known ? [known] : this.o.engines.all();
  }

  /** In the intent state, and its owner is still at work: not to be touched. */
  intentLive(r: R): boolean {
    return r.state === this.o.intent.state && ownerAlive(r.owner);
  }

  /** In the intent state, but its owner died: nothing usable, found and cleaned up. */
  interrupted(r: R): boolean {
    return r.state === this.o.intent.state && !ownerAlive(r.owner);
  }

  /** Past its TTL: expired now, under the record's lock. */
  expireIfDue(rec: R): Promise<R> {
    return this.store.expireIfDue(rec, (r) => this.expire(r));
  }

  /**
   * For views: expired if due, without waiting on another operation's lock (then what it
   * derives is shown, not written).
   */
  async expiredNow(rec: R): Promise<R> {
    return (
      (await this.store.expireIfDueIfFree(rec, (r) => this.expire(r))) ?? {
        ...rec,
        state: "expired",
        reason: `ttl elapsed at ${rec.expires_at}`,
      }
    );
  }

  private async expire(r: R): Promise<void> {
    if (r.state === "expired") return;
    if (r.handle)
      await this.engineFor(r)
        .destroy(asHandle(r.handle))
        .catch(
          ignore(
            "destroying an expired sandbox: it may be gone already; the record is marked expired either way",
          ),
        );
    await this.o.onExpire?.(r, this.dir(this.o.idOf(r)));
    const w: SandboxRecord = r;
    w.handle = null;
    w.state = "expired";
    w.reason = `ttl elapsed at ${r.expires_at}${this.o.expiredNote ?? ""}`;
  }

  /** The record, expired if due; an `expired` error if it is. */
  async unexpired(id: string): Promise<R> {
    const rec = await this.expireIfDue(await this.store.load(id));
    if (rec.state === "expired")
      throw new PyroError("expired", `${this.o.noun} ${id} expired (${rec.reason})`, [
        "delete it with ",
        { op: this.o.ops.delete, args: { [this.o.ops.idArg]: id } },
        ...(this.o.expiredMore ? [this.o.expiredMore] : []),
      ]);
    return rec;
  }

  /**
   * A running record whose sandbox is not running any more is failed (recorded unless another
   * operation holds the record: a view never waits behind it); `alive` looks further at one
   * that runs.
   */
  async checked(r: R, alive: (r: R) => Promise<R> = async (x) => x): Promise<R> {
    if (r.state !== "running" || !r.handle) return r;
    const i = await this.engineFor(r).inspect(asHandle(r.handle));
    if (i.state === "running") return alive(r);
    return this.failIfFree(r, i.reason ?? `sandbox ${i.state}`);
  }

  /** `r` as failed for `reason`: written if it is still running and its lock is free, shown either way. */
  async failIfFree(r: R, reason: string): Promise<R> {
    const failed = await this.store.updateIfFree(this.o.idOf(r), (x) => {
      if (x.state === "running") {
        const w: SandboxRecord = x;
        w.state = "failed";
        w.reason = reason;
      }
    });
    return failed ?? { ...r, state: "failed", reason };
  }

  /**
   * Ends the record's sandbox and checks that it is gone: through the handle when the record
   * has one, else (interrupted intent, damaged record) by asking every engine that could have
   * made it. Throws rather than let a delete report success over a live sandbox.
   */
  removeSandbox(id: string, e: RecordEntry<R>): Promise<void> {
    return removeRecordSandbox(`${this.o.noun} ${id}`, id, this.sandboxDir(id), e.rec, this.o.engines);
  }

  /**
   * Delete under the record's lock: refused while its intent's owner still works on it; the
   * sandbox goes first (found even without a record), then `removeDir` takes the directory,
   * then the lock the record leaves behind.
   */
  async delete(id: string, removeDir: (dir: string) => Promise<void>): Promise<void> {
    await this.store.locked(id, async () => {
      const e = await this.store.read(id);
      if (e.rec && this.intentLive(e.rec))
        throw new PyroError(
          "invalid_state",
          `${this.o.noun} ${id} is being ${this.o.intent.verb} by pyro process ${e.rec.owner?.pid}`,
          this.o.intent.wait,
        );
      await this.removeSandbox(id, e);
      await removeDir(this.dir(id));
    });
    await this.store.removeLock(id);
  }

  /**
   * One reaper round: a record whose intent's owner died goes to `interrupted`, one past its
   * TTL is expired, each directory without a valid record goes to `orphan`; each says whether
   * it dealt with it. A record another operation holds for longer than REAP_LOCK_WAIT_MS is
   * left for the next round, rather than stall every record after it.
   */
  reap(hooks: {
    interrupted: (rec: R) => Promise<boolean>;
    orphan: (e: RecordEntry<R>) => Promise<boolean>;
  }): Promise<string[]> {
    return this.store.reap(async (rec) => {
      if (this.interrupted(rec)) return hooks.interrupted(rec);
      if (rec.state === "expired" || !isPast(rec.expires_at)) return false;
      return (
        (await this.store.expireIfDueIfFree(rec, (r) => this.expire(r), REAP_LOCK_WAIT_MS)) !== undefined
      );
    }, hooks.orphan);
  }
}
