import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

/**
 * The CLI's fast paths (pyro-fast.cjs: `pyro run` from the warm pool; pyro-fast-exec.cjs:
 * `pyro workspace exec`; pyro-fast-list.cjs: `pyro workspace list`) are what the launcher loads before anything else, so their start-up
 * is their size and what they initialise. zod (~15 ms of schema set-up) and commander must
 * never be pulled in, nor the engines, e.g. by an import of the wire schemas or of the engine
 * registry through a module they share with the full CLI (workspaces/exec-flow.ts).
 *
 * Caps, in bytes, ~15-20 % above the sizes when they were set (December 2026: pyro-fast.cjs
 * 36,831, pyro-fast-exec.cjs 57,064, pyro-fast-list.cjs 35,703): growth past them should be
 * a decision (raise the cap here and say why in the commit), not an accident. pyro-fast.cjs
 * was raised to 46,000 for the missing-command hint (environments/command-hint.ts and the
 * catalog's command lists, ~2.9 KB), which the fast paths add as the full path does so
 * `--json` stays the same.
 */
const CAPS: Record<string, number> = {
  "pyro-fast.cjs": 46_000,
  "pyro-fast-exec.cjs": 66_000,
  "pyro-fast-list.cjs": 42_000,
};

/** Packages no fast bundle may contain. */
const BANNED = ["zod", "commander", "@modelcontextprotocol/server", "@modelcontextprotocol/client"];

const ROOT = join(import.meta.dirname, "..", "..");

interface Meta {
  inputs: Record<string, { imports: { path: string }[] }>;
}

test("the fast bundles hold no zod or commander and stay under their size caps", async () => {
  const dir = await mkdtemp(join(tmpdir(), "pyro-fast-bundles-"));
  try {
    // The real build's own configuration (scripts/bundle-cli.mjs), fast bundles only.
    const r = spawnSync(process.execPath, ["scripts/bundle-cli.mjs", "--fast-only", dir], {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 120_000,
    });
    assert.equal(r.status, 0, `bundle-cli.mjs --fast-only failed: ${r.stderr}`);
    for (const [name, cap] of Object.entries(CAPS)) {
      const meta = JSON.parse(await readFile(join(dir, `${name}.meta.json`), "utf8")) as Meta;
      const inputs = Object.keys(meta.inputs);
      // Sanity: the list is the bundle's (its entry and the shared exec/run code are in it).
      assert.ok(
        inputs.some((i) => i.startsWith("src/cli/fast-")),
        `${name}: ${inputs.join(", ")}`,
      );
      for (const pkg of BANNED) {
        const found = inputs.filter((i) => i.includes(`node_modules/${pkg}/`));
        // Which of pyro's own modules brings it in.
        const via = inputs.filter(
          (i) => i.startsWith("src/") && meta.inputs[i]!.imports.some((m) => found.includes(m.path)),
        );
        assert.deepEqual(found, [], `${name} contains ${pkg}, imported by ${via.join(", ")}`);
      }
      // Nor as a require left for run time.
      const code = await readFile(join(dir, name), "utf8");
      for (const pkg of BANNED) assert.ok(!code.includes(`require("${pkg}`), `${name} requires ${pkg}`);
      // Nor the engines themselves (the fast paths talk to the sandbox's exec channel).
      const engines = inputs.filter((i) => /^src\/engines\/[^/]+\/engine\.ts$/.test(i));
      assert.deepEqual(engines, [], `${name} contains engines`);
      const size = (await stat(join(dir, name))).size;
      assert.ok(size <= cap, `${name} is ${size} bytes, past its cap of ${cap} (see the comment above CAPS)`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
