#!/usr/bin/env node
// Runs node:test over test/unit then test/e2e (Node 20's --test takes no globs for .ts).
// Usage: node scripts/run-tests.mjs [unit|e2e] [name-filter]
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

const [which, filter] = process.argv.slice(2);
const suites = which === "unit" ? ["unit"] : which === "e2e" ? ["e2e"] : ["unit", "e2e"];
const files = [];
for (const s of suites) {
  const dir = join("test", s);
  if (!existsSync(dir)) continue;
  for (const f of readdirSync(dir).sort()) {
    if (f.endsWith(".test.ts") && (!filter || f.includes(filter))) files.push(join(dir, f));
  }
}
if (files.length === 0) {
  console.error("no test files found");
  process.exit(1);
}
// One file at a time: e2e files start real sandboxes and the CI machine has 2 cores.
const r = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=1", ...files], {
  stdio: "inherit",
});
process.exit(r.status ?? 1);
