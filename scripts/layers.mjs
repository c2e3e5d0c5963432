#!/usr/bin/env node
// The layer order of src/: the one table the layers test enforces and docs/architecture.md's
// diagram is drawn from. A file may import (`import type` and re-exports included) only from its
// own folder or from a folder in a lower row; folders in one row are peers that must not import
// each other, so a row never hides a cycle. `node scripts/layers.mjs` prints the diagram;
// `--check` lists every upward or sideways edge and exits 1 if there is one.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

/** Lowest first. Each row: the folders of src/ at that layer, and what the layer is for. */
export const LAYERS = [
  [["core"], "errors, ids, paths, host-path checks, command shaping: no pyro imports"],
  [["util"], "locks, JSON files, processes, tree removal, dropped errors: generic"],
  [["contract"], "the wire schemas per domain (zod) and their plain defaults"],
  [["network"], "namespaces, nftables, policies, DNS forwarding"],
  [["engines"], "gVisor, QEMU, Firecracker, host: each owns its handles; the registry"],
  [
    ["output", "environments", "project", "secrets"],
    "command output, root filesystems, host sources and export targets, secrets",
  ],
  [["sandbox"], "the record core: stores, owners, intents, reaping, disks, call context"],
  [["pool"], "warm sandboxes and workspace slots"],
  [["workspaces", "vms"], "the two managers and the workspace capabilities"],
  [["doctor"], "what the host can do"],
  [["runtime"], "builds the managers over one set of paths"],
  [["operations"], "the one operation table all faces serve"],
  [["tenants"], "tokens, tenants, transfers: who may reach what"],
  [["mcp"], "the MCP server"],
  [["remote"], "MCP over HTTP and its client"],
  [["host"], "host onramps: MCP client configs, connect, doctor of a host"],
  [["sdk"], "the TypeScript SDK"],
  [["cli"], "the pyro command"],
  [["index.ts"], 'the package entry: what `import ... from "pyro-mcp"` gets'],
];

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const SRC = join(ROOT, "src");

/** The row of a file under src/ (its top folder, or its own name for a file at the top). */
export function layerOf(file) {
  const top = relative(SRC, file).split(sep)[0];
  const i = LAYERS.findIndex(([names]) => names.includes(top));
  return { top, index: i };
}

function tsFiles(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...tsFiles(p));
    else if (e.name.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** Every relative module specifier of a file: static and type imports, re-exports, import(). */
export function specifiers(text) {
  const out = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(["'])(\.{1,2}\/[^"']+)\1/g;
  for (const m of text.matchAll(re)) out.push(m[2]);
  return out;
}

/** Every import that points up the table or sideways within a row, and every unplaced file. */
export function violations() {
  const found = [];
  for (const file of tsFiles(SRC)) {
    const from = layerOf(file);
    if (from.index < 0) {
      found.push({
        file: relative(ROOT, file),
        problem: `src/${from.top} is in no layer of scripts/layers.mjs`,
      });
      continue;
    }
    const text = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
    for (const spec of specifiers(text)) {
      const target = normalize(join(dirname(file), spec)).replace(/\.js$/, ".ts");
      if (!target.startsWith(SRC + sep)) continue;
      const to = layerOf(target);
      if (to.top === from.top) continue;
      if (to.index > from.index || (to.index === from.index && to.top !== from.top)) {
        found.push({
          file: relative(ROOT, file),
          problem: `imports ${relative(ROOT, target)}: ${from.top} may not import ${to.top} (${to.index > from.index ? "a higher layer" : "a peer in its row"})`,
        });
      }
    }
  }
  return found;
}

/** The diagram docs/architecture.md shows, highest layer first, as the arrows run down. */
export function diagram() {
  const rows = [...LAYERS].reverse().map(([names, what]) => `  ${names.join(" · ").padEnd(40)} ${what}`);
  return ["```text", ...rows.flatMap((r, i) => (i === 0 ? [r] : ["    ↓", r])), "```"].join("\n");
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes("--check")) {
    const v = violations();
    for (const x of v) console.log(`${x.file}: ${x.problem}`);
    console.log(
      v.length === 0 ? "layers: every import runs down" : `layers: ${v.length} imports run up or sideways`,
    );
    process.exit(v.length === 0 ? 0 : 1);
  }
  console.log(diagram());
}
