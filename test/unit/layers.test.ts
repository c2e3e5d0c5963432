import assert from "node:assert/strict";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { REPO } from "../helpers.js";

interface LayersModule {
  LAYERS: [string[], string][];
  violations(): { file: string; problem: string }[];
  specifiers(text: string): string[];
  diagram(): string;
}
const layers = (await import(pathToFileURL(join(REPO, "scripts", "layers.mjs")).href)) as LayersModule;

test("every import in src/ runs down the layer table (type imports included)", () => {
  const found = layers.violations();
  assert.deepEqual(
    found.map((v) => `${v.file}: ${v.problem}`),
    [],
    "an import points up scripts/layers.mjs's table: move the shared code down instead",
  );
});

test("the checker sees every kind of import a file can make", () => {
  const text = [
    'import { a } from "../engines/types.js";',
    'import type { B } from "../workspaces/manager.js";',
    'export { c } from "./c.js";',
    'export type { D } from "../core/d.js";',
    'const e = await import("../cli/main.js");',
    'import "../util/side-effect.js";',
    'import x from "zod";',
  ].join("\n");
  assert.deepEqual(layers.specifiers(text), [
    "../engines/types.js",
    "../workspaces/manager.js",
    "./c.js",
    "../core/d.js",
    "../cli/main.js",
    "../util/side-effect.js",
  ]);
});

test("an upward import planted in src/ is reported", async () => {
  // A real file in a low layer importing a high one: what the test above must catch.
  const dir = join(REPO, "src", "util");
  const planted = join(dir, "zz-layers-probe.ts");
  await mkdir(dir, { recursive: true });
  await writeFile(
    planted,
    'import type { Runtime } from "../runtime/runtime.js";\nexport type R = Runtime;\n',
  );
  try {
    const found = layers.violations().filter((v) => v.file.endsWith("zz-layers-probe.ts"));
    assert.equal(found.length, 1);
    assert.match(found[0]?.problem ?? "", /util may not import runtime \(a higher layer\)/);
  } finally {
    await rm(planted, { force: true });
  }
});

test("docs/architecture.md shows the layer diagram drawn from the same table", async () => {
  const doc = await readFile(join(REPO, "docs", "architecture.md"), "utf8");
  assert.ok(
    doc.includes(layers.diagram()),
    "docs/architecture.md's layer diagram differs from scripts/layers.mjs: paste `node scripts/layers.mjs` into it",
  );
  for (const [names] of layers.LAYERS)
    for (const n of names) assert.ok(doc.includes(n), `${n} is not in the doc`);
});
