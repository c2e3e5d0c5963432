import { PyroError } from "../core/errors.js";

/**
 * An environment is a recipe for a root filesystem. The recipe is hashed, and that digest
 * names the cache entry: change a recipe and it is a new entry, never a stale one.
 */
export interface EnvironmentRecipe {
  name: string;
  description: string;
  /** Debian suite given to mmdebstrap. */
  suite: string;
  variant: "minbase" | "essential" | "apt" | "required";
  include: string[];
  /** Bumped when the way pyro builds (not the recipe) changes what ends up in the rootfs. */
  builderVersion: number;
  /**
   * Notable commands the environment has beyond the shell, coreutils, grep, sed, find, tar,
   * gzip, diff and perl that every one has: declared (the package list does not say which
   * commands a package brings), not part of the digest, and checked against each built
   * rootfs by test/unit/catalog.test.ts. A command that exits 127 is looked up here to say
   * which environments have it (environments/command-hint.ts).
   */
  commands?: readonly string[];
}

const BUILDER_VERSION = 1;

export const CATALOG: readonly EnvironmentRecipe[] = [
  {
    name: "debian:12",
    description: "Debian 12 with Git preinstalled for common agent workflows (the default).",
    suite: "bookworm",
    variant: "minbase",
    include: ["ca-certificates", "git"],
    builderVersion: BUILDER_VERSION,
    commands: ["git"],
  },
  {
    name: "debian:12-base",
    description: "Minimal Debian 12 for shell and core Unix tooling.",
    suite: "bookworm",
    variant: "minbase",
    include: ["ca-certificates"],
    builderVersion: BUILDER_VERSION,
    commands: [],
  },
  {
    name: "debian:12-build",
    description: "Debian 12 with Git and common build tools (gcc, g++, make, python3).",
    suite: "bookworm",
    variant: "minbase",
    include: ["ca-certificates", "git", "build-essential", "python3", "curl", "xz-utils"],
    builderVersion: BUILDER_VERSION,
    commands: ["git", "python3", "gcc", "g++", "cc", "c++", "make", "patch", "curl", "xz", "unxz", "bzip2"],
  },
];

export function knownEnvironmentNames(): string[] {
  return CATALOG.map((r) => r.name);
}

export function findRecipe(name: string): EnvironmentRecipe {
  const r = CATALOG.find((c) => c.name === name);
  if (!r) {
    const shown = JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name);
    throw new PyroError(
      "unknown_environment",
      `unknown environment ${shown}; known environments: ${knownEnvironmentNames().join(", ")}`,
      ["see them with ", { op: "vm_list_environments" }],
    );
  }
  return r;
}

/** sha256 over the canonical recipe JSON (sorted keys, sorted package list). */
export function recipeDigest(r: EnvironmentRecipe): string {
  const canonical = JSON.stringify({
    builderVersion: r.builderVersion,
    include: [...r.include].sort(),
    name: r.name,
    suite: r.suite,
    variant: r.variant,
  });
  return `sha256:${process.getBuiltinModule("node:crypto").createHash("sha256").update(canonical).digest("hex")}`;
}

/** Directory name of a cache entry: readable prefix plus the digest. */
export function entryDirName(r: EnvironmentRecipe): string {
  const slug = r.name.replace(/[^a-z0-9]+/gi, "-");
  return `${slug}-${recipeDigest(r).slice("sha256:".length, "sha256:".length + 16)}`;
}
