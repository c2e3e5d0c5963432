import { createHash, randomBytes } from "node:crypto";
import { type BigIntStats, constants, createWriteStream } from "node:fs";
import {
  chmod,
  copyFile,
  lchown,
  lstat,
  lutimes,
  mkdir,
  open,
  readdir,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { PyroError } from "../core/errors.js";
import { ignore } from "../util/best-effort.js";
import { readJson, writeJsonAtomic } from "../util/json-store.js";

/**
 * The content-addressed store behind workspace snapshots (snapshots.ts decides when; this
 * module only moves bytes). Per workspace, under `<ws>/snapshots/`:
 *   objects/<2 hex>/<sha256>   every distinct file content once, shared by all snapshots
 *                              (and by the baseline's manifest), never modified in place
 *   manifests/<name>.json      one per snapshot: every path with type, mode, owner, mtime and
 *                              (files) size + hash, (symlinks) target
 *   index.json                 the stat cache: for each file of /workspace as last seen,
 *                              inode, size, mtime and ctime (ns) with its hash, so a file whose
 *                              stat is unchanged is neither read nor hashed again (git's index)
 *
 * The host fs here is ext4 (no reflinks), so sharing is by content: a snapshot of a tree with
 * a few changed files costs those files' bytes plus its manifest. ctime is in the key because
 * nothing in the guest can set it (a forged mtime sets ctime to now); an entry is trusted only
 * when its ctime is well before the scan began, so a change within one clock tick of the scan
 * cannot hide behind an identical stat ("racy git").
 *
 * Every walk uses lstat and never follows a symlink; files are opened O_NOFOLLOW. Callers
 * guarantee that no guest process runs while a tree is scanned or restored (the sandbox is
 * paused or gone), so nothing can swap a directory for a symlink under the walk.
 */

export interface TreeEntry {
  /** Relative to the tree's root, `/`-separated, never empty. */
  path: string;
  type: "file" | "dir" | "symlink";
  /** Permission bits (07777). */
  mode: number;
  uid: number;
  gid: number;
  mtime_ms: number;
  size?: number;
  hash?: string;
  target?: string;
}

export interface Manifest {
  version: 1;
  name: string;
  created_at: string;
  root: { mode: number; uid: number; gid: number; mtime_ms: number };
  entries: TreeEntry[];
  files: number;
  bytes: number;
  /** Bytes this snapshot added to the store (contents no earlier snapshot had). */
  new_bytes: number;
  /** Paths not kept (sockets, FIFOs, devices): a workspace's files are files. */
  skipped: string[];
}

/** An entry a snapshot did not keep, with why (the create result lists them, like export). */
export interface SkippedEntry {
  path: string;
  reason: string;
}

/** Why a special file of `kind` (FIFO, socket, …) is not in a snapshot. */
export function skipReason(kind: string): string {
  return `a ${kind}, which snapshots do not keep (only files, directories and symlinks)`;
}

/** What kind of special file a stat describes, for a skipped entry's reason. */
function specialKind(st: BigIntStats): string {
  if (st.isFIFO()) return "FIFO";
  if (st.isSocket()) return "socket";
  if (st.isCharacterDevice()) return "character device";
  if (st.isBlockDevice()) return "block device";
  return "special file";
}

/** Stat cache entry: [ino, size, mtimeNs, ctimeNs, hash]. */
type IndexRow = [string, string, string, string, string];
interface Index {
  version: 1;
  entries: Record<string, IndexRow>;
}

/**
 * Objects are written with the commonest file mode, so a restore's copy usually needs no
 * chmod (copyFile gives the copy its source's mode). The store's directory is private
 * (the state dir is 0700) and objects are never written after they are named.
 */
const OBJECT_MODE = 0o644;

/** Files up to this size are read and written in one call each (larger ones are streamed). */
const SMALL = 4 * 1024 * 1024;

/** How far before a scan a file's ctime must be for its stat to vouch for its content. */
const RACY_NS = 1_000_000_000n;

const isRoot = () => process.getuid?.() === 0;

export class SnapshotStore {
  constructor(readonly dir: string) {}

  get objectsDir(): string {
    return join(this.dir, "objects");
  }
  get manifestsDir(): string {
    return join(this.dir, "manifests");
  }
  objectPath(hash: string): string {
    return join(this.objectsDir, hash.slice(0, 2), hash);
  }
  manifestPath(name: string): string {
    return join(this.manifestsDir, `${name}.json`);
  }

  async readManifest(name: string): Promise<Manifest | undefined> {
    return readJson<Manifest>(this.manifestPath(name));
  }

  async manifestNames(): Promise<string[]> {
    return (await readdir(this.manifestsDir).catch(() => [] as string[]))
      .filter((n) => n.endsWith(".json") && !n.startsWith("."))
      .map((n) => n.slice(0, -5));
  }

  async readIndex(): Promise<Index> {
    const i = await readJson<Index>(join(this.dir, "index.json")).catch(
      ignore("missing or unreadable object index: an empty one is rebuilt"),
    );
    return i?.version === 1 ? i : { version: 1, entries: {} };
  }

  async writeIndex(entries: Record<string, IndexRow>): Promise<void> {
    await writeJsonAtomic(join(this.dir, "index.json"), { version: 1, entries } satisfies Index);
  }

  /** Forget the stat cache (after anything wrote the tree without going through this store). */
  async dropIndex(): Promise<void> {
    await rm(join(this.dir, "index.json"), { force: true });
  }

  /**
   * Reads `root` into a manifest named `name`, storing contents the store lacks. Objects this
   * call added are listed in `added` so a caller that fails later can take them back out.
   * The manifest is returned, not written: writing it is the caller's commit point.
   */
  async scan(
    root: string,
    name: string,
    added: string[],
    old: Record<string, IndexRow>,
  ): Promise<{ manifest: Manifest; index: Record<string, IndexRow>; skipped: SkippedEntry[] }> {
    const startNs = BigInt(Date.now()) * 1_000_000n;
    const index: Record<string, IndexRow> = {};
    const entries: TreeEntry[] = [];
    const skipped: SkippedEntry[] = [];
    let bytes = 0;
    let newBytes = 0;
    const rootSt = await lstat(root, { bigint: true });
    const found = await walkTree(root);
    const toStore: { entry: TreeEntry; full: string; st: BigIntStats }[] = [];
    for (const { p, st } of found) {
      const full = join(root, p);
      const base = {
        path: p,
        mode: Number(st.mode & 0o7777n),
        uid: Number(st.uid),
        gid: Number(st.gid),
        mtime_ms: Number(st.mtimeNs / 1000n) / 1000,
      };
      if (st.isDirectory()) {
        entries.push({ ...base, type: "dir" });
      } else if (st.isSymbolicLink()) {
        entries.push({ ...base, type: "symlink", target: await readlink(full) });
      } else if (st.isFile()) {
        const key: IndexRow = [String(st.ino), String(st.size), String(st.mtimeNs), String(st.ctimeNs), ""];
        const prev = old[p];
        // gc drops index rows whose object it removed, so a hit's object exists.
        const hash =
          prev && prev[0] === key[0] && prev[1] === key[1] && prev[2] === key[2] && prev[3] === key[3]
            ? prev[4]
            : undefined;
        const entry: TreeEntry = { ...base, type: "file", size: Number(st.size), ...(hash ? { hash } : {}) };
        if (!hash) toStore.push({ entry, full, st });
        if (hash && st.ctimeNs < startNs - RACY_NS) index[p] = [key[0], key[1], key[2], key[3], hash];
        bytes += Number(st.size);
        entries.push(entry);
      } else {
        skipped.push({ path: p, reason: skipReason(specialKind(st)) });
      }
    }
    await mapLimit(toStore, 8, async ({ entry, full, st }) => {
      const r = await this.storeFile(full, st.ino, added);
      entry.hash = r.hash;
      newBytes += r.stored;
      if (st.ctimeNs < startNs - RACY_NS)
        index[entry.path] = [String(st.ino), String(st.size), String(st.mtimeNs), String(st.ctimeNs), r.hash];
    });
    const manifest: Manifest = {
      version: 1,
      name,
      created_at: new Date().toISOString(),
      root: {
        mode: Number(rootSt.mode & 0o7777n),
        uid: Number(rootSt.uid),
        gid: Number(rootSt.gid),
        mtime_ms: Number(rootSt.mtimeNs / 1000n) / 1000,
      },
      entries,
      files: entries.filter((e) => e.type === "file").length,
      bytes,
      new_bytes: newBytes,
      skipped: skipped.map((x) => x.path),
    };
    return { manifest, index, skipped };
  }

  /** Hashes a file while copying it into a temp object, then names it by its hash. */
  private async storeFile(
    path: string,
    ino: bigint,
    added: string[],
  ): Promise<{ hash: string; stored: number }> {
    await mkdir(this.objectsDir, { recursive: true });
    const tmp = join(this.objectsDir, `.tmp-${process.pid}-${randomBytes(6).toString("hex")}`);
    const h = createHash("sha256");
    let size = 0;
    const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      // The file that was lstat'ed (not something swapped in since): same inode.
      const fst = await fh.stat({ bigint: true });
      if (fst.ino !== ino || !fst.isFile()) throw new Error(`${path} changed while it was read`);
      let data: Buffer | undefined;
      if (fst.size <= SMALL) {
        // One read, one write: streams cost more than the bytes for the typical small file.
        data = await fh.readFile();
        h.update(data);
        size = data.length;
      } else {
        const src = fh.createReadStream({ autoClose: false });
        src.on("data", (c) => {
          h.update(c as Buffer);
          size += (c as Buffer).length;
        });
        await pipeline(src, createWriteStream(tmp, { flags: "wx", mode: OBJECT_MODE }));
      }
      const hash = h.digest("hex");
      const dest = this.objectPath(hash);
      // Two files with one content in one scan: the first stores it (checked before any await).
      const mine = !this.seen.has(hash);
      this.seen.add(hash);
      if (!mine || (await exists(dest))) {
        await rm(tmp, { force: true });
        return { hash, stored: 0 };
      }
      if (data) await writeFile(tmp, data, { flag: "wx", mode: OBJECT_MODE });
      await this.objectDir(hash);
      await rename(tmp, dest);
      added.push(hash);
      return { hash, stored: size };
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    } finally {
      await fh.close();
    }
  }

  private readonly madeDirs = new Set<string>();
  /** Contents this store instance has stored or found stored (one operation's lifetime). */
  private readonly seen = new Set<string>();
  private async objectDir(hash: string): Promise<void> {
    const d = join(this.objectsDir, hash.slice(0, 2));
    if (this.madeDirs.has(d)) return;
    await mkdir(d, { recursive: true });
    this.madeDirs.add(d);
  }

  /** Removes objects (and temp files of dead writers) that no manifest references. */
  async gc(): Promise<number> {
    const keep = new Set<string>();
    for (const n of await this.manifestNames()) {
      const m = await this.readManifest(n).catch(
        ignore("unreadable manifest: its objects are not kept by gc (it cannot restore anyway)"),
      );
      for (const e of m?.entries ?? []) if (e.hash) keep.add(e.hash);
    }
    let freed = 0;
    for (const d of await readdir(this.objectsDir).catch(() => [] as string[])) {
      const sub = join(this.objectsDir, d);
      if (d.startsWith(".tmp-")) {
        const pid = Number(d.split("-")[1]);
        if (pid === process.pid) continue;
        await rm(sub, { force: true });
        continue;
      }
      for (const h of await readdir(sub).catch(() => [] as string[])) {
        if (keep.has(h)) continue;
        freed +=
          (await stat(join(sub, h)).catch(ignore("object gone meanwhile: it frees nothing")))?.size ?? 0;
        await rm(join(sub, h), { force: true });
      }
    }
    // The stat cache may name contents just removed: those rows go (scan trusts a hit's object).
    const index = await this.readIndex();
    const kept = Object.fromEntries(Object.entries(index.entries).filter(([, row]) => keep.has(row[4])));
    if (Object.keys(kept).length !== Object.keys(index.entries).length) await this.writeIndex(kept);
    return freed;
  }

  /** Takes back objects a failed snapshot added (none of them is referenced by any manifest). */
  async removeObjects(hashes: string[]): Promise<void> {
    for (const h of hashes) await rm(this.objectPath(h), { force: true });
  }

  /**
   * Makes `root` hold exactly `m`: removes what the manifest lacks (or has with another type
   * or link target), writes files whose content may differ (new temp file beside them, then
   * rename), then sets modes, owners and mtimes, directories last and deepest first. Files
   * whose stat matches the stat cache with the wanted hash are left alone, so a reset after a
   * few changes rewrites those few. Idempotent: running it again after an interruption
   * finishes the job. With `useIndex` (restoring the workspace the store belongs to) the
   * stat cache is used and rewritten; a fork's new tree has nothing to do with it.
   */
  async restore(
    root: string,
    m: Manifest,
    opts: { useIndex: boolean },
  ): Promise<{ written: number; removed: number; bytes_written: number }> {
    const startNs = BigInt(Date.now()) * 1_000_000n;
    const old = opts.useIndex ? (await this.readIndex()).entries : {};
    const want = new Map(m.entries.map((e) => [e.path, e]));
    // 1. What is there now (lstat only).
    const have = new Map((await walkTree(root)).map(({ p, st }) => [p, st]));
    // 2. Removals: anything unwanted, or of another type, or a symlink with another target.
    let removed = 0;
    const removeList: string[] = [];
    for (const [p, st] of have) {
      const w = want.get(p);
      const kind = st.isDirectory()
        ? "dir"
        : st.isSymbolicLink()
          ? "symlink"
          : st.isFile()
            ? "file"
            : "other";
      let drop = !w || w.type !== kind;
      if (!drop && w!.type === "symlink") drop = (await readlink(join(root, p))) !== w!.target;
      if (drop) removeList.push(p);
    }
    // Parents first: rm -r of a directory takes its children (never following symlinks).
    removeList.sort();
    const gone = new Set<string>();
    for (const p of removeList) {
      if ([...ancestors(p)].some((a) => gone.has(a))) continue;
      await rm(join(root, p), { recursive: true, force: true });
      gone.add(p);
      removed++;
    }
    const present = (p: string) => have.has(p) && ![...ancestors(p), p].some((a) => gone.has(a));
    // 3. Directories (parents before children: entries are in walk order).
    for (const e of m.entries)
      if (e.type === "dir" && !present(e.path)) await mkdir(join(root, e.path), { mode: 0o700 });
    // 4. Files and symlinks.
    const index: Record<string, IndexRow> = {};
    let written = 0;
    let bytesWritten = 0;
    const root0 = isRoot();
    const myUid = process.getuid?.() ?? 0;
    const myGid = process.getgid?.() ?? 0;
    await mapLimit(
      m.entries.filter((e) => e.type === "file"),
      8,
      async (e) => {
        const full = join(root, e.path);
        const st = present(e.path) ? have.get(e.path) : undefined;
        const prev = old[e.path];
        const same =
          st &&
          prev &&
          prev[4] === e.hash &&
          prev[0] === String(st.ino) &&
          prev[1] === String(st.size) &&
          prev[2] === String(st.mtimeNs) &&
          prev[3] === String(st.ctimeNs);
        const sameMeta =
          same &&
          Number(st.mode & 0o7777n) === e.mode &&
          Number(st.uid) === e.uid &&
          Number(st.gid) === e.gid &&
          Math.abs(Number(st.mtimeNs / 1000n) / 1000 - e.mtime_ms) < 1;
        if (same && sameMeta) {
          index[e.path] = prev;
          return;
        }
        // Into an empty place directly; over an existing file through a temp file and a
        // rename, so an interruption never leaves a half-written file under its name.
        // copyFile gives the object's mode (0644): chmod and chown only when they differ.
        const tmp = st ? join(root, `${e.path}.pyro-restore-${randomBytes(4).toString("hex")}`) : full;
        await copyFile(this.objectPath(e.hash!), tmp, constants.COPYFILE_EXCL);
        if (root0 && (e.uid !== myUid || e.gid !== myGid)) await lchown(tmp, e.uid, e.gid);
        if (e.mode !== OBJECT_MODE) await chmod(tmp, e.mode);
        await utimes(tmp, e.mtime_ms / 1000, e.mtime_ms / 1000);
        if (tmp !== full) await rename(tmp, full);
        written++;
        bytesWritten += e.size ?? 0;
      },
    );
    for (const e of m.entries) {
      const full = join(root, e.path);
      if (e.type === "symlink") {
        if (!present(e.path)) {
          await symlink(e.target!, full);
          written++;
        }
        if (root0)
          await lchown(full, e.uid, e.gid).catch(
            ignore("chown of a restored symlink: the owner is cosmetic for a link, the restore goes on"),
          );
        await lutimes(full, e.mtime_ms / 1000, e.mtime_ms / 1000).catch(
          ignore("setting a restored symlink's times: cosmetic, the restore goes on"),
        );
      }
    }
    // 5. Directory metadata, deepest first (writing children moved their mtimes), then the root.
    const dirs = m.entries.filter((e) => e.type === "dir").reverse();
    for (const e of [...dirs, { ...m.root, path: "", type: "dir" as const }]) {
      const full = e.path ? join(root, e.path) : root;
      if (root0) await lchown(full, e.uid, e.gid);
      await chmod(full, e.mode);
      await utimes(full, e.mtime_ms / 1000, e.mtime_ms / 1000);
    }
    // 6. The stat cache, for files as they are now (only stats that can vouch: see RACY_NS).
    const unindexed = opts.useIndex ? m.entries.filter((e) => e.type === "file" && !index[e.path]) : [];
    await mapLimit(unindexed, 16, async (e) => {
      const st = await lstat(join(root, e.path), { bigint: true });
      if (st.ctimeNs < startNs - RACY_NS)
        index[e.path] = [String(st.ino), String(st.size), String(st.mtimeNs), String(st.ctimeNs), e.hash!];
    });
    if (opts.useIndex) await this.writeIndex(index);
    return { written, removed, bytes_written: bytesWritten };
  }

  /** Bytes the store holds on disk (objects and manifests, in allocated blocks). */
  async diskBytes(): Promise<number> {
    let total = 0;
    const add = async (dir: string): Promise<void> => {
      for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
        const p = join(dir, e.name);
        if (e.isDirectory()) await add(p);
        else
          total +=
            ((await lstat(p).catch(ignore("entry gone meanwhile: it takes no space")))?.blocks ?? 0) * 512;
      }
    };
    await add(this.dir);
    return total;
  }
}

