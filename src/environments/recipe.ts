import { createHash } from "node:crypto";
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import { dirname, isAbsolute, join, posix, resolve } from "node:path";
import * as z from "zod";
import { PyroError } from "../core/errors.js";
import { CATALOG } from "./catalog.js";
import { looksLikeImageRef } from "./oci-ref.js";

/**
 * A user recipe (`pyro env build FILE`): a small JSON document naming a base (a Debian
 * suite, a catalog environment, or an OCI image), packages, files to copy in, commands to
 * run, and the Env/WorkingDir processes get. Built once per digest: the digest covers the
 * recipe's fields and the *contents* of the files it copies, so editing a copied file
 * rebuilds and touching nothing is a cache hit.
 */

export const USER_ENV_NAME = /^[a-z0-9][a-z0-9._-]{0,62}(?::[a-z0-9][a-z0-9._-]{0,62})?$/;

const RecipeFile = z
  .object({
    name: z.string().regex(USER_ENV_NAME, "a lowercase name like my-env or my-env:1 (no /)"),
    description: z.string().max(500).optional(),
    base: z.union([
      z.string().min(1).max(300),
      z.object({ suite: z.string().regex(/^[a-z]+$/) }).strict(),
      z.object({ image: z.string().min(1).max(300) }).strict(),
    ]),
    packages: z
      .array(z.string().regex(/^[a-z0-9][a-z0-9+.-]*(?:=[A-Za-z0-9.+~:-]+)?$/))
      .max(500)
      .default([]),
    files: z
      .array(
        z
          .object({
            src: z.string().min(1),
            dest: z.string().regex(/^\//, "an absolute path in the environment"),
          })
          .strict(),
      )
      .max(200)
      .default([]),
    run: z.array(z.string().min(1).max(100_000)).max(100).default([]),
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).default({}),
    workdir: z.string().regex(/^\//).optional(),
  })
  .strict();

export type UserRecipe = z.infer<typeof RecipeFile>;

export interface ResolvedRecipe {
  recipe: UserRecipe;
  /** Absolute path of the recipe file; `files[].src` are relative to its directory. */
  path: string;
  base:
    | { kind: "debian"; suite: string; variant: "minbase"; include: string[] }
    | { kind: "image"; ref: string };
  files: { src: string; dest: string }[];
  /** sha256 of each copied tree, in `files` order. */
  fileDigests: string[];
}

function invalid(path: string, msg: string, hint?: string): PyroError {
  return new PyroError(
    "recipe_invalid",
    `recipe ${path}: ${msg}`,
    hint ??
      'see "Recipes" in docs/public-contract.md for the fields (name, base, packages, files, run, env, workdir)',
  );
}

/** Hash of a file or directory tree: names, types, modes, link targets and contents. */
async function treeDigest(path: string): Promise<string> {
  const h = createHash("sha256");
  const walk = async (p: string, rel: string): Promise<void> => {
    const st = await lstat(p);
    h.update(`${rel}\0${st.mode}\0`);
    if (st.isSymbolicLink()) h.update(`L${await readlink(p)}\0`);
    else if (st.isFile()) h.update(await readFile(p));
    else if (st.isDirectory())
      for (const n of (await readdir(p)).sort()) await walk(join(p, n), `${rel}/${n}`);
    else throw new Error(`${p} is neither a file, a directory nor a symlink`);
  };
  await walk(path, ".");
  return h.digest("hex");
}

export async function loadRecipe(file: string): Promise<ResolvedRecipe> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new PyroError(
      "recipe_invalid",
      `cannot read recipe ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      "give the path of a JSON recipe file",
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw invalid(file, `not valid JSON: ${(e as Error).message}`);
  }
  const parsed = RecipeFile.safeParse(json);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw invalid(file, `${i.path.join(".") || "(top level)"}: ${i.message}`);
  }
  const recipe = parsed.data;
  if (CATALOG.some((c) => c.name === recipe.name))
    throw invalid(
      file,
      `name ${recipe.name} is a catalog environment`,
      "pick another name for your environment",
    );
  let base: ResolvedRecipe["base"];
  const b = recipe.base;
  if (typeof b === "object" && "suite" in b)
    base = { kind: "debian", suite: b.suite, variant: "minbase", include: [] };
  else if (typeof b === "object") base = { kind: "image", ref: b.image };
  else if (looksLikeImageRef(b)) base = { kind: "image", ref: b };
  else {
    const c = CATALOG.find((x) => x.name === b);
    if (!c)
      throw invalid(
        file,
        `base ${JSON.stringify(b)} is neither a catalog environment (${CATALOG.map((x) => x.name).join(", ")}) nor an image reference`,
      );
    base = { kind: "debian", suite: c.suite, variant: "minbase", include: [...c.include] };
  }
  if (base.kind === "image" && (recipe.packages.length || recipe.run.length))
    throw invalid(
      file,
      "packages and run need a Debian base (an image base takes files, env and workdir)",
      'use "base": "debian:12" (or {"suite": "bookworm"}), or install the packages in the image itself',
    );
  const dir = dirname(resolve(file));
  const files: ResolvedRecipe["files"] = [];
  const fileDigests: string[] = [];
  for (const f of recipe.files) {
    const src = isAbsolute(f.src) ? f.src : resolve(dir, f.src);
    const dest = posix.normalize(f.dest);
    if (dest === "/" || f.dest.split("/").includes(".."))
      throw invalid(file, `files: dest ${JSON.stringify(f.dest)} must be a path below / without ..`);
    try {
      fileDigests.push(await treeDigest(src));
    } catch (e) {
      throw invalid(
        file,
        `files: cannot read ${src}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
    files.push({ src, dest });
  }
  return { recipe, path: resolve(file), base, files, fileDigests };
}

const RECIPE_BUILDER_VERSION = 1;

/** The cache key. `baseDigest` is the base image's manifest digest (image bases only). */
export function userRecipeDigest(r: ResolvedRecipe, baseDigest?: string): string {
  const canonical = JSON.stringify({
    v: RECIPE_BUILDER_VERSION,
    base: r.base.kind === "image" ? { image: baseDigest ?? r.base.ref } : r.base,
    packages: [...r.recipe.packages].sort(),
    files: r.files.map((f, i) => ({ dest: f.dest, digest: r.fileDigests[i] })),
    run: r.recipe.run,
    env: Object.entries(r.recipe.env).sort(),
    workdir: r.recipe.workdir ?? null,
  });
  return `sha256:${createHash("sha256").update(canonical).digest("hex")}`;
}
