import assert from "node:assert/strict";
import { test } from "node:test";
import { PyroError } from "../../src/core/errors.js";
import { checkId, isValidId, newId } from "../../src/core/ids.js";
import { renderHint } from "../../src/operations/hints.js";

test("newId makes well-formed, distinct ids of each kind", () => {
  const ids = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const ws = newId("ws");
    const vm = newId("vm");
    assert.match(ws, /^ws_[0-9a-f]{16}$/);
    assert.match(vm, /^vm_[0-9a-f]{16}$/);
    assert.ok(isValidId("ws", ws) && isValidId("vm", vm));
    ids.add(ws).add(vm);
  }
  assert.equal(ids.size, 400);
});

test("isValidId rejects anything that could become a path or a different kind", () => {
  const good = "ws_0123456789abcdef";
  assert.ok(isValidId("ws", good));
  for (const bad of [
    "",
    "../x",
    "ws_0123456789abcde",
    "ws_0123456789abcdef0",
    "ws_0123456789ABCDEF",
    "vm_0123456789abcdef",
    `${good}/..`,
    `${good}\n`,
    ` ${good}`,
    "ws_../../../../etc",
    42,
    null,
    undefined,
    {},
  ]) {
    assert.equal(isValidId("ws", bad), false, JSON.stringify(bad));
  }
  assert.equal(isValidId("vm", good), false);
});

test("checkId returns the id or throws invalid_argument with a short, clear message", () => {
  assert.equal(checkId("vm", "vm_00000000000000ff"), "vm_00000000000000ff");
  const long = "x".repeat(10_000);
  assert.throws(
    () => checkId("ws", long),
    (e: unknown) => {
      assert.ok(e instanceof PyroError);
      assert.equal(e.code, "invalid_argument");
      assert.match(e.message, /^malformed workspace id "x{60}…"$/);
      assert.match(renderHint(e.hintParts ?? [], "cli"), /ws_0123456789abcdef.*pyro workspace list/);
      assert.match(renderHint(e.hintParts ?? [], "mcp"), /the `workspace_list` tool/);
      return true;
    },
  );
  assert.throws(() => checkId("vm", "../x"), /malformed VM id "\.\.\/x"/);
  assert.throws(() => checkId("vm", undefined), /malformed VM id undefined/);
});
