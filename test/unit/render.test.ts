import assert from "node:assert/strict";
import { test } from "node:test";
import * as z from "zod";
import { RENDER, renderResult } from "../../src/cli/render.js";
import { OPERATIONS } from "../../src/operations/table.js";

/**
 * Every CLI command prints its result without --json through RENDER. `workspace update` once
 * had none and crashed after applying the change; these tests feed every operation's renderer
 * results generated from its own zod result schema (and checked against it), so neither a
 * missing renderer nor a renderer that trips on a valid result can hide.
 */

// biome-ignore lint/suspicious/noExplicitAny: walks JSON Schema documents of any shape
type Json = any;

/**
 * An example value for a JSON Schema: `full` fills every optional field, takes the first
 * non-null branch and one array element; otherwise optional fields are left out, nullable
 * ones are null and arrays are as short as allowed. Both must satisfy the schema.
 */
function example(s: Json, full: boolean, key = ""): unknown {
  if (s.const !== undefined) return s.const;
  if (s.enum) return s.enum[0];
  if (s.default !== undefined && !full) return s.default;
  const branches: Json[] | undefined = s.anyOf ?? s.oneOf;
  if (branches) {
    const nonNull = branches.filter((b) => b.type !== "null");
    const pick = !full && nonNull.length < branches.length ? { type: "null" } : (nonNull[0] ?? branches[0]);
    return example(pick, full, key);
  }
  if (s.allOf) return example(s.allOf[0], full, key);
  const type = Array.isArray(s.type)
    ? full
      ? s.type.find((t: string) => t !== "null")
      : s.type.at(-1)
    : s.type;
  switch (type) {
    case "null":
      return null;
    case "boolean":
      return full;
    case "integer":
    case "number":
      return Math.max(
        s.minimum ?? 0,
        s.exclusiveMinimum !== undefined ? s.exclusiveMinimum + 1 : 0,
        full ? 3 : 0,
      );
    case "string":
      return stringFor(s, key);
    case "array": {
      const n = Math.max(s.minItems ?? 0, full ? 1 : 0);
      if (Array.isArray(s.prefixItems)) return s.prefixItems.map((p: Json) => example(p, full, key));
      return Array.from({ length: n }, () => example(s.items ?? {}, full, key));
    }
    case "object": {
      const out: Record<string, unknown> = {};
      const required = new Set<string>(s.required ?? []);
      for (const [k, v] of Object.entries<Json>(s.properties ?? {}))
        if (full || required.has(k)) out[k] = example(v, full, k);
      if (full && s.additionalProperties && typeof s.additionalProperties === "object" && !s.properties)
        out.KEY = example(s.additionalProperties, full, "KEY");
      return out;
    }
    default:
      return full ? "x" : null;
  }
}

/** A string the schema accepts: its format, or one matching its pattern (ids have fixed shapes). */
function stringFor(s: Json, key: string): string {
  if (s.format === "date-time") return "2026-01-01T00:00:00.000Z";
  if (s.pattern) {
    for (const c of [
      "ws_0123456789abcdef",
      "vm_0123456789abcdef",
      "sh_0123456789abcdef",
      "ws_0123456789abcdef:1",
      "name",
      "a",
    ])
      if (new RegExp(s.pattern).test(c)) return c;
    assert.fail(`no sample string for ${key} matches /${s.pattern}/`);
  }
  const base = `${key || "text"}-value`;
  return base.padEnd(s.minLength ?? 0, "x").slice(0, s.maxLength ?? base.length);
}

test("every operation with a CLI command has a human renderer", () => {
  for (const o of OPERATIONS)
    if (o.cli) assert.equal(typeof (RENDER as Record<string, unknown>)[o.name], "function", o.name);
});

test("every renderer prints a schema-valid result (full and minimal) as a non-empty string", () => {
  for (const o of OPERATIONS) {
    const schema = z.toJSONSchema(o.result, { io: "output", unrepresentable: "any" });
    for (const full of [true, false]) {
      const value = example(schema, full);
      // The example is checked against the operation's own schema, so it cannot drift from it.
      const parsed = o.result.safeParse(value);
      assert.ok(
        parsed.success,
        `${o.name} (${full ? "full" : "minimal"}): generated example is invalid: ${parsed.success ? "" : parsed.error.message}`,
      );
      const text = renderResult(o.name, parsed.data as Record<string, unknown>);
      assert.equal(typeof text, "string", o.name);
      assert.ok(text.trim().length > 0, `${o.name} (${full ? "full" : "minimal"}) renders something`);
      assert.ok(!/\[object Object\]/.test(text), `${o.name} renders no [object Object]: ${text}`);
    }
  }
});

test("workspace update renders the workspace's status, not a crash", () => {
  const o = OPERATIONS.find((x) => x.name === "workspace_update");
  assert.ok(o);
  const value = o.result.parse(example(z.toJSONSchema(o.result, { io: "output" }), true));
  const text = renderResult("workspace_update", value as Record<string, unknown>);
  assert.match(text, /^workspace: +workspace_id-value$/m);
});

test("renderResult names an operation without a renderer instead of calling undefined", () => {
  assert.throws(() => renderResult("no_such_op", {}), /no human rendering for operation no_such_op/);
});