/** Every path below `root` with its lstat, in a stable order (sorted, parents first); never follows a symlink. */
async function walkTree(root: string): Promise<{ p: string; st: BigIntStats }[]> {
  const out: { p: string; st: BigIntStats }[] = [];
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(rel ? join(root, rel) : root)).sort();
    const paths = names.map((n) => (rel ? `${rel}/${n}` : n));
    const stats = await Promise.all(paths.map((p) => lstat(join(root, p), { bigint: true })));
    for (const [i, p] of paths.entries()) {
      out.push({ p, st: stats[i]! });
      if (stats[i]!.isDirectory()) await walk(p);
    }
  };
  await walk("");
  return out;
}

/** Runs `fn` over `items`, at most `limit` at a time; the first failure is thrown once all settled. */
async function mapLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (next < items.length && failure === undefined) {
      const item = items[next++]!;
      await fn(item).catch((e: unknown) => {
        failure ??= e;
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure;
}

function* ancestors(p: string): Generator<string> {
  let i = p.indexOf("/");
  while (i >= 0) {
    yield p.slice(0, i);
    i = p.indexOf("/", i + 1);
  }
}

async function exists(p: string): Promise<boolean> {
  return (await stat(p).catch(ignore("not there: stat failed"))) !== undefined;
}

/** The error for a disk that filled up while a snapshot was written. */
export function diskFullError(e: unknown, where: string): PyroError | undefined {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code !== "ENOSPC" && code !== "EDQUOT") return undefined;
  return new PyroError(
    "disk_full",
    `no space left on the host for the snapshot (in ${where}); nothing was recorded and the workspace is unchanged`,
    "free space on the host (delete old snapshots or workspaces), then try again",
  );
}
