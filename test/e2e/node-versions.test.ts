import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { CLI, gvisorSkipReason, REPO, skipped, testEnv } from "../helpers.js";
import { nodeBinary } from "../node-binary.js";
import { sh } from "../pack.js";

/**
 * pyro on each supported Node LTS line, not just the Node running this suite: the unit tests,
 * then an end-to-end smoke (test/fixtures/lts-smoke.ts: CLI run, SDK workspace round trip,
 * MCP over stdio). The binaries are fetched once into a cache by version (test/node-binary.ts);
 * PYRO_NODE22 / PYRO_NODE24 point at others. A line whose binary cannot be had is skipped,
 * saying why.
 */

const LINES = [22, 24] as const;

/** A command in the checkout, with its env and a deadline (test/pack.ts's sh). */
const run = (file: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number) =>
  sh(file, args, { cwd: REPO, env, timeoutMs });

for (const major of LINES) {
  // Fetched on the first test's call; the other two wait for the same promise.
  const binary = () => nodeBinary(major);

  test(`Node ${major}: the binary is that line`, { timeout: 30_000 }, async (t) => {
    const node = await binary();
    if (typeof node !== "string") return skipped(t, node.skip);
    const v = await run(node, ["--version"], process.env, 20_000);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout.trim(), new RegExp(`^v${major}\\.`));
  });

  test(`Node ${major}: the unit tests pass`, { timeout: 900_000 }, async (t) => {
    const node = await binary();
    if (typeof node !== "string") return skipped(t, node.skip);
    // scripts/run-tests.mjs runs node:test with its own process.execPath: this Node. Without
    // NODE_TEST_CONTEXT, which would make that run report to this one instead of printing.
    const { NODE_TEST_CONTEXT: _, ...env } = process.env;
    const r = await run(node, [join("scripts", "run-tests.mjs"), "unit"], env, 880_000);
    assert.equal(
      r.code,
      0,
      `unit tests on Node ${major} failed:\n${r.stdout.slice(-8000)}\n${r.stderr.slice(-4000)}`,
    );
    // TAP summary ("# fail 0") on Node 22, spec ("ℹ fail 0") on Node 24: the default reporter changed.
    assert.match(r.stdout, /^(#|ℹ) fail 0$/m);
    assert.match(r.stdout, /^(#|ℹ) pass [1-9]\d*$/m, "tests ran");
  });

  test(`Node ${major}: CLI run, SDK workspace round trip, MCP over stdio`, {
    timeout: 300_000,
  }, async (t) => {
    const node = await binary();
    if (typeof node !== "string") return skipped(t, node.skip);
    const skip = await gvisorSkipReason();
    if (skip) return skipped(t, skip);
    if (!existsSync(CLI)) return skipped(t, "pyro is not built (npm run build)");
    const c = await testEnv({ PYRO_ENGINE: "gvisor" });
    try {
      const r = await run(
        node,
        ["--import", "tsx", join("test", "fixtures", "lts-smoke.ts")],
        c.env,
        280_000,
      );
      assert.equal(r.code, 0, `smoke on Node ${major}: ${r.stderr}\n${r.stdout}`);
      const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;
      assert.match(String(out.node), new RegExp(`^v${major}\\.`), "the smoke ran on that Node");
      assert.equal(out.cliExit, 0);
      assert.equal(out.cli, "cli\n");
      assert.equal(out.sdk, "sdk\n");
      assert.equal(out.mcp, "mcp\n");
    } finally {
      await c.cleanup();
    }
  });
}
