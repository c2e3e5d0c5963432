import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { sharedCacheReport } from "../../src/doctor/shared-cache.js";
import { CATALOG, entryDirName, findRecipe, recipeDigest } from "../../src/environments/catalog.js";
import { EnvironmentStore } from "../../src/environments/store.js";

/** `pyro doctor`'s shared_cache: which catalog environments the read-only shared cache holds. */

async function withDirs(fn: (own: string, shared: string) => Promise<void>): Promise<void> {
  const base = await mkdtemp(join(tmpdir(), "pyro-shared-cache-"));
  try {
    await mkdir(join(base, "own"));
    await mkdir(join(base, "shared"));
    await fn(join(base, "own"), join(base, "shared"));
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

async function put(shared: string, name: string, digest = recipeDigest(findRecipe(name))): Promise<void> {
  const entry = join(shared, entryDirName(findRecipe(name)));
  await mkdir(join(entry, "rootfs"), { recursive: true });
  await writeFile(join(entry, "manifest.json"), JSON.stringify({ name, digest }));
}

test("an empty shared cache: not filled, and the one command that fills it", async () => {
  await withDirs(async (own, shared) => {
    const r = await sharedCacheReport(new EnvironmentStore(own, {}, [shared]));
    assert.deepEqual(r.dirs, [shared]);
    assert.deepEqual(r.environments, []);
    assert.equal(r.filled, false);
    assert.match(r.detail, /is empty: your first run .* builds it in your own cache/);
    assert.match(r.detail, /sudo scripts\/setup-host\.sh/);
  });
});

test("a partly filled shared cache names what it holds and what it lacks; a stale build does not count", async () => {
  await withDirs(async (own, shared) => {
    await put(shared, "debian:12");
    await put(shared, "debian:12-base", "sha256:an-older-recipe");
    const r = await sharedCacheReport(new EnvironmentStore(own, {}, [shared]));
    assert.deepEqual(r.environments, ["debian:12"]);
    assert.equal(r.filled, false);
    assert.match(r.detail, /holds debian:12, not debian:12-base, debian:12-build/);
  });
});

test("every catalog environment there: filled", async () => {
  await withDirs(async (own, shared) => {
    for (const c of CATALOG) await put(shared, c.name);
    const r = await sharedCacheReport(new EnvironmentStore(own, {}, [shared]));
    assert.equal(r.filled, true);
    assert.deepEqual(
      r.environments,
      CATALOG.map((c) => c.name),
    );
    assert.match(r.detail, /holds every catalog environment/);
  });
});

test("no shared cache at all (PYRO_SHARED_CACHE empty)", async () => {
  await withDirs(async (own) => {
    const r = await sharedCacheReport(new EnvironmentStore(own, {}, []));
    assert.deepEqual(r, {
      dirs: [],
      environments: [],
      filled: false,
      detail: "no shared cache (PYRO_SHARED_CACHE is empty): every environment is built in your own cache",
    });
  });
});
