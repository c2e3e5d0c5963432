import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { PyroError } from "../../src/core/errors.js";
import { checkLayerOrder, type LayerFacts, LayerScanner } from "../../src/environments/layer-scan.js";
import { looksLikeImageRef, parseOciRef, registryScheme } from "../../src/environments/oci-ref.js";
import { loadRecipe, userRecipeDigest } from "../../src/environments/recipe.js";
import { dockerCredentials, ociArch, parseChallenge } from "../../src/environments/registry.js";
import { envListToRecord, mkdirInRootfs, resolveUser } from "../../src/environments/runtime-config.js";
import { tempDir } from "../helpers.js";
import { layerTar } from "../oci-fixtures.js";

describe("image references", () => {
  test("are split into registry, repository, tag and digest, with Docker Hub's shorthands", () => {
    const d = `sha256:${"a".repeat(64)}`;
    const cases: [string, string, string, string | undefined, string | undefined][] = [
      ["docker.io/library/python:3.12-slim", "docker.io", "library/python", "3.12-slim", undefined],
      ["docker.io/python", "docker.io", "library/python", "latest", undefined],
      ["localhost:5000/app:1", "localhost:5000", "app", "1", undefined],
      ["127.0.0.1:5000/test/alpine-like:1", "127.0.0.1:5000", "test/alpine-like", "1", undefined],
      [`ghcr.io/org/img@${d}`, "ghcr.io", "org/img", undefined, d],
      [`ghcr.io/org/img:v1@${d}`, "ghcr.io", "org/img", "v1", d],
      ["user/repo:tag", "docker.io", "user/repo", "tag", undefined],
    ];
    for (const [ref, registry, repository, tag, digest] of cases) {
      const r = parseOciRef(ref);
      assert.deepEqual([r.registry, r.repository, r.tag, r.digest], [registry, repository, tag, digest], ref);
    }
    assert.equal(parseOciRef("docker.io/python").canonical, "docker.io/library/python:latest");
  });

  test("bad references are invalid_argument naming the bad part", () => {
    for (const [ref, why] of [
      ["localhost:5000/App:1", /lowercase/],
      ["localhost:5000/app@sha256:abc", /digest/],
      ["localhost:5000/app:bad tag", /tag/],
      ["localhost:5000//x", /lowercase/],
    ] as const)
      assert.throws(
        () => parseOciRef(ref),
        (e: unknown) => e instanceof PyroError && e.code === "invalid_argument" && why.test(e.message),
        ref,
      );
  });

  test("only names with / or @ are images; catalog names stay catalog names", () => {
    assert.equal(looksLikeImageRef("debian:12"), false);
    assert.equal(looksLikeImageRef("my-env:1"), false);
    assert.equal(looksLikeImageRef("docker.io/library/debian:12"), true);
  });

  test("plain HTTP only for loopback registries and those the user lists", () => {
    assert.equal(registryScheme(parseOciRef("localhost:5000/a")), "http");
    assert.equal(registryScheme(parseOciRef("127.0.0.1:5000/a")), "http");
    assert.equal(registryScheme(parseOciRef("ghcr.io/a/b")), "https");
    assert.equal(
      registryScheme(parseOciRef("reg.lan:5000/a"), { PYRO_INSECURE_REGISTRIES: "reg.lan:5000" }),
      "http",
    );
  });
});

