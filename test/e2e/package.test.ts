import assert from "node:assert/strict";
import { mkdir, readFile, realpath, rm, symlink } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { gvisorSkipReason, REPO, withHostDir } from "../helpers.js";
import { sh as run } from "../pack.js";

/**
 * The package as a new user gets it: `npm pack` (of the built tree: --ignore-scripts skips
 * the prepack build), `npm install -g` into a temporary prefix, then the installed `pyro`:
 * --version, doctor --json, a real run against the shared environment cache, and a run
 * whose sandbox init is missing from the package so it is compiled from guest/*.c on first
 * use. Dependencies come from npm's cache when it has them (--prefer-offline).
 */

test("npm pack → npm install -g --prefix TMP → the installed pyro works", { timeout: 120_000 }, async (t) => {
  const version = (JSON.parse(await readFile(join(REPO, "package.json"), "utf8")) as { version: string })
    .version;
  await withHostDir("pyro-pack-", async (tmp) => {
    const pack = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", tmp], {
      cwd: REPO,
    });
    assert.equal(pack.code, 0, pack.stderr);
    const [info] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
    const files = info!.files.map((f) => f.path);
    for (const f of [
      "dist/cli/main.js",
      "dist/cli/pyro.cjs",
      "dist/index.js",
      "dist/index.d.ts",
      "guest/agent.c",
      "guest/sandbox-init.c",
      "scripts/setup-host.sh",
      // setup-host.sh builds the pinned gVisor from these.
      "scripts/install-runsc.sh",
      "scripts/gvisor-build/go.mod",
      "scripts/gvisor-build/go.sum",
      "package.json",
    ])
      assert.ok(files.includes(f), `the tarball has ${f}`);
    assert.ok(!files.some((f) => /^(src|test|bench|node_modules)\//.test(f)), "no sources, tests or modules");

    const prefix = join(tmp, "prefix");
    const install = await run(
      "npm",
      [
        "install",
        "-g",
        "--prefix",
        prefix,
        join(tmp, info!.filename),
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
      ],
      { cwd: tmp, timeoutMs: 90_000 },
    );
    assert.equal(install.code, 0, install.stderr);
    const pyro = join(prefix, "bin", "pyro");
    const v = await run(pyro, ["--version"], { cwd: tmp });
    assert.equal(v.stdout.trim(), version);

    // The installed pyro points MCP clients at itself.
    const cfg = await run(pyro, ["host", "print-config", "cursor", "--json"], { cwd: tmp });
    assert.equal(cfg.code, 0, cfg.stderr);
    const installedMain = await realpath(
      join(prefix, "lib", "node_modules", "pyro-mcp", "dist", "cli", "main.js"),
    );
    assert.ok((JSON.parse(cfg.stdout) as { config: string }).config.includes(installedMain));

    const skip = await gvisorSkipReason();
    const state = join(tmp, "state");
    // A cache of its own that shares only the built environments: compiled helpers land here.
    const cache = join(tmp, "cache");
    await mkdir(cache);
    const shared = join(process.env.PYRO_CACHE_DIR || join(homedir(), ".cache", "pyro-mcp"), "environments");
    await symlink(shared, join(cache, "environments"));
    const env = { ...process.env, PYRO_STATE_DIR: state, PYRO_CACHE_DIR: cache, PYRO_ENGINE: "gvisor" };
    const doc = await run(pyro, ["doctor", "--json"], { cwd: tmp, env });
    const report = JSON.parse(doc.stdout) as {
      ok: boolean;
      problems: string[];
      default_engine: string | null;
    };
    if (skip) return t.skip(`skipped: doctor ran (ok=${report.ok}); ${skip}`);
    assert.equal(report.ok, true, report.problems.join("; "));
    const ran = await run(pyro, ["run", "debian:12", "--", "true"], { cwd: tmp, env });
    assert.equal(ran.code, 0, ran.stderr);

    // Without the prebuilt sandbox init, first use compiles it from guest/sandbox-init.c.
    await rm(join(prefix, "lib", "node_modules", "pyro-mcp", "dist", "guest", "pyro-sandbox-init"));
    const again = await run(pyro, ["run", "debian:12", "--", "echo", "compiled"], { cwd: tmp, env });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, "compiled\n");
  });
});
