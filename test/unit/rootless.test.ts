import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { PyroError } from "../../src/core/errors.js";
import { resolvePaths } from "../../src/core/paths.js";
import { checkRootless, subordinateIds } from "../../src/doctor/rootless.js";
import { buildOciConfig, useRootfsImage } from "../../src/engines/gvisor/bundle.js";
import { rootfsSource } from "../../src/engines/gvisor/rootfs.js";
import { globalFlags } from "../../src/engines/gvisor/runsc.js";
import { entryDirName, findRecipe, recipeDigest } from "../../src/environments/catalog.js";
import { EnvironmentStore } from "../../src/environments/store.js";
import { findMkfsErofs, rootfsImagePath } from "../../src/util/erofs.js";

const dirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "pyro-rootless-unit-"));
  dirs.push(d);
  return d;
}
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

test("rootless runsc gets --rootless in the flags stored with the sandbox, rootful does not", () => {
  const root = globalFlags("/s/runsc", false, {}, false);
  const rootless = globalFlags("/s/runsc", false, {}, true);
  assert.deepEqual(rootless, [...root, "--rootless"]);
  assert.ok(!root.includes("--rootless"));
});

test("an EROFS image replaces the OCI root with an empty directory and the rootfs annotations", () => {
  const spec = {
    id: "x",
    environment: "debian:12",
    rootfs: "/cache/e/rootfs",
    sandboxDir: "/s/x",
    vcpuCount: 1,
    memMib: 256,
    network: false,
  };
  const plain = buildOciConfig(spec, { args: ["true"], cwd: "/" });
  assert.equal(plain.root.path, "/cache/e/rootfs");
  assert.equal(plain.annotations, undefined);
  const img = useRootfsImage(plain, { image: "/cache/e/rootfs.erofs", emptyRoot: "/c/empty" });
  assert.equal(img.root.path, "/c/empty");
  assert.deepEqual(img.annotations, {
    "dev.gvisor.spec.rootfs.type": "erofs",
    "dev.gvisor.spec.rootfs.source": "/cache/e/rootfs.erofs",
    "dev.gvisor.spec.rootfs.overlay": "memory",
  });
  const viaMounts = buildOciConfig(
    spec,
    { args: ["true"], cwd: "/" },
    { init: "/i", rootfsImage: { image: "/cache/e/rootfs.erofs", emptyRoot: "/c/empty" } },
  );
  assert.deepEqual(viaMounts.annotations, img.annotations);
  assert.equal(rootfsImagePath("/cache/e/rootfs/"), "/cache/e/rootfs.erofs");
});

test("rootfsSource: the image beside the rootfs wins; another user's tree without one is refused with the fix", async () => {
  const entry = await tmp();
  const rootfs = join(entry, "rootfs");
  await mkdir(join(rootfs, "etc"), { recursive: true });
  await writeFile(join(rootfs, "etc", "hostname"), "pyro\n");
  const cacheDir = await tmp();
  // Someone else's tree, no image, rootless: a clear error naming the fix.
  await assert.rejects(
    rootfsSource(rootfs, { cacheDir, rootless: true, uid: 4242 }),
    (e: unknown) =>
      e instanceof PyroError &&
      e.code === "engine_unavailable" &&
      /belongs to uid \d+ and has no EROFS image/.test(e.message) &&
      /setup-host\.sh/.test(JSON.stringify(e.hint)),
  );
  // Rootful, same tree: the directory, as before.
  assert.deepEqual(await rootfsSource(rootfs, { cacheDir, rootless: false, uid: 4242 }), { dir: rootfs });
  await writeFile(rootfsImagePath(rootfs), "image");
  // PYRO_GVISOR_EROFS=0 keeps the directory as root, and is ignored without root.
  assert.deepEqual(
    await rootfsSource(rootfs, { cacheDir, rootless: false, env: { PYRO_GVISOR_EROFS: "0" } }),
    { dir: rootfs },
  );
  assert.deepEqual(
    await rootfsSource(rootfs, { cacheDir, rootless: true, uid: 4242, env: { PYRO_GVISOR_EROFS: "0" } }),
    { dir: rootfs, image: rootfsImagePath(rootfs) },
  );
  assert.deepEqual(await rootfsSource(rootfs, { cacheDir, rootless: true, uid: 4242 }), {
    dir: rootfs,
    image: rootfsImagePath(rootfs),
  });
});

