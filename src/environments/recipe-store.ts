import { createHash } from "node:crypto";
import { mkdir, readdir, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { create as tarCreate, extract as tarExtract } from "tar";
import { PyroError } from "../core/errors.js";
import { ignore } from "../util/best-effort.js";
import { readEntryManifest, readJson, readJsonDir, writeJsonAtomic } from "../util/json-store.js";
import { pidAlive, runCapture } from "../util/proc.js";
import { type BuildOptions, buildRootfs } from "./build.js";
import { withBuildLock } from "./build-lock.js";
import type { OciStore } from "./oci-store.js";
import { loadRecipe, type ResolvedRecipe, userRecipeDigest } from "./recipe.js";
import { DEFAULT_RUNTIME, duBytes, mkdirInRootfs, type RuntimeConfig } from "./runtime-config.js";

/**
 * User environments built from recipes. `recipe-<hex16>/` holds one build (rootfs/ +
 * manifest.json, renamed into place when complete); `user/<name>.json` says which build a
 * name points at. A rebuild with an unchanged recipe (and unchanged copied files) finds the
 * entry by digest and returns at once.
 */

export interface RecipeEntryManifest {
  kind: "recipe";
  name: string;
  description: string;
  digest: string;
  recipe_path: string;
  base: string;
  packages: string[];
  runtime: RuntimeConfig;
  built_at: string;
  size_bytes: number;
  build_ms: number;
}

export interface UserEnvRecord {
  name: string;
  digest: string;
  recipe_path: string;
  built_at: string;
}

const TMP_PREFIX = ".tmp-";
export const recipeEntryName = (digest: string) => `recipe-${digest.slice(7, 23)}`;

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export class RecipeStore {
  private readonly usersDir: string;

  constructor(
    private readonly dir: string,
    private readonly images: OciStore,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.usersDir = join(dir, "user");
  }

  private userFile(name: string): string {
    return join(
      this.usersDir,
      `${name.replace(/:/g, "_")}-${createHash("sha256").update(name).digest("hex").slice(0, 8)}.json`,
    );
  }

  entryPath(digest: string): string {
    return join(this.dir, recipeEntryName(digest));
  }

  entry(digest: string): Promise<RecipeEntryManifest | undefined> {
    return readEntryManifest<RecipeEntryManifest>(this.entryPath(digest), digest);
  }

  async record(name: string): Promise<UserEnvRecord | undefined> {
    return readJson<UserEnvRecord>(this.userFile(name)).catch(
      ignore("no readable record of this user environment: treated as absent"),
    );
  }

  async local(name: string): Promise<RecipeEntryManifest | undefined> {
    const r = await this.record(name);
    return r ? this.entry(r.digest) : undefined;
  }

  records(): Promise<UserEnvRecord[]> {
    return readJsonDir<UserEnvRecord>(
      this.usersDir,
      (r) => !!r.name && !!r.digest,
      (r) => r.name,
    );
  }

  /** Builds the recipe at `file` unless a build with the same digest exists. */
  async build(
    file: string,
    opts: BuildOptions = {},
  ): Promise<{ manifest: RecipeEntryManifest; built: boolean }> {
    const r = await loadRecipe(file);
    let baseDigest: string | undefined;
    let baseRootfs: string | undefined;
    let baseRuntime: RuntimeConfig = DEFAULT_RUNTIME;
    if (r.base.kind === "image") {
      // A cached base image is used as it is (no registry round trip), so an unchanged
      // recipe is a cache hit offline; `pyro env pull REF` refreshes the base.
      const local = await this.images.local(r.base.ref);
      const img = local
        ? { manifest: local.manifest, rootfs: join(this.images.entryPath(local.manifest.digest), "rootfs") }
        : await this.images.pull(r.base.ref, opts);
      baseDigest = img.manifest.digest;
      baseRootfs = img.rootfs;
      baseRuntime = img.manifest.runtime;
    }
    const digest = userRecipeDigest(r, baseDigest);
    const done = await this.entry(digest);
    if (done) {
      await this.point(r, digest);
      return { manifest: done, built: false };
    }
    return withBuildLock(
      `${this.entryPath(digest)}.build`,
      async () => {
        const again = await this.entry(digest);
        if (again) {
          await this.point(r, digest);
          return { manifest: again, built: false };
        }
        const started = performance.now();
        const tmp = join(this.dir, `${TMP_PREFIX}${recipeEntryName(digest)}-${process.pid}`);
        await this.removeTemps(recipeEntryName(digest));
        try {
          await mkdir(tmp, { recursive: true });
          const stage = join(tmp, "stage");
          await this.stageFiles(r, stage);
          const rootfs = join(tmp, "rootfs");
          if (r.base.kind === "debian") {
            const hooks: string[] = [];
            if (r.files.length) hooks.push(`sync-in ${stage} /`);
            if (r.recipe.workdir) hooks.push(`mkdir -p "$1"${shq(r.recipe.workdir)}`);
            const envArgs = Object.entries(r.recipe.env)
              .map(([k, v]) => shq(`${k}=${v}`))
              .join(" ");
            for (const cmd of r.recipe.run)
              hooks.push(`chroot "$1" /usr/bin/env ${envArgs} /bin/sh -c ${shq(cmd)}`);
            await buildRootfs(
              {
                name: r.recipe.name,
                description: r.recipe.description ?? "",
                suite: r.base.suite,
                variant: r.base.variant,
                include: [...new Set([...r.base.include, ...r.recipe.packages])],
                builderVersion: 1,
              },
              rootfs,
              { ...opts, env: this.env, hooks },
            );
          } else {
            opts.onProgress?.({ phase: "extract", message: `copying the base image ${r.base.ref}` });
            const cp = await runCapture("cp", ["-a", "--reflink=auto", baseRootfs!, rootfs], {
              timeoutMs: 30 * 60_000,
            });
            if (cp.exitCode !== 0)
              throw new PyroError(
                "environment_build_failed",
                `copying the base image failed: ${cp.stderr.trim()}`,
              );
            if (r.files.length)
              await copyIntoRootfs(
                stage,
                rootfs,
                r.files.map((f) => `.${f.dest}`),
              );
            if (r.recipe.workdir && !(await mkdirInRootfs(rootfs, r.recipe.workdir)))
              throw new PyroError(
                "environment_build_failed",
                `workdir ${r.recipe.workdir} cannot be created in the base image: a part of it is a symlink or a file`,
                "pick a workdir made of real directories in the image",
              );
          }
          await rm(stage, { recursive: true, force: true });
          const runtime: RuntimeConfig = {
            env: { ...baseRuntime.env, ...r.recipe.env },
            cwd: r.recipe.workdir ?? baseRuntime.cwd,
            uid: baseRuntime.uid,
            gid: baseRuntime.gid,
          };
          const manifest: RecipeEntryManifest = {
            kind: "recipe",
            name: r.recipe.name,
            description: r.recipe.description ?? `Built from ${r.path}`,
            digest,
            recipe_path: r.path,
            base: r.base.kind === "image" ? `${r.base.ref}@${baseDigest}` : r.base.suite,
            packages: [...r.recipe.packages],
            runtime,
            built_at: new Date().toISOString(),
            size_bytes: await duBytes(rootfs),
            build_ms: Math.round(performance.now() - started),
          };
          await writeJsonAtomic(join(tmp, "manifest.json"), manifest);
          await rm(this.entryPath(digest), { recursive: true, force: true });
          await rename(tmp, this.entryPath(digest));
          await this.point(r, digest);
          return { manifest, built: true };
        } catch (e) {
          await rm(tmp, { recursive: true, force: true });
          throw e;
        }
      },
      opts.signal,
    );
  }

  private async point(r: ResolvedRecipe, digest: string): Promise<void> {
    const rec: UserEnvRecord = {
      name: r.recipe.name,
      digest,
      recipe_path: r.path,
      built_at: new Date().toISOString(),
    };
    await writeJsonAtomic(this.userFile(r.recipe.name), rec);
  }

  /** The files to copy, laid out as they will appear in the rootfs (cp -a: links stay links). */
  private async stageFiles(r: ResolvedRecipe, stage: string): Promise<void> {
    await mkdir(stage, { recursive: true });
    for (const f of r.files) {
      const to = join(stage, f.dest);
      await mkdir(dirname(to), { recursive: true });
      const cp = await runCapture("cp", ["-a", "-T", f.src, to], { timeoutMs: 10 * 60_000 });
      if (cp.exitCode !== 0)
        throw new PyroError("recipe_invalid", `recipe ${r.path}: cannot copy ${f.src}: ${cp.stderr.trim()}`);
    }
  }

  private async removeTemps(entry: string): Promise<void> {
    for (const n of await readdir(this.dir).catch(() => [] as string[])) {
      if (!n.startsWith(`${TMP_PREFIX}${entry}-`)) continue;
      const pid = Number(/-(\d+)$/.exec(n)?.[1]);
      if (pid !== process.pid && pidAlive(pid)) continue;
      await rm(join(this.dir, n), { recursive: true, force: true });
    }
  }

  /** Builds no name points at (or all), plus the records of names whose build is gone. */
  async prune(opts: { all?: boolean } = {}): Promise<{ removed: string[]; bytes_freed: number }> {
    const removed: string[] = [];
    let freed = 0;
    const records = await this.records();
    if (opts.all) await rm(this.usersDir, { recursive: true, force: true });
    const keep = new Set(opts.all ? [] : records.map((r) => recipeEntryName(r.digest)));
    for (const n of await readdir(this.dir).catch(() => [] as string[])) {
      if (!n.startsWith("recipe-") || n.endsWith(".lock") || keep.has(n)) continue;
      const m = await readJson<RecipeEntryManifest>(join(this.dir, n, "manifest.json")).catch(
        ignore("no readable entry manifest: its size is measured on disk instead"),
      );
      freed += m?.size_bytes ?? (await duBytes(join(this.dir, n)).catch(() => 0));
      await rm(join(this.dir, n), { recursive: true, force: true });
      removed.push(n);
    }
    return { removed, bytes_freed: freed };
  }

  /** Base image digests the kept user environments were built from (kept by image prune). */
  async baseImageDigests(): Promise<Set<string>> {
    const out = new Set<string>();
    for (const r of await this.records()) {
      const m = await this.entry(r.digest);
      const d = m?.base.split("@")[1];
      if (d) out.add(d);
    }
    return out;
  }
}

/**
 * Copies the staged tree into an image's rootfs with node-tar, which refuses to write
 * through a symlink it meets on the way (an image may point /opt at the host's /): the copy
 * stays inside the rootfs or fails.
 */
async function copyIntoRootfs(stage: string, rootfs: string, paths: string[]): Promise<void> {
  try {
    await pipeline(
      // Only the copied paths: their parents (made by mkdir while staging) must not reset the
      // modes of the image's own directories (/tmp stays 1777).
      tarCreate({ cwd: stage, portable: false, follow: false }, paths),
      tarExtract({ cwd: rootfs, strict: true, preserveOwner: true, unlink: true }),
    );
  } catch (e) {
    throw new PyroError(
      "environment_build_failed",
      `copying the recipe's files into the image failed: ${(e as Error).message}`,
      "a destination path in the base image may be a symlink; copy to a real directory",
    );
  }
}
