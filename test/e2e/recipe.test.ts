import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { gvisorSkipReason, runCli, skipped, tempDir, testEnv } from "../helpers.js";
import {
  busyboxLayer,
  ociToolsSkipReason,
  osReleaseLayer,
  startRegistry,
  type TestRegistry,
} from "../oci-fixtures.js";

/**
 * User environments from recipes (`pyro env build FILE`) through the built CLI on gVisor:
 * an image base with files, env and workdir; a Debian base adding a package (a real
 * mmdebstrap build, once); an unchanged recipe is a cache hit under a second, a changed
 * copied file rebuilds; bad recipes are clear errors.
 */

const GVISOR = await gvisorSkipReason();
const OCI_SKIP = ociToolsSkipReason() ?? GVISOR;

type Build = {
  built: boolean;
  duration_ms: number;
  environment: { name: string; kind: string; digest: string };
};

async function cli(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 120_000) {
  const r = await runCli(args, { env, timeoutMs });
  return { ...r, json: r.stdout.trim().startsWith("{") ? JSON.parse(r.stdout) : undefined };
}

describe("recipes (pyro env build)", () => {
  let reg: TestRegistry | undefined;
  let dir: string;
  let cacheDir: string;
  let state: Awaited<ReturnType<typeof testEnv>>;

  before(async () => {
    dir = await tempDir("pyro-recipe-");
    cacheDir = await tempDir("pyro-recipe-cache-");
    state = await testEnv({ PYRO_ENGINE: "gvisor", PYRO_CACHE_DIR: cacheDir });
    if (!OCI_SKIP) {
      reg = await startRegistry();
      await reg.push("test/base", "1", {
        layers: [await busyboxLayer(), osReleaseLayer()],
        config: { Env: ["FROM_IMAGE=1"] },
      });
    }
  });
  after(async () => {
    await reg?.stop();
    await state?.cleanup().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    await rm(cacheDir, { recursive: true, force: true });
  });

  test("an image base with files, env and workdir; unchanged is a cache hit, a changed file rebuilds", async (t) => {
    if (OCI_SKIP) return skipped(t, OCI_SKIP);
    await mkdir(join(dir, "app"));
    await writeFile(join(dir, "app", "hello.sh"), "echo hello from the recipe\n");
    const recipe = join(dir, "app.json");
    await writeFile(
      recipe,
      JSON.stringify({
        name: "my-app:1",
        base: `localhost:${reg!.port}/test/base:1`,
        files: [{ src: "app", dest: "/opt/app" }],
        env: { GREETING: "hi" },
        workdir: "/opt/app",
      }),
    );
    const first = await cli(["env", "build", recipe, "--json"], state.env);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.equal((first.json as Build).built, true);
    assert.equal((first.json as Build).environment.kind, "recipe");

    const run = await cli(
      ["run", "my-app:1", "--json", "--", "sh", "-c", 'pwd; echo "$GREETING $FROM_IMAGE"; sh hello.sh'],
      state.env,
    );
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.equal(run.json.stdout, "/opt/app\nhi 1\nhello from the recipe\n");

    const t0 = performance.now();
    const again = await cli(["env", "build", recipe, "--json"], state.env);
    const wall = performance.now() - t0;
    assert.equal((again.json as Build).built, false, "unchanged recipe: cache hit");
    assert.equal((again.json as Build).environment.digest, (first.json as Build).environment.digest);
    assert.ok(
      (again.json as Build).duration_ms < 1000,
      `cache hit took ${(again.json as Build).duration_ms} ms`,
    );
    assert.ok(wall < 3000, `the whole CLI call took ${wall} ms`);

    await writeFile(join(dir, "app", "hello.sh"), "echo changed\n");
    const changed = await cli(["env", "build", recipe, "--json"], state.env);
    assert.equal((changed.json as Build).built, true, "a copied file changed: rebuilt");
    const run2 = await cli(["run", "my-app:1", "--", "sh", "hello.sh"], state.env);
    assert.equal(run2.stdout, "changed\n");

    const list = await cli(["env", "list", "--json"], state.env);
    const kinds = (list.json.environments as { name: string; kind: string }[]).map(
      (e) => `${e.kind}:${e.name}`,
    );
    assert.ok(kinds.includes("recipe:my-app:1"), kinds.join(", "));
    assert.ok(kinds.includes("catalog:debian:12"), kinds.join(", "));
  });

  test("a Debian base adding a package builds once; a rebuild with no change is a cache hit under 1 s", async (t) => {
    if (GVISOR) return skipped(t, GVISOR);
    if (!existsSync("/usr/bin/mmdebstrap"))
      return skipped(t, "mmdebstrap not installed (run scripts/setup-host.sh)");
    const recipe = join(dir, "jq.json");
    await writeFile(
      recipe,
      JSON.stringify({
        name: "debian-jq",
        description: "Debian 12 base plus jq",
        base: { suite: "bookworm" },
        packages: ["jq"],
        run: ["echo built-by-recipe > /etc/recipe-marker"],
        env: { JQ_COLORS: "0;31" },
      }),
    );
    const first = await cli(["env", "build", recipe, "--json"], state.env, 600_000);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.equal((first.json as Build).built, true);
    const run = await cli(
      [
        "run",
        "debian-jq",
        "--",
        "sh",
        "-c",
        "echo '{\"a\":1}' | jq -c .a; cat /etc/recipe-marker; echo $JQ_COLORS",
      ],
      state.env,
    );
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "1\nbuilt-by-recipe\n0;31\n");
    const again = await cli(["env", "build", recipe, "--json"], state.env);
    assert.equal((again.json as Build).built, false);
    assert.ok(
      (again.json as Build).duration_ms < 1000,
      `cache hit took ${(again.json as Build).duration_ms} ms`,
    );
  });

  test("bad recipes are clear errors", async (t) => {
    if (GVISOR) return skipped(t, GVISOR);
    const cases: [string, unknown, RegExp][] = [
      ["bad-name.json", { name: "Bad/Name", base: "debian:12" }, /name/],
      ["catalog-name.json", { name: "debian:12", base: "debian:12" }, /catalog environment/],
      ["unknown-base.json", { name: "x", base: "debian:99" }, /neither a catalog environment/],
      ["image-packages.json", { name: "x", base: "localhost:1/a:1", packages: ["jq"] }, /need a Debian base/],
      [
        "missing-file.json",
        { name: "x", base: "debian:12", files: [{ src: "nope", dest: "/nope" }] },
        /cannot read/,
      ],
      ["extra-field.json", { name: "x", base: "debian:12", packges: [] }, /packges|Unrecognized/i],
    ];
    for (const [file, body, msg] of cases) {
      await writeFile(join(dir, file), JSON.stringify(body));
      const r = await cli(["env", "build", join(dir, file), "--json"], state.env);
      assert.equal(r.code, 1, `${file}: ${r.stdout}`);
      assert.equal(r.json.error.code, "recipe_invalid", `${file}: ${r.stdout}`);
      assert.match(r.json.error.message, msg, file);
    }
    const missing = await cli(["env", "build", join(dir, "absent.json"), "--json"], state.env);
    assert.equal(missing.json.error.code, "recipe_invalid");
    const unknown = await cli(["run", "never-built", "--json", "--", "true"], state.env);
    assert.equal(unknown.json.error.code, "unknown_environment");
    assert.match(unknown.json.error.hint, /env build/);
  });
});
