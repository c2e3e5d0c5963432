import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, readdir, rm, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { resolvePaths } from "../../src/core/paths.js";
import { Pyro, PyroError } from "../../src/index.js";
import {
  CLI,
  gvisorSkipReason,
  REPO,
  runCli,
  skipped,
  type TestState,
  tempDir,
  testEnv,
} from "../helpers.js";
import {
  busyboxLayer,
  type LayerEntry,
  OS_RELEASE,
  ociToolsSkipReason,
  osReleaseLayer,
  type RegistryProxy,
  startProxy,
  startRegistry,
  type TestRegistry,
} from "../oci-fixtures.js";

/**
 * OCI images as environments, against a real registry: Debian's docker-registry on
 * 127.0.0.1 (a free port), images built here and pushed with skopeo, pulled and run through
 * the built CLI, the SDK and the MCP server on gVisor; a token-protected registry, and the
 * failures (missing tag, corrupt layer, hostile layers), each a clear error with nothing
 * half-unpacked left in the cache. Every test gets its own cache dir, so byte counts are
 * exact and nothing here touches the shared environment cache.
 */

const SKIP = ociToolsSkipReason() ?? (await gvisorSkipReason());

let reg: TestRegistry;
let LAYER1: LayerEntry[];
const IMG_CONFIG = { Env: ["FOO=bar from image"], WorkingDir: "/home/app", User: "app" };

before(async () => {
  if (SKIP) return;
  reg = await startRegistry();
  LAYER1 = await busyboxLayer();
  await reg.push("test/alpine-like", "1", { layers: [LAYER1, osReleaseLayer()], config: IMG_CONFIG });
});
after(async () => {
  await reg?.stop();
});

type Ctx = TestState & { cacheDir: string; ref: (repoTag: string) => string };

async function withOci(t: { skip: (m?: string) => void }, fn: (c: Ctx) => Promise<void>, extra = {}) {
  if (SKIP) return skipped(t, SKIP);
  const cacheDir = await tempDir("pyro-oci-cache-");
  const c = await testEnv({ PYRO_ENGINE: "gvisor", PYRO_CACHE_DIR: cacheDir, ...extra });
  try {
    await fn({ ...c, cacheDir, ref: (rt) => `localhost:${reg.port}/${rt}` });
  } finally {
    await c.cleanup().catch(() => undefined);
    await rm(cacheDir, { recursive: true, force: true });
  }
}

/** Nothing half-done in the environment cache: no entries, temp dirs or partial blobs. */
async function assertNothingUnpacked(cacheDir: string): Promise<void> {
  const envs = join(cacheDir, "environments");
  const top = (await readdir(envs).catch(() => [] as string[])).filter(
    (n) => n.startsWith("oci-") || n.startsWith(".tmp-"),
  );
  assert.deepEqual(top, [], `left in the cache: ${top.join(", ")}`);
  const blobs = await readdir(join(envs, "oci", "blobs", "sha256")).catch(() => [] as string[]);
  assert.deepEqual(
    blobs.filter((b) => b.includes(".part")),
    [],
  );
}

/** Runs the CLI (args include --json where it belongs), expects exit 0, returns the JSON. */
async function cliJson<T>(args: string[], env: NodeJS.ProcessEnv): Promise<T> {
  const r = await runCli(args, { env });
  assert.equal(r.code, 0, `pyro ${args.join(" ")}: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

async function layerSizes(repo: string, tag: string): Promise<number[]> {
  const r = await fetch(`http://${reg.host}/v2/${repo}/manifests/${tag}`, {
    headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
  });
  const m = (await r.json()) as { layers: { size: number }[] };
  return m.layers.map((l) => l.size);
}

