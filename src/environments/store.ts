import { mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { PyroError } from "../errors.js";
import { readJson, withLock, writeJsonAtomic } from "../util/json-store.js";
import { pidAlive, runCapture } from "../util/proc.js";
import { type BuildProgress, buildRootfs } from "./build.js";
import { CATALOG, type EnvironmentRecipe, entryDirName, findRecipe, recipeDigest } from "./catalog.js";

export interface EnvironmentManifest {
  name: string;
  digest: string;
  recipe: EnvironmentRecipe;
  built_at: string;
  size_bytes: number;
  build_ms: number;
}

export interface EnvironmentInfo {
  name: string;
  description: string;
  digest: string;
  installed: boolean;
  path: string | null;
  size_bytes: number | null;
  built_at: string | null;
  recipe: { suite: string; variant: string; packages: string[] };
}

const TMP_PREFIX = ".tmp-";

/**
 * The content-addressed environment cache. An entry directory appears only by an atomic
 * rename of a fully built one whose manifest was written last, so an interrupted build
 * never leaves a half-valid entry: at worst a `.tmp-*` directory that the next pull or
 * `env prune` removes.
 */
export class EnvironmentStore {
  /**
   * `shared`: read-only cache dirs of the same layout, searched after the user's own (the
   * host-wide one `setup-host.sh` fills, see paths.ts). Never written, built into or pruned.
   */
  constructor(
    private readonly dir: string,
    private readonly shared: readonly string[] = [],
  ) {}

  /** The user's own entry, or else a shared one that holds a valid build of the recipe. */
  private entryPath(r: EnvironmentRecipe): string {
    return this.found.get(r.name) ?? join(this.dir, entryDirName(r));
  }

  /** Shared entries found by manifest(), by environment name. */
  private readonly found = new Map<string, string>();

  rootfsPath(name: string): string {
    return join(this.entryPath(findRecipe(name)), "rootfs");
  }

  async manifest(name: string): Promise<EnvironmentManifest | undefined> {
    const r = findRecipe(name);
    for (const dir of [this.dir, ...this.shared]) {
      const entry = join(dir, entryDirName(r));
      const m = await readJson<EnvironmentManifest>(join(entry, "manifest.json")).catch(() => undefined);
      if (m && m.digest === recipeDigest(r)) {
        if (dir === this.dir) this.found.delete(r.name);
        else this.found.set(r.name, entry);
        return m;
      }
    }
    this.found.delete(r.name);
    return undefined;
  }

  async info(name: string): Promise<EnvironmentInfo> {
    const r = findRecipe(name);
    const m = await this.manifest(name);
    return {
      name: r.name,
      description: r.description,
      digest: recipeDigest(r),
      installed: m !== undefined,
      path: m ? join(this.entryPath(r), "rootfs") : null,
      size_bytes: m?.size_bytes ?? null,
      built_at: m?.built_at ?? null,
      recipe: { suite: r.suite, variant: r.variant, packages: [...r.include] },
    };
  }

  list(): Promise<EnvironmentInfo[]> {
    return Promise.all(CATALOG.map((r) => this.info(r.name)));
  }

  /** Returns the rootfs of `name`, building it first if it is not cached. */
  async ensure(
    name: string,
    opts: { onProgress?: (p: BuildProgress) => void; signal?: AbortSignal } = {},
  ): Promise<{ rootfs: string; pulled: boolean; manifest: EnvironmentManifest }> {
    const r = findRecipe(name);
    const existing = await this.manifest(name);
    if (existing) return { rootfs: join(this.entryPath(r), "rootfs"), pulled: false, manifest: existing };
    await mkdir(this.dir, { recursive: true });
    return withLock(`${this.entryPath(r)}.build`, async () => {
      // Another process may have finished the build while we waited for the lock.
      const again = await this.manifest(name);
      if (again) return { rootfs: join(this.entryPath(r), "rootfs"), pulled: false, manifest: again };
      await this.removeTemps(entryDirName(r));
      this.found.delete(r.name);
      const tmp = join(this.dir, `${TMP_PREFIX}${entryDirName(r)}-${process.pid}`);
      const started = performance.now();
      try {
        await mkdir(tmp, { recursive: true });
        await buildRootfs(r, join(tmp, "rootfs"), opts);
        opts.onProgress?.({ phase: "finish", message: "measuring and sealing the cache entry" });
        const manifest: EnvironmentManifest = {
          name: r.name,
          digest: recipeDigest(r),
          recipe: r,
          built_at: new Date().toISOString(),
          size_bytes: await duBytes(join(tmp, "rootfs")),
          build_ms: Math.round(performance.now() - started),
        };
        await writeJsonAtomic(join(tmp, "manifest.json"), manifest);
        await rm(this.entryPath(r), { recursive: true, force: true });
        await rename(tmp, this.entryPath(r));
        return { rootfs: join(this.entryPath(r), "rootfs"), pulled: true, manifest };
      } catch (e) {
        await rm(tmp, { recursive: true, force: true });
        throw e;
      }
    });
  }

  private async removeTemps(entry: string): Promise<void> {
    for (const n of await readdir(this.dir).catch(() => [] as string[])) {
      if (n.startsWith(`${TMP_PREFIX}${entry}-`))
        await rm(join(this.dir, n), { recursive: true, force: true });
    }
  }

  /**
   * Removes cache entries no recipe points at any more and interrupted builds; with `all`,
   * every installed environment too.
   */
  async prune(opts: { all?: boolean } = {}): Promise<{ removed: string[]; bytes_freed: number }> {
    const keep = new Set(opts.all ? [] : CATALOG.map(entryDirName));
    const removed: string[] = [];
    let freed = 0;
    for (const n of await readdir(this.dir).catch(() => [] as string[])) {
      if (n.endsWith(".lock")) continue;
      if (keep.has(n)) continue;
      // A build in progress in another process: its temp dir ends with that process's pid.
      const building = n.startsWith(TMP_PREFIX) ? Number(/-(\d+)$/.exec(n)?.[1]) : Number.NaN;
      if (Number.isInteger(building) && building !== process.pid && pidAlive(building)) continue;
      const p = join(this.dir, n);
      const st = await stat(p).catch(() => undefined);
      if (!st?.isDirectory()) continue;
      const m = await readJson<EnvironmentManifest>(join(p, "manifest.json")).catch(() => undefined);
      freed += m?.size_bytes ?? (await duBytes(p));
      await rm(p, { recursive: true, force: true });
      removed.push(n);
    }
    return { removed, bytes_freed: freed };
  }

  /** The installed rootfs of any catalog environment, for engine probes. */
  async anyInstalledRootfs(): Promise<string | undefined> {
    for (const r of CATALOG) if (await this.manifest(r.name)) return join(this.entryPath(r), "rootfs");
    return undefined;
  }
}

async function duBytes(path: string): Promise<number> {
  const r = await runCapture("du", ["-sb", path], { timeoutMs: 60_000 });
  const n = Number.parseInt(r.stdout.split(/\s/)[0] ?? "", 10);
  if (!Number.isFinite(n))
    throw new PyroError("engine_failure", `could not measure ${path}: ${r.stderr.trim()}`);
  return n;
}
