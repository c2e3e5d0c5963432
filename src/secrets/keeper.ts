import { existsSync } from "node:fs";
import * as z from "zod";
import type { SecretValue } from "./redactor.js";

/** A secret as the workspace record keeps it: name, size and source; never the value. */
export const SecretRecordSchema = z.object({
  name: z.string(),
  bytes: z.number().int().nonnegative(),
  source: z.object({ kind: z.enum(["value", "file_path", "from_env"]), ref: z.string().nullable() }),
});

/** Entries a secret-values cache holds before its first sweep for gone workspaces. */
export const SECRET_CACHE_SWEEP_MIN = 64;

/**
 * Values this process read back from a sandbox (or was given at create), by workspace id:
 * one read-back per process (a CLI call; for the MCP server or an SDK instance, its lifetime),
 * never written anywhere. Replaced for a workspace when its secrets are written again, dropped
 * when this process deletes it.
 *
 * A long-running server also sees workspaces go that it did not delete (another process's
 * `workspace delete`, the reaper of another process, a create that failed after writing its
 * secrets), so each entry remembers its workspace directory and, once the cache has doubled
 * since the last sweep, entries whose directory is gone are dropped: the cache stays within
 * about twice the live workspaces with secrets, and no entry of a live workspace is ever
 * evicted (a literal value given at create exists nowhere else in this process).
 */
export class SecretValuesCache {
  private readonly entries = new Map<string, { dir: string; values: SecretValue[] }>();
  private sweepAt = SECRET_CACHE_SWEEP_MIN;

  get size(): number {
    return this.entries.size;
  }

  get(id: string): SecretValue[] | undefined {
    return this.entries.get(id)?.values;
  }

  /** `dir` is the workspace's directory: the entry lives while it exists. */
  set(id: string, dir: string, values: SecretValue[]): void {
    this.entries.set(id, { dir, values });
    if (this.entries.size < this.sweepAt) return;
    for (const [k, e] of this.entries) if (!existsSync(e.dir)) this.entries.delete(k);
    this.sweepAt = Math.max(SECRET_CACHE_SWEEP_MIN, 2 * this.entries.size);
  }

  delete(id: string): void {
    this.entries.delete(id);
  }
}

export const secretValuesCache = new SecretValuesCache();