describe("OCI images as environments (local registry, gVisor)", () => {
  test("pyro run pulls an image built and pushed by the test, and honours its Env, WorkingDir and User", async (t) => {
    await withOci(t, async ({ env, ref, cacheDir }) => {
      const image = ref("test/alpine-like:1");
      const r = await runCli(["run", image, "--", "cat", "/etc/os-release"], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, OS_RELEASE);
      assert.match(r.stderr, /pulling .*MB\/.*MB/, "byte progress while pulling");
      const j = await cliJson<{ stdout: string; exit_code: number }>(
        ["run", image, "--json", "--", "sh", "-c", 'id -u; id -g; pwd; echo "$FOO"; cat /etc/gone.txt; true'],
        env,
      );
      assert.equal(j.exit_code, 0);
      assert.equal(j.stdout, "1000\n1000\n/home/app\nbar from image\n", "whiteout removed etc/gone.txt");
      const list = await cliJson<{ environments: { name: string; kind: string; installed: boolean }[] }>(
        ["env", "list", "--json"],
        env,
      );
      const mine = list.environments.find((e) => e.name === image);
      assert.deepEqual({ kind: mine?.kind, installed: mine?.installed }, { kind: "image", installed: true });
      assert.ok(
        list.environments.some((e) => e.kind === "catalog"),
        "the catalog is still listed",
      );
      const info = await cliJson<{
        config: { uid: number; working_dir: string; env: Record<string, string> };
      }>(["env", "inspect", image, "--json"], env);
      assert.deepEqual(info.config, {
        env: { FOO: "bar from image" },
        working_dir: "/home/app",
        uid: 1000,
        gid: 1000,
      });
      // Prune keeps a pulled image; --all removes it and its blobs.
      const kept = await cliJson<{ removed: string[] }>(["env", "prune", "--json"], env);
      assert.deepEqual(kept.removed, []);
      const all = await cliJson<{ removed: string[] }>(["env", "prune", "--all", "--json"], env);
      assert.ok(
        all.removed.some((n) => n.startsWith("oci-")),
        JSON.stringify(all),
      );
      await assertNothingUnpacked(cacheDir);
      assert.deepEqual(await readdir(join(cacheDir, "environments", "oci", "blobs", "sha256")), []);
    });
  });

  test("set-uid and set-gid bits of an image's files are cleared in the cache (tree and EROFS image)", async (t) => {
    await withOci(t, async ({ env, ref, cacheDir }) => {
      await reg.push("test/setid", "1", {
        layers: [
          LAYER1,
          [
            { name: "usr", type: "directory" },
            { name: "usr/bin", type: "directory" },
            { name: "usr/bin/suid", body: "#!/bin/sh\n", mode: 0o4755 },
            { name: "usr/bin/sgid", body: "#!/bin/sh\n", mode: 0o2711 },
            { name: "usr/bin/plain", body: "#!/bin/sh\n", mode: 0o750 },
            { name: "srv", type: "directory", mode: 0o3775 },
          ],
        ],
      });
      const image = ref("test/setid:1");
      // The guest reads the EROFS image packed from the tree (beside it, when mkfs.erofs is here).
      const r = await runCli(["run", image, "--", "ls", "-ld", "/usr/bin/suid", "/usr/bin/sgid", "/srv"], {
        env,
      });
      assert.equal(r.code, 0, r.stderr);
      const modes = r.stdout
        .trim()
        .split("\n")
        .map((l) => `${l.split(/\s+/)[0]} ${l.split(/\s+/).pop()}`);
      assert.deepEqual(modes, ["drwxrwxr-t /srv", "-rwx--x--x /usr/bin/sgid", "-rwxr-xr-x /usr/bin/suid"]);
      const envs = join(cacheDir, "environments");
      const entry = (await readdir(envs)).filter((n) => n.startsWith("oci-"));
      assert.equal(entry.length, 1, entry.join(", "));
      const rootfs = join(envs, entry[0] ?? "", "rootfs");
      const mode = async (p: string) => ((await stat(join(rootfs, p))).mode & 0o7777).toString(8);
      // Set-id gone; every other bit (the sticky bit too) as the image has it.
      assert.deepEqual(
        [
          await mode("usr/bin/suid"),
          await mode("usr/bin/sgid"),
          await mode("usr/bin/plain"),
          await mode("srv"),
        ],
        ["755", "711", "750", "1775"],
      );
      if (existsSync(`${rootfs}.erofs`))
        assert.equal(((await stat(`${rootfs}.erofs`)).mode & 0o7777).toString(8), "644");
    });
  });

  test("a second image sharing a layer downloads only its new layer", async (t) => {
    await withOci(t, async ({ env, ref }) => {
      await reg.push("test/shared", "a", { layers: [LAYER1, osReleaseLayer()] });
      await reg.push("test/shared", "b", {
        layers: [LAYER1, osReleaseLayer([{ name: "etc/b.txt", body: "only in b\n".repeat(1000) }])],
      });
      const [l1 = 0, la = 0] = await layerSizes("test/shared", "a");
      const [, lb = 0] = await layerSizes("test/shared", "b");
      type Pull = {
        pulled: boolean;
        bytes_downloaded: number;
        layers_downloaded: number;
        layers_cached: number;
      };
      const a = await cliJson<Pull>(["env", "pull", ref("test/shared:a"), "--json"], env);
      assert.deepEqual(a, {
        ...a,
        pulled: true,
        bytes_downloaded: l1 + la,
        layers_downloaded: 2,
        layers_cached: 0,
      });
      const b = await cliJson<Pull>(["env", "pull", ref("test/shared:b"), "--json"], env);
      assert.deepEqual(b, {
        ...b,
        pulled: true,
        bytes_downloaded: lb,
        layers_downloaded: 1,
        layers_cached: 1,
      });
      const again = await cliJson<Pull>(["env", "pull", ref("test/shared:b"), "--json"], env);
      assert.deepEqual(again, { ...again, pulled: false, bytes_downloaded: 0 });
      const r = await runCli(["run", ref("test/shared:b"), "--", "cat", "/etc/b.txt"], { env });
      assert.equal(r.stdout.split("\n")[0], "only in b");
      // By digest, as `…@sha256:` references are written: the same image, nothing fetched.
      const digest = (
        await fetch(`http://${reg.host}/v2/test/shared/manifests/b`, {
          method: "HEAD",
          headers: { accept: OCI_MANIFEST },
        })
      ).headers.get("docker-content-digest");
      const pinned = await cliJson<Pull>(["env", "pull", ref(`test/shared@${digest}`), "--json"], env);
      assert.deepEqual(pinned, { ...pinned, pulled: false, bytes_downloaded: 0 });
      const wrong = await runCli(["env", "pull", ref(`test/shared@sha256:${"0".repeat(64)}`), "--json"], {
        env,
      });
      assert.equal(JSON.parse(wrong.stdout).error.code, "image_not_found");
    });
  });

  test("an image index (multi-arch) resolves to this machine's platform", async (t) => {
    await withOci(t, async ({ env, ref }) => {
      await reg.push("test/multi", "amd", { layers: [LAYER1, osReleaseLayer()] });
      const head = await fetch(`http://${reg.host}/v2/test/multi/manifests/amd`, {
        method: "HEAD",
        headers: { accept: OCI_MANIFEST },
      });
      const entry = (arch: string) => ({
        mediaType: OCI_MANIFEST,
        digest: head.headers.get("docker-content-digest"),
        size: Number(head.headers.get("content-length")),
        platform: { os: "linux", architecture: arch },
      });
      const put = await fetch(`http://${reg.host}/v2/test/multi/manifests/all`, {
        method: "PUT",
        headers: { "content-type": "application/vnd.oci.image.index.v1+json" },
        body: JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.index.v1+json",
          manifests: [entry("s390x"), entry(process.arch === "x64" ? "amd64" : process.arch)],
        }),
      });
      assert.equal(put.status, 201, await put.text());
      const r = await runCli(["run", ref("test/multi:all"), "--", "cat", "/etc/os-release"], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, OS_RELEASE);
    });
  });

  test("two processes pulling the same image at once: one downloads and unpacks, the other waits and reuses it", async (t) => {
    await withOci(t, async ({ env, ref }) => {
      type Pull = { pulled: boolean; bytes_downloaded: number };
      const image = ref("test/alpine-like:1");
      const [a, b] = await Promise.all([
        cliJson<Pull>(["env", "pull", image, "--json"], env),
        cliJson<Pull>(["env", "pull", image, "--json"], env),
      ]);
      assert.deepEqual([a.pulled, b.pulled].sort(), [false, true], JSON.stringify([a, b]));
      assert.equal(Math.min(a.bytes_downloaded, b.bytes_downloaded), 0);
    });
  });

  test("the SDK runs an image and makes a workspace from it (Env and User apply, /workspace is writable)", async (t) => {
    await withOci(t, async ({ env, ref }) => {
      const pyro = new Pyro({ env });
      const image = ref("test/alpine-like:1");
      const r = await pyro.runInVm({ environment: image, command: ["cat", "/etc/os-release"] });
      assert.equal(r.stdout, OS_RELEASE);
      const ws = await pyro.createWorkspace({ environment: image });
      try {
        const e = await pyro.execWorkspace(ws.workspace_id, {
          command: 'id -u; echo "$FOO"; pwd; echo hi > note.txt && cat note.txt',
        });
        assert.equal(e.exit_code, 0, e.stderr);
        assert.equal(e.stdout, "1000\nbar from image\n/workspace\nhi\n");
      } finally {
        await pyro.deleteWorkspace(ws.workspace_id);
      }
      await assert.rejects(
        pyro.runInVm({ environment: ref("test/alpine-like:missing"), command: ["true"] }),
        (e: unknown) =>
          e instanceof PyroError && e.code === "image_not_found" && /alpine-like:missing/.test(e.message),
      );
    });
  });

  test("MCP vm_run takes an image reference in `environment`", async (t) => {
    await withOci(t, async ({ env, ref }) => {
      const transport = new StdioClientTransport({
        command: process.execPath,
        args: [CLI, "mcp", "serve"],
        env: Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined)),
        cwd: REPO,
        stderr: "pipe",
      });
      const client = new Client({ name: "oci-test", version: "1" });
      await client.connect(transport);
      try {
        const r = (await client.callTool({
          name: "vm_run",
          arguments: { environment: ref("test/alpine-like:1"), command: ["cat", "/etc/os-release"] },
        })) as { structuredContent?: { stdout?: string }; isError?: boolean };
        assert.ok(!r.isError, JSON.stringify(r));
        assert.equal(r.structuredContent?.stdout, OS_RELEASE);
        const bad = (await client.callTool({
          name: "vm_run",
          arguments: { environment: ref("test/alpine-like:nope"), command: ["true"] },
        })) as { content?: { text?: string }[]; isError?: boolean };
        assert.ok(bad.isError);
        assert.match(bad.content?.[0]?.text ?? "", /not found in the registry/);
      } finally {
        await client.close();
      }
    });
  });

  describe("a registry that wants a token", () => {
    let proxy: RegistryProxy;
    let basicProxy: RegistryProxy;
    before(async () => {
      if (SKIP) return;
      proxy = await startProxy(reg.host, { token: "t0ken" });
      basicProxy = await startProxy(reg.host, { token: "s3cret", basic: "alice:pw" });
    });
    after(async () => {
      await proxy?.stop();
      await basicProxy?.stop();
    });

    test("anonymous token flow (401 + WWW-Authenticate: Bearer, then /token)", async (t) => {
      await withOci(t, async ({ env }) => {
        const before = proxy.tokensIssued;
        const r = await runCli(
          ["run", `127.0.0.1:${proxy.port}/test/alpine-like:1`, "--", "cat", "/etc/os-release"],
          {
            env,
          },
        );
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, OS_RELEASE);
        assert.ok(proxy.tokensIssued > before, "a token was fetched");
      });
    });

    test("credentials come from the Docker config; without them it is a clear auth error", async (t) => {
      await withOci(t, async ({ env, cacheDir }) => {
        const image = `127.0.0.1:${basicProxy.port}/test/alpine-like:1`;
        const denied = await runCli(["env", "pull", image, "--json"], {
          env: { ...env, DOCKER_CONFIG: cacheDir },
        });
        assert.equal(denied.code, 1);
        assert.equal(JSON.parse(denied.stdout).error.code, "registry_auth_failed", denied.stdout);
        const dockerDir = join(cacheDir, "docker");
        await mkdir(dockerDir);
        await writeFile(
          join(dockerDir, "config.json"),
          JSON.stringify({
            auths: { [`127.0.0.1:${basicProxy.port}`]: { auth: Buffer.from("alice:pw").toString("base64") } },
          }),
        );
        const ok = await runCli(["env", "pull", image, "--json"], {
          env: { ...env, DOCKER_CONFIG: dockerDir },
        });
        assert.equal(ok.code, 0, ok.stdout + ok.stderr);
        assert.equal(JSON.parse(ok.stdout).pulled, true);
      });
    });
  });

  describe("failures are clear and leave nothing half-unpacked", () => {
    async function pullFails(c: Ctx, image: string, code: string, message: RegExp): Promise<void> {
      const r = await runCli(["env", "pull", image, "--json"], { env: c.env });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      const err = JSON.parse(r.stdout).error;
      assert.equal(err.code, code, r.stdout);
      assert.match(err.message, message);
      assert.ok(err.hint, "every failure says how to fix it");
      await assertNothingUnpacked(c.cacheDir);
    }

    test("a missing tag", async (t) => {
      await withOci(t, (c) =>
        pullFails(c, c.ref("test/alpine-like:9.9"), "image_not_found", /alpine-like:9\.9 not found/),
      );
    });

    test("a corrupt layer (digest mismatch)", async (t) => {
      if (SKIP) return skipped(t, SKIP);
      await reg.push("test/corrupt", "1", {
        layers: [[{ name: "big.txt", body: Buffer.alloc(200_000, 7) }], osReleaseLayer()],
      });
      const m = (await (
        await fetch(`http://${reg.host}/v2/test/corrupt/manifests/1`, {
          headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
        })
      ).json()) as { layers: { digest: string }[] };
      const proxy = await startProxy(reg.host, { corrupt: m.layers[0]!.digest });
      try {
        await withOci(t, (c) =>
          pullFails(
            c,
            `127.0.0.1:${proxy.port}/test/corrupt:1`,
            "image_digest_mismatch",
            /hashes to sha256:/,
          ),
        );
      } finally {
        await proxy.stop();
      }
    });

    for (const [label, layer] of [
      ["a ../ entry", [{ name: "../dotdot.txt", body: "escape" }]],
      ["an absolute path entry", [{ name: "/abs.txt", body: "escape" }]],
      [
        "a write through an absolute symlink",
        [
          { name: "lnk", type: "symlink", linkname: "/tmp" },
          { name: "lnk/evil.txt", body: "escape" },
        ],
      ],
      ["a hardlink to a host path", [{ name: "pw", type: "link", linkname: "/etc/passwd" }]],
      ["a whiteout of its parent directory", [{ name: "etc/.wh...", body: "" }]],
    ] as [string, LayerEntry[]][]) {
      test(`a layer with ${label} is refused`, async (t) => {
        await withOci(t, async (c) => {
          const repo = `test/hostile-${label.replace(/[^a-z]+/g, "-")}`.replace(/-+$/, "");
          await reg.push(repo, "1", { layers: [LAYER1, layer] });
          await pullFails(c, c.ref(`${repo}:1`), "image_layer_unsafe", /entry "/);
          assert.ok(!existsSync("/tmp/evil.txt") && !existsSync("/abs.txt"), "nothing written on the host");
        });
      });
    }
  });
});

