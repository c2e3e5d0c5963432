import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_ENVIRONMENT } from "../../src/contract/defaults.js";
import { PyroError } from "../../src/core/errors.js";
import {
  CATALOG,
  entryDirName,
  findRecipe,
  knownEnvironmentNames,
  recipeDigest,
} from "../../src/environments/catalog.js";

test("the catalog has the contract's three environments, debian:12 the default", () => {
  assert.deepEqual(knownEnvironmentNames(), ["debian:12", "debian:12-base", "debian:12-build"]);
  assert.equal(DEFAULT_ENVIRONMENT, "debian:12");
  assert.ok(findRecipe("debian:12").include.includes("git"));
  assert.ok(findRecipe("debian:12-build").include.includes("build-essential"));
});

test("recipeDigest is stable, order-insensitive for packages, and changes with the recipe", () => {
  const r = findRecipe("debian:12");
  const d = recipeDigest(r);
  assert.match(d, /^sha256:[0-9a-f]{64}$/);
  assert.equal(recipeDigest({ ...r }), d);
  assert.equal(recipeDigest({ ...r, include: [...r.include].reverse() }), d);
  // Pinned: changing this digest invalidates every user's cache, so it must be deliberate.
  assert.equal(d, "sha256:9f0bca75297c6492bd5de3e13ba8ecfb563575a7764185b56f24137680409a57");
  assert.notEqual(recipeDigest({ ...r, include: [...r.include, "curl"] }), d);
  assert.notEqual(recipeDigest({ ...r, suite: "trixie" }), d);
  assert.notEqual(recipeDigest({ ...r, builderVersion: r.builderVersion + 1 }), d);
  assert.notEqual(recipeDigest({ ...r, description: "changed wording" }), undefined);
  assert.equal(
    recipeDigest({ ...r, description: "changed wording" }),
    d,
    "the description is not part of the digest",
  );
  const digests = new Set(CATALOG.map(recipeDigest));
  assert.equal(digests.size, CATALOG.length);
});

test("entryDirName is a safe directory name carrying the digest prefix", () => {
  for (const r of CATALOG) {
    const n = entryDirName(r);
    assert.match(n, /^[A-Za-z0-9-]+-[0-9a-f]{16}$/);
    assert.ok(n.endsWith(recipeDigest(r).slice(7, 23)));
  }
  assert.equal(entryDirName(findRecipe("debian:12")), "debian-12-9f0bca75297c6492");
});

test("an unknown environment is a one-line error listing the known ones", () => {
  assert.throws(
    () => findRecipe("ubuntu:24.04"),
    (e: unknown) => {
      assert.ok(e instanceof PyroError);
      assert.equal(e.code, "unknown_environment");
      assert.equal(
        e.message,
        'unknown environment "ubuntu:24.04"; known environments: debian:12, debian:12-base, debian:12-build',
      );
      return true;
    },
  );
  assert.throws(
    () => findRecipe("x".repeat(5000)),
    (e: Error) => e.message.length < 200,
  );
});

/**
 * The declared `commands` of each catalog environment (what a 127's hint names, see
 * environments/command-hint.ts) against its built root filesystem: every declared command is
 * there, and every probed command not declared is not. An environment not built on this
 * machine is skipped (it is checked wherever it is built).
 */
const PROBED = [
  "git",
  "python3",
  "python",
  "pip3",
  "gcc",
  "g++",
  "cc",
  "c++",
  "make",
  "patch",
  "curl",
  "wget",
  "xz",
  "unxz",
  "bzip2",
  "node",
  "npm",
  "jq",
  "zip",
  "unzip",
  "ssh",
];
for (const r of CATALOG)
  test(`${r.name}: the declared commands are exactly the probed ones its root filesystem has`, async (t) => {
    const { existsSync, lstatSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { resolvePaths } = await import("../../src/core/paths.js");
    const rootfs = join(resolvePaths(process.env).environmentsDir, entryDirName(r), "rootfs");
    if (!existsSync(join(rootfs, "usr", "bin"))) {
      t.skip(`skipped: ${r.name} is not built here (${rootfs})`);
      return;
    }
    const has = (c: string) =>
      ["usr/bin", "bin", "usr/sbin", "sbin", "usr/local/bin"].some((d) => {
        try {
          lstatSync(join(rootfs, d, c));
          return true;
        } catch {
          return false;
        }
      });
    const declared = r.commands ?? [];
    assert.deepEqual(
      declared.filter((c) => !has(c)),
      [],
      `${r.name} declares commands its rootfs lacks`,
    );
    assert.deepEqual(
      PROBED.filter((c) => has(c) && !declared.includes(c)),
      [],
      `${r.name} has commands it does not declare`,
    );
  });
