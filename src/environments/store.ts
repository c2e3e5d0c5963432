import { mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { PyroError } from "../core/errors.js";
import { ignore } from "../util/best-effort.js";
import { readJson, writeJsonAtomic } from "../util/json-store.js";
import { pidAlive, runCapture } from "../util/proc.js";
import { type BuildOptions, buildRootfs } from "./build.js";
import { withBuildLock } from "./build-lock.js";
import { ensureWritableCache } from "./cache-dir.js";
import {
  CATALOG,
  type EnvironmentRecipe,
  entryDirName,
  findRecipe,
  knownEnvironmentNames,
  recipeDigest,
} from "./catalog.js";
import { looksLikeImageRef, parseOciRef } from "./oci-ref.js";
import { OciStore } from "./oci-store.js";
import { USER_ENV_NAME } from "./recipe.js";
import { RecipeStore } from "./recipe-store.js";
import { DEFAULT_RUNTIME, type RuntimeConfig } from "./runtime-config.js";

export interface EnvironmentManifest {
  name: string;
  digest: string;
  recipe: EnvironmentRecipe;
  built_at: string;
  size_bytes: number;
  build_ms: number;
}

export type EnvironmentKind = "catalog" | "image" | "recipe";

export interface EnvironmentInfo {
  name: string;
  kind: EnvironmentKind;
  description: string;
  /** Recipe digest (catalog, recipe) or image manifest digest; null for an image not pulled yet. */
  digest: string | null;
  installed: boolean;
  path: string | null;
  size_bytes: number | null;
  built_at: string | null;
  /** Debian suite (or base image), variant and packages; null for images. */
  recipe: { suite: string; variant: string; packages: string[] } | null;
  /** What every process in this environment gets: Env, working directory (for run), user. */
  config: { env: Record<string, string>; working_dir: string | null; uid: number; gid: number } | null;
}

/** What `ensure` hands the runtime: the rootfs plus the process settings it asks for. */
export interface EnsuredEnvironment {
  rootfs: string;
  pulled: boolean;
  manifest: { digest: string; built_at: string; size_bytes: number };
  runtime: RuntimeConfig;
  bytes_downloaded: number;
  layers_downloaded: number;
  layers_cached: number;
}

type EnsureOpts = BuildOptions;

const TMP_PREFIX = ".tmp-";

/**
 * The content-addressed environment cache. An entry directory appears only by an atomic
 * rename of a fully built one whose manifest was written last, so an interrupted build
 * never leaves a half-valid entry: at worst a `.tmp-*` directory that the next pull or
 * `env prune` removes.
 */
export class EnvironmentStore {
  readonly images: OciStore;
  readonly recipes: RecipeStore;

  /**
   * `shared`: read-only cache dirs of the same layout, searched after the user's own (the
   * host-wide one `setup-host.sh` fills, see paths.ts). Never written, built into or pruned.
   */
  constructor(
    private readonly dir: string,
    env: NodeJS.ProcessEnv = process.env,
    private readonly shared: readonly string[] = [],
  ) {
    this.images = new OciStore(dir, env);
    this.recipes = new RecipeStore(dir, this.images, env);
  }

  /**
   * Which kind of environment a name is: a catalog name, else an image reference (it has
   * a `/` or `@`), else a user environment built from a recipe.
   */
  async kindOf(name: string): Promise<EnvironmentKind> {
    if (CATALOG.some((c) => c.name === name)) return "catalog";
    if (looksLikeImageRef(name)) {
      parseOciRef(name);
      return "image";
    }
    if (USER_ENV_NAME.test(name) && (await this.recipes.record(name))) return "recipe";
    const shown = JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name);
    const users = (await this.recipes.records()).map((r) => r.name);
    throw new PyroError(
      "unknown_environment",
      `unknown environment ${shown}; known environments: ${[...knownEnvironmentNames(), ...users].join(", ")}`,
      [
        "see them with ",
        { op: "vm_list_environments" },
        "; an OCI image needs its registry, e.g. docker.io/library/python:3.12-slim, and ",
        { op: "env_build" },
        " makes your own",
      ],
    );
  }

  /**
   * The shared (read-only) cache dirs and the catalog environments each holds a valid build
   * of: what `pyro doctor` reports, so a user knows whether a first run reads the shared one
   * or builds their own.
   */
  async sharedCatalog(): Promise<{ dir: string; environments: string[] }[]> {
    const out: { dir: string; environments: string[] }[] = [];
    for (const dir of this.shared) {
      const environments: string[] = [];
      for (const r of CATALOG) {
        const m = await readJson<EnvironmentManifest>(join(dir, entryDirName(r), "manifest.json")).catch(
          ignore("no readable manifest there: the shared cache does not hold this environment"),
        );
        if (m?.digest === recipeDigest(r)) environments.push(r.name);
      }
      out.push({ dir, environments });
    }
    return out;
  }

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
      const m = await readJson<EnvironmentManifest>(join(entry, "manifest.json")).catch(
        ignore("no readable manifest in this cache: try the next"),
      );
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
    const kind = await this.kindOf(name);
    if (kind === "image") return this.imageInfo(name);
    if (kind === "recipe") return this.recipeInfo(name);
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
      kind: "catalog",
      recipe: { suite: r.suite, variant: r.variant, packages: [...r.include] },
      config: null,
    };
  }

  private async imageInfo(name: string): Promise<EnvironmentInfo> {
    const ref = parseOciRef(name);
    const hit = await this.images.local(name);
    const m = hit?.manifest;
    return {
      name: ref.canonical,
      kind: "image",
      description: `OCI image ${ref.canonical}`,
      digest: m?.digest ?? ref.digest ?? null,
      installed: m !== undefined,
      path: m ? join(this.images.entryPath(m.digest), "rootfs") : null,
      size_bytes: m?.size_bytes ?? null,
      built_at: m?.built_at ?? null,
      recipe: null,
      config: m ? configView(m.runtime) : null,
    };
  }

  private async recipeInfo(name: string): Promise<EnvironmentInfo> {
    const rec = await this.recipes.record(name);
    const m = rec ? await this.recipes.entry(rec.digest) : undefined;
    return {
      name,
      kind: "recipe",
      description: m?.description ?? `Built from ${rec?.recipe_path ?? "a recipe"}`,
      digest: rec?.digest ?? null,
      installed: m !== undefined,
      path: m ? join(this.recipes.entryPath(m.digest), "rootfs") : null,
      size_bytes: m?.size_bytes ?? null,
      built_at: m?.built_at ?? null,
      recipe: m
        ? { suite: m.base, variant: m.base.includes("/") ? "image" : "minbase", packages: [...m.packages] }
        : null,
      config: m ? configView(m.runtime) : null,
    };
  }

  /** The catalog, then pulled images, then user environments. */
  async list(): Promise<EnvironmentInfo[]> {
    const catalog = await Promise.all(CATALOG.map((r) => this.info(r.name)));
    const images = await Promise.all((await this.images.refs()).map((r) => this.imageInfo(r.reference)));
    const users = await Promise.all((await this.recipes.records()).map((r) => this.recipeInfo(r.name)));
    return [...catalog, ...images, ...users];
  }

  /**
   * `env pull`: a catalog environment is built if missing; an image reference is resolved
   * in its registry again (a moved tag is pulled; shared layers are not downloaded twice);
   * a user environment is rebuilt from its recipe if that changed.
   */
  async pull(name: string, opts: EnsureOpts = {}): Promise<EnsuredEnvironment> {
    const kind = await this.kindOf(name);
    if (kind !== "catalog") await ensureWritableCache(this.dir);
    if (kind === "image") {
      const r = await this.images.pull(name, opts);
      return { ...r, runtime: r.manifest.runtime };
    }
    if (kind === "recipe") {
      const rec = (await this.recipes.record(name))!;
      const r = await this.recipes.build(rec.recipe_path, opts);
      const rootfs = join(this.recipes.entryPath(r.manifest.digest), "rootfs");
      return { rootfs, pulled: r.built, manifest: r.manifest, runtime: r.manifest.runtime, ...NO_BYTES };
    }
    return this.ensure(name, opts);
  }

  /**
   * The process settings of an installed environment, read from its manifest only (never
   * pulls or builds): for commands in sandboxes that already exist.
   */
  async runtimeConfig(name: string): Promise<RuntimeConfig> {
    const kind = await this.kindOf(name).catch(() => "catalog" as const);
    if (kind === "image") return (await this.images.local(name))?.manifest.runtime ?? DEFAULT_RUNTIME;
    if (kind === "recipe") return (await this.recipes.local(name))?.runtime ?? DEFAULT_RUNTIME;
    return DEFAULT_RUNTIME;
  }

  /** Every installed environment's manifest (for keeping the microVM images made from them). */
  async installedManifests(): Promise<{ digest: string; built_at: string }[]> {
    const out: { digest: string; built_at: string }[] = [];
    for (const e of await this.list()) {
      if (!e.installed || !e.path) continue;
      const m = await readJson<{ digest: string; built_at: string }>(
        join(e.path, "..", "manifest.json"),
      ).catch(ignore("installed environment without a readable manifest: left out"));
      if (m) out.push(m);
    }
    return out;
  }

  /** Returns the rootfs of `name`, building it first if it is not cached. */
  async ensure(name: string, opts: EnsureOpts = {}): Promise<EnsuredEnvironment> {
    const kind = await this.kindOf(name);
    if (kind === "image") {
      // A pulled image is used as it is: `run` never waits on the registry once it has one.
      const hit = await this.images.local(name);
      if (hit)
        return {
          rootfs: join(this.images.entryPath(hit.manifest.digest), "rootfs"),
          pulled: false,
          manifest: hit.manifest,
          runtime: hit.manifest.runtime,
          ...NO_BYTES,
        };
      return this.pull(name, opts);
    }
    if (kind === "recipe") {
      const m = await this.recipes.local(name);
      if (m)
        return {
          rootfs: join(this.recipes.entryPath(m.digest), "rootfs"),
          pulled: false,
          manifest: m,
          runtime: m.runtime,
          ...NO_BYTES,
        };
      return this.pull(name, opts);
    }
    const base = await this.ensureCatalog(name, opts);
    return { ...base, runtime: DEFAULT_RUNTIME, ...NO_BYTES };
  }

  private async ensureCatalog(
    name: string,
    opts: EnsureOpts,
  ): Promise<{ rootfs: string; pulled: boolean; manifest: EnvironmentManifest }> {
    const r = findRecipe(name);
    const existing = await this.manifest(name);
    if (existing) return { rootfs: join(this.entryPath(r), "rootfs"), pulled: false, manifest: existing };
    await ensureWritableCache(this.dir);
    return withBuildLock(
      `${this.entryPath(r)}.build`,
      async () => {
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
      },
      opts.signal,
    );
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
    // User environments first: the images they were built from are then kept by image prune.
    const users = await this.recipes.prune(opts);
    const images = await this.images.prune({
      ...opts,
      keepDigests: opts.all ? new Set() : await this.recipes.baseImageDigests(),
    });
    const removed: string[] = [...users.removed, ...images.removed];
    let freed = users.bytes_freed + images.bytes_freed;
    for (const n of await readdir(this.dir).catch(() => [] as string[])) {
      if (n.endsWith(".lock")) continue;
      // Owned by the image and recipe stores (pruned above).
      if (n === "oci" || n === "user" || n.startsWith("oci-") || n.startsWith("recipe-")) continue;
      if (n.startsWith(`${TMP_PREFIX}oci-`) || n.startsWith(`${TMP_PREFIX}recipe-`)) {
        const pid = Number(/-(\d+)$/.exec(n)?.[1]);
        if (pidAlive(pid)) continue;
      }
      if (keep.has(n)) continue;
      // A build in progress in another process: its temp dir ends with that process's pid.
      const building = n.startsWith(TMP_PREFIX) ? Number(/-(\d+)$/.exec(n)?.[1]) : Number.NaN;
      if (Number.isInteger(building) && building !== process.pid && pidAlive(building)) continue;
      const p = join(this.dir, n);
      const st = await stat(p).catch(ignore("environment prune: entry gone meanwhile"));
      if (!st?.isDirectory()) continue;
      const m = await readJson<EnvironmentManifest>(join(p, "manifest.json")).catch(
        ignore("environment prune: no readable manifest, its size is measured instead"),
      );
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

const NO_BYTES = { bytes_downloaded: 0, layers_downloaded: 0, layers_cached: 0 };

function configView(r: RuntimeConfig): NonNullable<EnvironmentInfo["config"]> {
  return { env: r.env, working_dir: r.cwd, uid: r.uid, gid: r.gid };
}

async function duBytes(path: string): Promise<number> {
  const r = await runCapture("du", ["-sb", path], { timeoutMs: 60_000 });
  const n = Number.parseInt(r.stdout.split(/\s/)[0] ?? "", 10);
  if (!Number.isFinite(n))
    throw new PyroError("engine_failure", `could not measure ${path}: ${r.stderr.trim()}`);
  return n;
}
