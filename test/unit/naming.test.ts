import assert from "node:assert/strict";
import { test } from "node:test";
import * as z from "zod";
import { cliFieldName } from "../../src/cli/commands.js";
import { PyroError } from "../../src/core/errors.js";
import {
  checkLabels,
  checkName,
  checkNameFree,
  labelsMatch,
  looksLikeName,
  resolveName,
} from "../../src/workspaces/naming.js";

test("names: letters, digits, . _ -, at most 63, never ws_…; empty clears", () => {
  assert.equal(checkName("api-fix.v2_a"), "api-fix.v2_a");
  assert.equal(checkName(""), null);
  for (const bad of ["-x", "a b", "x/y", "a".repeat(64), "ws_0123456789abcdef", "ws_mine"])
    assert.throws(
      () => checkName(bad),
      (e: unknown) => e instanceof PyroError && e.code === "invalid_argument",
    );
  // Id-shaped or malformed-id strings are left to the id checks ("malformed workspace id").
  assert.equal(looksLikeName("api-fix"), true);
  for (const s of ["ws_0123456789abcdef", "ws_0123456789ABCDEF", "../x", ""])
    assert.equal(looksLikeName(s), false);
});

test("labels: key syntax, value length, at most 32; a filter matches when every pair does", () => {
  assert.deepEqual(checkLabels({ team: "core", "app.kubernetes.io/name": "x=y" }), {
    team: "core",
    "app.kubernetes.io/name": "x=y",
  });
  assert.throws(() => checkLabels({ "bad key": "v" }), /bad label key/);
  assert.throws(() => checkLabels({ k: "x".repeat(257) }), /bad value/);
  assert.throws(() => checkLabels({ k: "a\nb" }), /bad value/);
  assert.throws(
    () => checkLabels(Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, "v"]))),
    /at most 32/,
  );
  assert.equal(labelsMatch({ a: "1", b: "2" }, { a: "1" }), true);
  assert.equal(labelsMatch({ a: "1" }, { a: "1", b: "2" }), false);
  assert.equal(labelsMatch({ a: "1" }, {}), true);
});

test("CLI: a collection input takes a repeatable flag named for one item", () => {
  assert.equal(cliFieldName("labels", z.record(z.string(), z.string()).optional()), "label");
  assert.equal(cliFieldName("clear_labels", z.array(z.string()).optional()), "clear_label");
  assert.equal(cliFieldName("ttl_seconds", z.number().optional()), "ttl_seconds");
});

test("workspace references: every input field that takes a workspace is found from its schema (names resolved per tenant, ids checked by the remote gate)", async () => {
  const { OPERATIONS } = await import("../../src/operations/table.js");
  const { workspaceRefFields } = await import("../../src/operations/refs.js");
  let n = 0;
  for (const op of OPERATIONS) {
    const refs = workspaceRefFields(op.input);
    for (const k of Object.keys(op.input.shape))
      if (/(^|_)workspace_id$/.test(k)) {
        assert.ok(refs.includes(k), `${op.name}.${k} uses the shared workspaceId schema`);
        n++;
      }
    for (const k of refs) assert.match(k, /(^|_)workspace_id$/, `${op.name}.${k} is named as a reference`);
  }
  assert.ok(n >= 30, `${n} workspace reference fields`);
  // Wrapped (optional, default) still counts; another string does not.
  const { workspaceId } = await import("../../src/contract/workspace.js");
  assert.deepEqual(
    workspaceRefFields(z.object({ a: workspaceId.optional(), b: z.string(), c_workspace_id: workspaceId })),
    ["a", "c_workspace_id"],
  );
});

test("resolveName and checkNameFree look names up among one tenant's live workspaces only", async () => {
  const recs = [
    { id: "ws_000000000000000a", rec: { name: "main", tenant: undefined, state: "running" } },
    { id: "ws_000000000000000b", rec: { name: "main", tenant: "t1", state: "running" } },
    { id: "ws_000000000000000c", rec: { name: "old", tenant: undefined, state: "expired" } },
    { id: "ws_000000000000000d", rec: { name: "two", tenant: undefined, state: "stopped" } },
    { id: "ws_000000000000000e", rec: { name: "two", tenant: undefined, state: "running" } },
  ];
  // The port's records, as far as names need them: every entry, in any order.
  const records = {
    entries: async function* () {
      yield* recs;
    },
  } as never;
  assert.equal(await resolveName(records, "main", undefined), "ws_000000000000000a");
  assert.equal(await resolveName(records, "main", "t1"), "ws_000000000000000b");
  // Ids and what is no name come back unchanged (for checkId to judge).
  assert.equal(await resolveName(records, "ws_00000000000000ff", undefined), "ws_00000000000000ff");
  const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c;
  await assert.rejects(resolveName(records, "old", undefined), code("not_found"));
  await assert.rejects(resolveName(records, "main", "t2"), code("not_found"));
  await assert.rejects(resolveName(records, "two", undefined), code("invalid_argument"));
  await assert.rejects(checkNameFree(records, "main", undefined), code("invalid_argument"));
  await checkNameFree(records, "main", undefined, "ws_000000000000000a");
  await checkNameFree(records, "main", "t2");
  await checkNameFree(records, "old", undefined);
});