describe("registry auth", () => {
  test("WWW-Authenticate challenges are parsed", () => {
    const c = parseChallenge(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/python:pull"',
    );
    assert.equal(c.scheme, "bearer");
    assert.deepEqual(c.params, {
      realm: "https://auth.docker.io/token",
      service: "registry.docker.io",
      scope: "repository:library/python:pull",
    });
    assert.equal(parseChallenge('Basic realm="x"').scheme, "basic");
  });

  test("credentials come from $DOCKER_CONFIG/config.json (auth or username/password), Docker Hub's key included", async () => {
    const dir = await tempDir("pyro-docker-cfg-");
    try {
      await writeFile(
        join(dir, "config.json"),
        JSON.stringify({
          auths: {
            "https://index.docker.io/v1/": { auth: Buffer.from("hub:pw").toString("base64") },
            "localhost:5000": { username: "u", password: "p" },
          },
        }),
      );
      assert.equal(await dockerCredentials("docker.io", { DOCKER_CONFIG: dir }), "hub:pw");
      assert.equal(await dockerCredentials("localhost:5000", { DOCKER_CONFIG: dir }), "u:p");
      assert.equal(await dockerCredentials("ghcr.io", { DOCKER_CONFIG: dir }), undefined);
      assert.equal(await dockerCredentials("ghcr.io", { DOCKER_CONFIG: join(dir, "absent") }), undefined);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("architecture names follow OCI", () => {
    assert.equal(ociArch("x64"), "amd64");
    assert.equal(ociArch("arm64"), "arm64");
  });
});

async function scan(entries: Parameters<typeof layerTar>[0], gzip = true) {
  const tar = await layerTar(entries);
  const s = new LayerScanner(`sha256:${"b".repeat(64)}`);
  const bytes = gzip ? gzipSync(tar) : tar;
  for (let i = 0; i < bytes.length; i += 1000) s.write(bytes.subarray(i, i + 1000));
  return { ...(await s.finish()), facts: s.facts };
}

describe("layer scanning", () => {
  test("records symlinks, paths and whiteouts (gzip or plain tar, fed in chunks)", async () => {
    for (const gz of [true, false]) {
      const r = await scan(
        [
          { name: "etc", type: "directory" },
          { name: "etc/localtime", type: "symlink", linkname: "/usr/share/zoneinfo/UTC" },
          { name: "./etc/.wh.old", body: "" },
          { name: "var/.wh..wh..opq", body: "" },
          { name: "bin/sh", body: "x" },
        ],
        gz,
      );
      assert.equal(r.problem, undefined);
      assert.deepEqual(r.facts.symlinks, ["etc/localtime"]);
      assert.deepEqual(r.facts.removed, ["etc/old"]);
      assert.deepEqual(r.facts.opaque, ["var"]);
      assert.deepEqual(r.facts.paths, ["etc", "etc/localtime", "bin/sh"]);
    }
  });

  test("refuses .. entries, absolute paths, hardlinks out of the root and whiteouts of . or ..", async () => {
    for (const [entries, why] of [
      [[{ name: "a/../../x", body: "" }], /climbs out/],
      [[{ name: "/abs", body: "" }], /absolute/],
      [[{ name: "h", type: "link", linkname: "../../etc/shadow" }], /hardlink/],
      [[{ name: "dev/sda", type: "block-device", devmajor: 8, devminor: 0 }], /device node/],
      // Whiteouts whose target is the directory itself or its parent (at the top: the root).
      [
        [{ name: "usr/.wh..", body: "" }],
        /entry "usr\/\.wh\.\." is a whiteout of "\.", which would remove its own directory/,
      ],
      [
        [{ name: "usr/lib/.wh...", body: "" }],
        /entry "usr\/lib\/\.wh\.\.\." is a whiteout of "\.\.", which would remove the parent/,
      ],
      [[{ name: ".wh...", body: "" }], /entry "\.wh\.\.\." is a whiteout of "\.\."/],
      [[{ name: "./.wh..", body: "" }], /whiteout of "\."/],
      [[{ name: "etc/.wh.", body: "" }], /entry "etc\/\.wh\." is a whiteout of ""/],
    ] as const) {
      const r = await scan(entries as never);
      assert.equal(r.problem?.code, "image_layer_unsafe");
      assert.match(r.problem!.message, why);
    }
  });

  test("a write through a symlink from this or an earlier layer is refused; a removed or replaced link is not a problem", () => {
    const f = (p: Partial<LayerFacts>): LayerFacts => ({
      symlinks: [],
      paths: [],
      removed: [],
      opaque: [],
      ...p,
    });
    const l = (facts: LayerFacts) => ({ digest: `sha256:${"c".repeat(64)}`, facts });
    assert.throws(
      () => checkLayerOrder([l(f({ symlinks: ["lnk"], paths: ["lnk", "lnk/evil"] }))]),
      /through the symlink "lnk"/,
    );
    assert.throws(
      () =>
        checkLayerOrder([l(f({ symlinks: ["a/lnk"], paths: ["a/lnk"] })), l(f({ paths: ["a/lnk/b/c"] }))]),
      /through the symlink "a\/lnk"/,
    );
    checkLayerOrder([
      l(f({ symlinks: ["lnk"], paths: ["lnk"] })),
      l(f({ removed: ["lnk"], paths: ["lnk", "lnk/x"] })),
    ]);
    checkLayerOrder([
      l(f({ symlinks: ["d/lnk"], paths: ["d/lnk"] })),
      l(f({ opaque: ["d"], paths: ["d/lnk/x"] })),
    ]);
    checkLayerOrder([l(f({ symlinks: ["lnk"], paths: ["lnk"] })), l(f({ paths: ["lnk", "lnk/x"] }))]);
  });
});

describe("image config", () => {
  test("Env lists become records; User resolves against the image's own passwd and group", async () => {
    assert.deepEqual(envListToRecord(["A=1", "B=x=y", "bad"]), { A: "1", B: "x=y" });
    const root = await tempDir("pyro-rootfs-");
    try {
      await mkdir(join(root, "etc"));
      await writeFile(
        join(root, "etc", "passwd"),
        "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
      );
      await writeFile(join(root, "etc", "group"), "root:x:0:\nstaff:x:50:\n");
      assert.deepEqual(await resolveUser(root, null), { uid: 0, gid: 0 });
      assert.deepEqual(await resolveUser(root, "app"), { uid: 1000, gid: 1001 });
      assert.deepEqual(await resolveUser(root, "1000"), { uid: 1000, gid: 1001 });
      assert.deepEqual(await resolveUser(root, "app:staff"), { uid: 1000, gid: 50 });
      assert.deepEqual(await resolveUser(root, "4242:7"), { uid: 4242, gid: 7 });
      await assert.rejects(resolveUser(root, "nobody"), /not in its \/etc\/passwd/);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe("directories made in a rootfs", () => {
  test("mkdirInRootfs creates real directories and never goes through a symlink", async () => {
    const root = await tempDir("pyro-rootfs-");
    const outside = await tempDir("pyro-outside-");
    try {
      assert.equal(await mkdirInRootfs(root, "/home/app/src"), true);
      assert.ok(existsSync(join(root, "home", "app", "src")));
      await symlink(outside, join(root, "opt"));
      assert.equal(await mkdirInRootfs(root, "/opt/app"), false);
      assert.equal(existsSync(join(outside, "app")), false, "nothing created outside the rootfs");
      await writeFile(join(root, "file"), "");
      assert.equal(await mkdirInRootfs(root, "/file/x"), false);
    } finally {
      await rm(root, { recursive: true, force: true });
      await rm(outside, { recursive: true, force: true });
    }
  });
});

describe("recipes", () => {
  test("the digest covers fields and copied file contents, not the name or key order", async () => {
    const dir = await tempDir("pyro-recipe-unit-");
    try {
      await writeFile(join(dir, "f.txt"), "one");
      const write = (o: object) => writeFile(join(dir, "r.json"), JSON.stringify(o));
      const digest = async () => userRecipeDigest(await loadRecipe(join(dir, "r.json")));
      await write({
        name: "a",
        base: "debian:12",
        packages: ["jq", "curl"],
        files: [{ src: "f.txt", dest: "/f" }],
      });
      const d1 = await digest();
      await write({
        files: [{ src: "f.txt", dest: "/f" }],
        packages: ["curl", "jq"],
        base: "debian:12",
        name: "b",
      });
      assert.equal(await digest(), d1, "renamed and reordered: same digest");
      await writeFile(join(dir, "f.txt"), "two");
      assert.notEqual(await digest(), d1, "a copied file changed");
      await write({ name: "a", base: "debian:12", packages: ["jq"], files: [{ src: "f.txt", dest: "/f" }] });
      assert.notEqual(await digest(), d1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a dest outside the root is refused", async () => {
    const dir = await tempDir("pyro-recipe-unit-");
    try {
      await writeFile(join(dir, "f"), "x");
      await writeFile(
        join(dir, "r.json"),
        JSON.stringify({ name: "a", base: "debian:12", files: [{ src: "f", dest: "/../../etc" }] }),
      );
      await assert.rejects(
        loadRecipe(join(dir, "r.json")),
        (e: unknown) => e instanceof PyroError && e.code === "recipe_invalid",
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