test("rootfsSource packs an image beside a tree it may read and write", async (t) => {
  if (!(await findMkfsErofs())) return t.skip("mkfs.erofs not installed");
  const entry = await tmp();
  const rootfs = join(entry, "rootfs");
  await mkdir(join(rootfs, "bin"), { recursive: true });
  await writeFile(join(rootfs, "bin", "x"), "#!/bin/sh\n");
  const src = await rootfsSource(rootfs, { cacheDir: await tmp(), rootless: true });
  assert.equal(src.image, rootfsImagePath(rootfs));
  assert.ok(existsSync(rootfsImagePath(rootfs)));
});

test("the environment store reads a shared cache after the user's own, and never prunes it", async () => {
  const own = join(await tmp(), "environments");
  const shared = join(await tmp(), "environments");
  const r = findRecipe("debian:12-base");
  const entry = join(shared, entryDirName(r));
  await mkdir(join(entry, "rootfs"), { recursive: true });
  await writeFile(
    join(entry, "manifest.json"),
    JSON.stringify({
      name: r.name,
      digest: recipeDigest(r),
      recipe: r,
      built_at: "2026-01-01T00:00:00Z",
      size_bytes: 1,
      build_ms: 1,
    }),
  );
  const store = new EnvironmentStore(own, process.env, [shared]);
  const info = await store.info("debian:12-base");
  assert.equal(info.installed, true);
  assert.equal(info.path, join(entry, "rootfs"));
  const ensured = await store.ensure("debian:12-base");
  assert.deepEqual([ensured.rootfs, ensured.pulled], [join(entry, "rootfs"), false]);
  assert.equal(await store.anyInstalledRootfs(), join(entry, "rootfs"));
  await store.prune({ all: true });
  assert.ok(existsSync(join(entry, "manifest.json")), "prune touched the shared cache");
  assert.equal((await new EnvironmentStore(own).info("debian:12-base")).installed, false);
});

test("paths: the shared cache defaults to /var/cache/pyro, PYRO_SHARED_CACHE moves it, empty turns it off", () => {
  assert.deepEqual(resolvePaths({ HOME: "/h" }).sharedEnvironmentsDirs, ["/var/cache/pyro/environments"]);
  assert.deepEqual(resolvePaths({ HOME: "/h", PYRO_SHARED_CACHE: "/srv/p" }).sharedEnvironmentsDirs, [
    "/srv/p/environments",
  ]);
  assert.deepEqual(resolvePaths({ HOME: "/h", PYRO_SHARED_CACHE: "" }).sharedEnvironmentsDirs, []);
  // Root filling the shared cache itself does not list it twice.
  assert.deepEqual(
    resolvePaths({ HOME: "/h", PYRO_CACHE_DIR: "/var/cache/pyro" }).sharedEnvironmentsDirs,
    [],
  );
});

test("doctor names what a user lacks, each with its fix", async () => {
  const d = await tmp();
  const sys = join(d, "sys");
  await mkdir(join(sys, "user"), { recursive: true });
  await mkdir(join(sys, "kernel"), { recursive: true });
  await writeFile(join(sys, "user", "max_user_namespaces"), "0\n");
  await writeFile(join(sys, "kernel", "unprivileged_userns_clone"), "0\n");
  await writeFile(join(d, "subuid"), "alice:100000:65536\n");
  await writeFile(join(d, "subgid"), "");
  const r = await checkRootless(
    "bob",
    {},
    {
      procSys: sys,
      subuid: join(d, "subuid"),
      subgid: join(d, "subgid"),
      uid: 1234,
    },
  );
  assert.equal(r.userns, false);
  const all = r.problems.join("\n");
  assert.match(all, /user\.max_user_namespaces=0.*sudo sysctl -w user\.max_user_namespaces=15000/);
  assert.match(
    all,
    /kernel\.unprivileged_userns_clone=0.*sudo sysctl -w kernel\.unprivileged_userns_clone=1/,
  );
  assert.match(
    all,
    /bob has no range of 65536 subordinate ids in \/etc\/subuid and \/etc\/subgid.*setup-host\.sh --user bob/,
  );
  // Root needs none of it.
  assert.deepEqual((await checkRootless("root", {}, { procSys: sys, uid: 0 })).problems, []);
});

test("subordinate ids are counted by user name or uid", () => {
  const text = "alice:100000:65536\n1001:165536:65536\nbob:231072:1000\n";
  assert.equal(subordinateIds(text, "alice", 1000), 65536);
  assert.equal(subordinateIds(text, "carol", 1001), 65536);
  assert.equal(subordinateIds(text, "bob", 1002), 1000);
  assert.equal(subordinateIds(text, "dave", 1003), 0);
});
