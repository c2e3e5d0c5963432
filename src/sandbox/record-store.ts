import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { PyroError } from "../core/errors.js";
import { checkId, type IdKind, isValidId } from "../core/ids.js";
import { readJson, writeJsonAtomic } from "../util/json-store.js";
import { lockHeld, withLock, withLockIfFree } from "../util/lock.js";
import { sweepRemoving } from "../util/remove-tree.js";
import { isPast } from "./context.js";

/**
 * How long a reaper waits for a record another operation holds before leaving it for the
 * next round: long enough for a concurrent reap or delete of that record to finish (then
 * the record is reported as reaped, or is gone), short enough that one busy record does not
 * hold up the rest for long.
 */
export const REAP_LOCK_WAIT_MS = 5_000;

/** What every stored record has: a lifecycle state and a TTL. */
export interface ExpiringRecord {
  state: string;
  expires_at: string;
}

/**
 * What validates a record on load: a zod schema, or (the CLI's fast path, which loads no zod)
 * a hand-written check with the same shape of answer.
 */
export interface RecordValidator<R> {
  safeParse(
    raw: unknown,
  ):
    | { success: true; data: R }
    | { success: false; error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] } };
}

export interface RecordStoreOptions<R> {
  /** The directory holding one `<id>/` directory per record. */
  root: string;
  kind: IdKind;
  /** The record's file name inside its directory, e.g. "vm.json". */
  file: string;
  idOf: (rec: R) => string;
  /** The error for an id with no record. */
  notFound: (id: string) => PyroError;
  /** The error for a record that cannot be read, parsed or validated (a damaged record). */
  unreadable: (id: string, why: string) => PyroError;
  /** Every record is validated on load: a record that fails is damaged, never half-trusted. */
  schema: RecordValidator<R>;
  /**
   * Checks beyond the schema (e.g. that the paths a record names are inside its own
   * directory, so a tampered record cannot point a delete elsewhere); returns the problem.
   */
  check?: (id: string, dir: string, rec: R) => string | undefined;
  /** A directory a killed removal left (util/remove-tree.ts) that the reaper must keep for now. */
  keepRemoving?: (dir: string) => Promise<boolean>;
}

/** How many records a list reads and views at once. */
const LIST_CONCURRENCY = 16;

/** One record directory as found on disk. */
export type RecordEntry<R> =
  | { id: string; dir: string; rec: R; problem?: undefined }
  | { id: string; dir: string; rec?: undefined; problem: "missing" | "damaged"; why: string };

/**
 * Typed JSON records over a directory of `<id>/<file>`: ids are checked before any path is
 * built, writes are atomic, and read-modify-write runs under the record's lock.
 */
export class RecordStore<R extends ExpiringRecord> {
  constructor(private readonly o: RecordStoreOptions<R>) {}

  dir(id: string): string {
    return join(this.o.root, checkId(this.o.kind, id));
  }

  path(id: string): string {
    return join(this.dir(id), this.o.file);
  }

  /** Reads and validates one record directory's file. */
  async read(id: string): Promise<RecordEntry<R>> {
    const dir = this.dir(id);
    let raw: unknown;
    try {
      raw = await readJson<unknown>(join(dir, this.o.file));
    } catch (e) {
      return { id, dir, problem: "damaged", why: `unreadable record: ${(e as Error).message}` };
    }
    if (raw === undefined) return { id, dir, problem: "missing", why: `no ${this.o.file}` };
    const parsed = this.o.schema.safeParse(raw);
    if (!parsed.success) {
      const first = parsed.error.issues[0];
      const where = first?.path.length ? first.path.map(String).join(".") : "record";
      return { id, dir, problem: "damaged", why: `invalid record: ${where}: ${first?.message ?? "invalid"}` };
    }
    const problem = this.o.check?.(id, dir, parsed.data);
    if (problem) return { id, dir, problem: "damaged", why: `invalid record: ${problem}` };
    return { id, dir, rec: parsed.data };
  }

  notFoundError(id: string): PyroError {
    return this.o.notFound(id);
  }

  /** The record, or an error saying it is missing or damaged. */
  async load(id: string): Promise<R> {
    const e = await this.read(id);
    if (e.rec) return e.rec;
    if (e.problem === "damaged") throw this.o.unreadable(id, e.why);
    throw this.o.notFound(id);
  }

  write(id: string, rec: R): Promise<void> {
    return writeJsonAtomic(this.path(id), rec);
  }

  /** Loads, changes and writes back the record under its lock; returns the new record. */
  update(id: string, fn: (r: R) => Promise<void> | void): Promise<R> {
    return this.locked(id, () => this.change(id, fn));
  }

  /**
   * update, unless another operation holds the record's lock: then undefined at once. For
   * views, which show what they derive (expired, failed) rather than wait behind a delete.
   */
  async updateIfFree(id: string, fn: (r: R) => Promise<void> | void, waitMs = 0): Promise<R | undefined> {
    return (await this.lockedIfFree(id, () => this.change(id, fn), waitMs))?.value;
  }

