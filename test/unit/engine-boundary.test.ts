import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { test } from "node:test";

/**
 * Engines own their handles and are asked questions, not compared by name (issue 26): code
 * outside src/engines/ neither compares an engine's name nor reads a handle's data. The
 * type checker stops most data reads (SandboxHandle.data is `object`); this catches casts
 * and the name comparisons the types cannot see.
 */

const SRC = join(import.meta.dirname, "../../src");
const NAME = "(?:gvisor|qemu|firecracker|host)";
/** `x === "qemu"`, `"gvisor" !== y`, `case "host":` */
const NAME_COMPARISON = new RegExp(
  `(?:===|!==)\\s*"${NAME}"|"${NAME}"\\s*(?:===|!==)|\\bcase\\s+"${NAME}"\\s*:`,
);
/** `handle.data`, `rec.handle?.data`, `entry.handle.data.pid`, `(h as SandboxHandle).data`: any use of it. */
const HANDLE_DATA = /\b\w*[hH]andle\)?!?\??\.data\b|as SandboxHandle\)\.data\b/;

/**
 * The places allowed to do either, each with its reason. `match`: the allowed text (one
 * site); absent: the whole file. An entry that matches nothing in an existing file fails
 * (drop it); one whose file is gone is skipped (the lead moves files while this lands).
 */
const ALLOWED: { file: string; match?: string; reason: string }[] = [
  {
    file: "runtime/engine-select.ts",
    reason: "engine code: choosing and constructing engines by name is its job (moving to engines/select.ts)",
  },
];

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(p));
    else if (e.name.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** Every offending line outside engines/ (`file:line: text`), the allowlist applied. */
export function boundaryViolations(src: string): { violations: string[]; unused: string[] } {
  const violations: string[] = [];
  const used = new Set<number>();
  for (const path of sourceFiles(src)) {
    const rel = relative(src, path);
    if (rel.startsWith("engines/")) continue;
    readFileSync(path, "utf8")
      .split("\n")
      .forEach((line, i) => {
        const code = line.replace(/\/\/.*$/, "");
        if (/^\s*(?:\*|\/\*)/.test(code) || !(NAME_COMPARISON.test(code) || HANDLE_DATA.test(code))) return;
        const allowed = ALLOWED.findIndex((a) => a.file === rel && (!a.match || code.includes(a.match)));
        if (allowed >= 0) used.add(allowed);
        else violations.push(`${rel}:${i + 1}: ${line.trim()}`);
      });
  }
  const unused = ALLOWED.filter((a, i) => !used.has(i) && existsSync(join(src, a.file))).map(
    (a) => `${a.file}${a.match ? ` (${a.match})` : ""}`,
  );
  return { violations, unused };
}

test("no engine-name comparison and no handle data read outside src/engines/", () => {
  const { violations, unused } = boundaryViolations(SRC);
  assert.deepEqual(
    violations,
    [],
    "ask the engine instead: a trait (Engine.traits), an optional method checked by presence (freeze, settle, hasInit…), or engines/channel.ts for a stored handle's exec channel, pid and expiry",
  );
  assert.deepEqual(unused, [], "allowlist entries that allow nothing any more: remove them");
});

test("the patterns catch what they are for (and not a chunk's data)", () => {
  for (const bad of [`if (rec.engine === "gvisor") {`, `if ("qemu" !== engine) return;`, `    case "host":`])
    assert.ok(NAME_COMPARISON.test(bad), bad);
  for (const fine of [`const mode = "gvisor";`, `engine: "qemu" as const,`, `x === "hostname"`])
    assert.ok(!NAME_COMPARISON.test(fine), fine);
  for (const bad of [
    `pidAlive(entry.handle.data.pid as number)`,
    `rec.handle?.data.containerId`,
    `const d = handle.data as Record<string, unknown>;`,
    `(x as SandboxHandle).data`,
    `rec.handle!.data`,
  ])
    assert.ok(HANDLE_DATA.test(bad), bad);
  for (const fine of [`next_cursor: from + h.data.length`, `chunk.data.subarray(0)`, `parsed.data.tokens`])
    assert.ok(!HANDLE_DATA.test(fine), fine);
});

test("network/ (below engines) imports nothing of engines/ but the static binaries' location", () => {
  const edges: string[] = [];
  for (const path of sourceFiles(join(SRC, "network")))
    for (const m of readFileSync(path, "utf8").matchAll(/from "(\.\.\/engines\/[^"]+)"/g))
      if (m[1] !== "../engines/static-binaries.js") edges.push(`${relative(SRC, path)} → ${m[1]}`);
  assert.deepEqual(edges, []);
});
