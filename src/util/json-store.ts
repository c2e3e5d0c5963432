import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { ignore } from "./best-effort.js";

/**
 * Atomic JSON write (temp file, then rename): a process killed mid-write leaves the old file
 * intact. No fsync: it doubled exec latency, and losing the last record to a power cut
 * (not a torn file) is acceptable for sandbox bookkeeping. Hand-rolled because
 * write-file-atomic took 2.5 ms a write against 0.4 ms for these two calls.
 */
/** Temp names: the pid tells processes apart, the count this process's own writes. */
let tmpSeq = 0;

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${++tmpSeq}.tmp`);
  const text = `${JSON.stringify(value, null, 2)}\n`;
  try {
    await writeFile(tmp, text);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    await mkdir(dir, { recursive: true });
    await writeFile(tmp, text);
  }
  try {
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

export async function readJson<T>(path: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  return JSON.parse(text) as T;
}

/**
 * Every `*.json` file in `dir` that parses and passes `valid` (a missing dir is empty), in the
 * order of `sortKey` when one is given.
 */
export async function readJsonDir<T>(
  dir: string,
  valid: (v: T) => boolean,
  sortKey?: (v: T) => string,
): Promise<T[]> {
  const out: T[] = [];
  for (const n of await readdir(dir).catch(() => [] as string[])) {
    if (!n.endsWith(".json")) continue;
    const v = await readJson<T>(join(dir, n)).catch(
      ignore("JSON file unreadable or half-written: left out of the list"),
    );
    if (v && valid(v)) out.push(v);
  }
  return sortKey ? out.sort((a, b) => sortKey(a).localeCompare(sortKey(b))) : out;
}

/**
 * The manifest.json of a complete content-addressed entry (an image, a recipe build), or
 * undefined when it is missing, half-written or for another digest.
 */
export async function readEntryManifest<T extends { digest: string }>(
  entryPath: string,
  digest: string,
): Promise<T | undefined> {
  const m = await readJson<T>(join(entryPath, "manifest.json")).catch(
    ignore("no readable entry manifest: the entry is not in the store"),
  );
  return m?.digest === digest ? m : undefined;
}

/** The cross-process lock (src/util/lock.ts), here since every store imports it from here. */
export { withLock, withLockIfFree } from "./lock.js";
