import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { PyroError } from "../errors.js";
import { checkId, type IdKind, isValidId } from "../ids.js";
import { readJson, withLock, writeJsonAtomic } from "../util/json-store.js";
import { isPast } from "./context.js";

/** What every stored record has: a lifecycle state and a TTL. */
export interface ExpiringRecord {
  state: string;
  expires_at: string;
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
  /** The error for a record that cannot be read or parsed; without it, such a record counts as not found. */
  unreadable?: (id: string, e: Error) => PyroError;
}

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

  /** The record, or an error saying it is missing (or unreadable). */
  async load(id: string): Promise<R> {
    const path = this.path(id);
    const { unreadable } = this.o;
    const rec = await readJson<R>(path).catch((e) => {
      if (unreadable) throw unreadable(id, e as Error);
      return undefined;
    });
    if (!rec) throw this.o.notFound(id);
    return rec;
  }

  write(id: string, rec: R): Promise<void> {
    return writeJsonAtomic(this.path(id), rec);
  }

  /** Loads, changes and writes back the record under its lock; returns the new record. */
  update(id: string, fn: (r: R) => Promise<void> | void): Promise<R> {
    return withLock(this.path(id), async () => {
      const rec = await this.load(id);
      await fn(rec);
      await this.write(id, rec);
      return rec;
    });
  }

  /** Runs `fn` under the record's lock. */
  locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return withLock(this.path(id), fn);
  }

  /** Removes the lock directory a deleted record leaves behind. */
  async removeLock(id: string): Promise<void> {
    await rm(`${this.path(id)}.lock`, { recursive: true, force: true });
  }

  /** Runs `expire` on the record under its lock if it is past its TTL and not yet expired. */
  expireIfDue(rec: R, expire: (r: R) => Promise<void> | void): Promise<R> {
    if (rec.state === "expired" || !isPast(rec.expires_at)) return Promise.resolve(rec);
    return this.update(this.o.idOf(rec), expire);
  }

  /** Every directory with a valid id, with its record (undefined when missing or unreadable). */
  async *entries(): AsyncGenerator<{ id: string; dir: string; rec: R | undefined }> {
    for (const id of await readdir(this.o.root).catch(() => [] as string[])) {
      if (!isValidId(this.o.kind, id)) continue;
      const dir = join(this.o.root, id);
      const rec = await readJson<R>(join(dir, this.o.file)).catch(() => undefined);
      yield { id, dir, rec };
    }
  }

  /** `view` of every readable record, oldest first. */
  async list<V extends { created_at: string }>(view: (rec: R) => Promise<V>): Promise<V[]> {
    const out: V[] = [];
    for await (const { rec } of this.entries()) if (rec) out.push(await view(rec));
    return out.sort((a, b) => a.created_at.localeCompare(b.created_at));
  }

  /**
   * Expires (through `expire`) the records past their TTL, and hands each directory without a
   * readable record to `orphan`, which says whether it removed it. Returns the ids dealt with.
   */
  async reap(
    expire: (rec: R) => Promise<unknown>,
    orphan: (id: string, dir: string) => Promise<boolean>,
  ): Promise<string[]> {
    const reaped: string[] = [];
    for await (const { id, dir, rec } of this.entries()) {
      if (rec) {
        if (rec.state !== "expired" && isPast(rec.expires_at)) {
          await expire(rec);
          reaped.push(id);
        }
      } else if (await orphan(id, dir)) {
        reaped.push(id);
      }
    }
    return reaped;
  }
}