describe("OCI image under QEMU", () => {
  test("PYRO_ENGINE=qemu runs the same image (its rootfs becomes the guest disk)", async (t) => {
    if (SKIP) return skipped(t, SKIP);
    if (!existsSync("/usr/bin/qemu-system-x86_64"))
      return skipped(t, "qemu not installed (run scripts/setup-host.sh)");
    // A private cache (the image and its guest disk go away with it) that borrows the guest
    // kernel from the shared one, so nothing is fetched.
    const cacheDir = await tempDir("pyro-oci-qemu-cache-");
    const shared = join(resolvePaths().cacheDir, "guest-kernels");
    if (existsSync(shared)) await symlink(shared, join(cacheDir, "guest-kernels"));
    const c = await testEnv({
      PYRO_ENGINE: "qemu",
      PYRO_QEMU_ACCEL: process.env.PYRO_QEMU_ACCEL ?? "tcg",
      PYRO_CACHE_DIR: cacheDir,
    });
    try {
      const r = await runCli(
        ["run", `localhost:${reg.port}/test/alpine-like:1`, "--", "cat", "/etc/os-release"],
        {
          env: c.env,
          timeoutMs: 300_000,
        },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, OS_RELEASE);
      assert.match(r.stderr, /qemu/);
    } finally {
      await c.cleanup().catch(() => undefined);
      await rm(cacheDir, { recursive: true, force: true });
    }
  });
});
