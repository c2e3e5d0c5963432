import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { REPO } from "../helpers.js";

/** The README's "Set up" code blocks: the commands a user runs on a fresh machine. */
function setupCommands(readme: string): string[] {
  const section = readme.split(/^## /m).find((s) => s.startsWith("Set up"));
  assert.ok(section, "README has a '## Set up' section");
  return [...section.matchAll(/```bash\n([\s\S]*?)```/g)].map((m) => m[1]!.trim());
}

test("README has exactly two set-up commands, and .ci/run runs exactly them", async () => {
  const readme = await readFile(join(REPO, "README.md"), "utf8");
  const ci = await readFile(join(REPO, ".ci", "run"), "utf8");
  const cmds = setupCommands(readme);
  assert.equal(cmds.length, 2, `expected 2 set-up commands, got ${JSON.stringify(cmds)}`);
  assert.match(cmds[0]!, /setup-host\.sh/);
  assert.match(cmds[0]!, /npm ci/);
  assert.match(cmds[0]!, /run debian:12 -- /);
  assert.equal(cmds[1], "npm test");
  const ciLines = ci
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#") && !l.startsWith("set ") && !l.startsWith("cd "));
  assert.deepEqual(ciLines, cmds);
});
