import assert from "node:assert/strict";
import { test } from "node:test";
import { askFirstKind, parseAskFirst } from "../../src/mcp/elicit.js";

test("--ask-first: kinds parse (comma-separated, repeatable), a bad kind or fallback is a clear error", () => {
  const p = parseAskFirst(["delete,reset", "export"]);
  assert.deepEqual([...p.kinds].sort(), ["delete", "export", "reset"]);
  assert.equal(p.fallback, "deny");
  assert.equal(parseAskFirst(["delete"], "allow").fallback, "allow");
  assert.throws(() => parseAskFirst(["drop"]), /--ask-first "drop" is not one of delete, export, reset/);
  assert.throws(
    () => parseAskFirst(["delete"], "maybe"),
    /--ask-first-fallback "maybe" is not allow or deny/,
  );
});

test("ask-first kinds: deletes, resets, and only forced exports", () => {
  assert.equal(askFirstKind("workspace_delete", { workspace_id: "w" }), "delete");
  assert.equal(askFirstKind("vm_delete", {}), "delete");
  assert.equal(askFirstKind("workspace_snapshot_delete", {}), "delete");
  assert.equal(askFirstKind("workspace_reset", {}), "reset");
  assert.equal(askFirstKind("workspace_export", { force: true }), "export");
  assert.equal(askFirstKind("workspace_export", {}), undefined);
  assert.equal(askFirstKind("workspace_exec", {}), undefined);
});