  private async change(id: string, fn: (r: R) => Promise<void> | void): Promise<R> {
    const rec = await this.load(id);
    await fn(rec);
    await this.write(id, rec);
    return rec;
  }

  /**
   * Runs `fn` under the record's lock (util/lock.ts: a live holder is waited for, a dead
   * one's lock taken over at once). A record whose directory is gone is not_found: its lock
   * never brings the directory back.
   */
  locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return withLock(this.path(id), fn, this.lockOpts(id));
  }

  /**
   * `fn` under the record's lock if no other operation holds it (or releases it within
   * `waitMs`); undefined otherwise.
   */
  lockedIfFree<T>(id: string, fn: () => Promise<T>, waitMs = 0): Promise<{ value: T } | undefined> {
    return withLockIfFree(this.path(id), fn, { ...this.lockOpts(id), waitMs });
  }

  /** Whether a live operation holds the record's lock (a create or delete in progress). */
  busy(id: string): Promise<boolean> {
    return lockHeld(this.path(id));
  }

  private lockOpts(id: string) {
    return { createDir: false, missingDir: () => this.o.notFound(id) };
  }

  /** Removes the lock a deleted record leaves behind. */
  async removeLock(id: string): Promise<void> {
    await rm(`${this.path(id)}.lock`, { recursive: true, force: true });
  }

  /** Runs `expire` on the record under its lock if it is past its TTL and not yet expired. */
  expireIfDue(rec: R, expire: (r: R) => Promise<void> | void): Promise<R> {
    if (!this.due(rec)) return Promise.resolve(rec);
    return this.update(this.o.idOf(rec), expire);
  }

  /**
   * expireIfDue, or undefined when it is due but another operation holds the lock (longer
   * than `waitMs`).
   */
  async expireIfDueIfFree(
    rec: R,
    expire: (r: R) => Promise<void> | void,
    waitMs = 0,
  ): Promise<R | undefined> {
    if (!this.due(rec)) return rec;
    return this.updateIfFree(this.o.idOf(rec), expire, waitMs);
  }

  private due(rec: R): boolean {
    return rec.state !== "expired" && isPast(rec.expires_at);
  }

  /** Every directory with a valid id, with its record or what is wrong with it. */
  async *entries(): AsyncGenerator<RecordEntry<R>> {
    for (const id of await readdir(this.o.root).catch(() => [] as string[])) {
      if (!isValidId(this.o.kind, id)) continue;
      yield await this.read(id);
    }
  }

  /**
   * `view` of every record directory (damaged ones included, via `damaged`), oldest first.
   * Records come and go while it reads: one that vanished (not_found from `view`) is not
   * listed, nor is a directory without its record while a live operation holds its lock
   * (a delete or create in progress). `view` must not wait on locks (see updateIfFree).
   */
  async list<V extends { created_at: string }>(
    view: (rec: R) => Promise<V>,
    damaged: (e: RecordEntry<R>) => Promise<V | undefined>,
  ): Promise<V[]> {
    // Records are read and viewed LIST_CONCURRENCY at a time: in a busy server each await
    // queues behind other requests, so a list of a few dozen records done one by one took
    // seconds of queueing where its own work takes milliseconds.
    const ids = (await readdir(this.o.root).catch(() => [] as string[])).filter((id) =>
      isValidId(this.o.kind, id),
    );
    const out: (V | undefined)[] = new Array(ids.length);
    let next = 0;
    const worker = async () => {
      for (let k = next++; k < ids.length; k = next++) {
        const e = await this.read(ids[k]!);
        try {
          if (e.rec) out[k] = await view(e.rec);
          else if (!(e.problem === "missing" && (await this.busy(e.id)))) out[k] = await damaged(e);
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(LIST_CONCURRENCY, ids.length) }, worker));
    return out
      .filter((v): v is V => v !== undefined)
      .sort((a, b) => a.created_at.localeCompare(b.created_at));
  }

  /**
   * Hands every record to `due` (which expires it or cleans up after a dead creator and says
   * whether it did) and each directory without a valid record to `orphan`. Returns the ids
   * dealt with.
   */
  async reap(
    due: (rec: R) => Promise<boolean>,
    orphan: (e: RecordEntry<R>) => Promise<boolean>,
  ): Promise<string[]> {
    const reaped: string[] = [];
    await sweepRemoving(this.o.root, this.o.keepRemoving);
    for await (const e of this.entries()) {
      // A record deleted meanwhile is nothing to reap.
      const done = await (e.rec ? due(e.rec) : orphan(e)).catch((err) => {
        if (isNotFound(err)) return false;
        throw err;
      });
      if (done) reaped.push(e.id);
    }
    return reaped;
  }
}

function isNotFound(e: unknown): boolean {
  return e instanceof PyroError && e.code === "not_found";
}
