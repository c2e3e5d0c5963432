import assert from "node:assert/strict";
import { test } from "node:test";
import * as S from "../../src/contract/schemas.js";
import { type Hint, PyroError } from "../../src/core/errors.js";
import { errorForFace, renderHint } from "../../src/operations/hints.js";
import { describeIssues, strictInput } from "../../src/operations/invoke.js";
import { editDistance, nearest, unknownNames } from "../../src/operations/suggest.js";
import { getOperation } from "../../src/operations/table.js";
import { toolInput, toolInputJsonSchema } from "../../src/operations/tool-schema.js";

/** The pure parts of how the three faces take input and word errors. */

test("nearest: affixes and small typos match, unrelated names do not", () => {
  const fields = [
    "environment",
    "command",
    "vcpu_count",
    "mem_mib",
    "timeout_seconds",
    "ttl_seconds",
    "network",
  ];
  assert.equal(nearest("timeout", fields), "timeout_seconds");
  assert.equal(nearest("comand", fields), "command");
  assert.equal(nearest("memory_mib", fields), "mem_mib");
  assert.equal(nearest("env", fields), "environment");
  assert.equal(nearest("--timeout", ["--timeout-seconds", "--ttl-seconds"]), "--timeout-seconds");
  assert.equal(nearest("timeoutSecond", ["timeoutSeconds", "ttlSeconds"]), "timeoutSeconds");
  assert.equal(nearest("banana", fields), undefined);
  assert.equal(nearest("", fields), undefined);
  assert.equal(editDistance("a-b", "a_b"), 0);
});

test("unknownNames: one line with the suggestion and the valid names", () => {
  assert.equal(
    unknownNames("parameter", ["timeout"], ["command", "timeout_seconds"]),
    "unknown parameter `timeout`; did you mean `timeout_seconds`? valid: `command`, `timeout_seconds`",
  );
  assert.equal(
    unknownNames("parameter", ["timeout", "zzz"], ["timeout_seconds"]),
    "unknown parameter `timeout`; did you mean `timeout_seconds`? unknown parameter `zzz`; valid: `timeout_seconds`",
  );
});

test("describeIssues: unknown parameters first, missing required fields say required", () => {
  const schema = strictInput(S.RunInput);
  const raw = { timeout: 1 };
  const r = schema.safeParse(raw, { reportInput: true });
  assert.equal(r.success, false);
  const msg = describeIssues(r.error!, (f) => f, schema, raw);
  assert.match(
    msg,
    /^unknown parameter `timeout`; did you mean `timeout_seconds`\? valid: `environment`, `command`/,
  );
  assert.match(msg, /`command` is required$/);
  // In the SDK's spelling.
  const camel = (f: string) => f.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
  assert.match(
    describeIssues(r.error!, camel, schema, raw),
    /did you mean `timeoutSeconds`\?.*`allowHostCompat`/,
  );
  // A wrong type is not "required".
  const bad = schema.safeParse({ command: 5 }, { reportInput: true });
  assert.doesNotMatch(
    describeIssues(bad.error!, (f) => f, schema, { command: 5 }),
    /required/,
  );
});

const HINT: Hint = [
  "delete it with ",
  { op: "workspace_delete", args: { workspace_id: "ws_0123456789abcdef" } },
  " or list them with ",
  { op: "workspace_list" },
];

test("renderHint: each face names operations its own way", () => {
  assert.equal(
    renderHint(HINT, "cli"),
    "delete it with `pyro workspace delete ws_0123456789abcdef` or list them with `pyro workspace list`",
  );
  assert.equal(
    renderHint(HINT, "sdk"),
    'delete it with `pyro.deleteWorkspace("ws_0123456789abcdef")` or list them with `pyro.listWorkspaces()`',
  );
  assert.equal(
    renderHint(HINT, "mcp"),
    'delete it with the `workspace_delete` tool with {"workspace_id":"ws_0123456789abcdef"} or list them with the `workspace_list` tool',
  );
  // Optional positionals and other fields go into the SDK's options object and CLI flags.
  const run: Hint = [{ op: "vm_run", args: { command: "ls -la", timeout_seconds: 5 } }];
  assert.equal(renderHint(run, "cli"), "`pyro run --timeout-seconds 5 -- ls -la`");
  assert.equal(renderHint(run, "sdk"), '`pyro.runInVm({ command: "ls -la", timeoutSeconds: 5 })`');
  // An operation that is no tool is host administration: named as the operator's command.
  assert.match(renderHint([{ op: "doctor" }], "mcp"), /`pyro doctor` \(the operator runs this on the host\)/);
});

test("renderHint: advice to give up isolation never reaches a model", () => {
  const fix: Hint = [
    "install runsc; check ",
    { op: "doctor" },
    { unisolated: [", or pass ", { option: "allow_host_compat", value: true }, " to run WITHOUT isolation"] },
  ];
  assert.match(renderHint(fix, "cli"), /check `pyro doctor`, or pass `--allow-host-compat` to run WITHOUT/);
  assert.match(renderHint(fix, "sdk"), /check `pyro.doctor\(\)`, or pass `allowHostCompat: true`/);
  const mcp = renderHint(fix, "mcp");
  assert.doesNotMatch(mcp, /allow|isolation/i);
  assert.match(mcp, /^install runsc; check `pyro doctor`/);
  // A hint that is only an isolation escape leaves nothing for a model.
  const only = new PyroError("invalid_argument", "x", [
    { unisolated: ["pass ", { option: "allow_host_compat", value: true }] },
  ]);
  assert.equal(errorForFace(only, "mcp").hint, undefined);
  assert.equal(errorForFace(only, "cli").hint, "pass `--allow-host-compat`");
});

test("errorForFace keeps code, message and stack; plain strings pass unchanged", () => {
  const e = new PyroError("not_found", "no workspace", HINT);
  const cli = errorForFace(e, "cli");
  assert.equal(cli.code, "not_found");
  assert.equal(cli.message, "no workspace");
  assert.equal(cli.stack, e.stack);
  assert.match(cli.hint ?? "", /pyro workspace list/);
  assert.deepEqual(cli.hintParts, HINT, "a re-rendered error can be rendered again");
  assert.match(errorForFace(cli, "mcp").hint ?? "", /`workspace_list` tool/);
  const plain = new PyroError("timeout", "slow", "wait");
  assert.equal(errorForFace(plain, "mcp"), plain);
  assert.equal(errorForFace(new Error("boom"), "sdk").code, "engine_failure");
});

test("tool schemas: strict, and allow_host_compat only when the operator allows it", () => {
  for (const name of ["vm_run", "vm_create", "workspace_create"]) {
    const json = toolInputJsonSchema(name);
    assert.equal(json.additionalProperties, false, name);
    assert.ok(!("allow_host_compat" in (json.properties as object)), `${name} hides allow_host_compat`);
    assert.ok(
      "allow_host_compat" in (toolInputJsonSchema(name, { allowHostCompat: true }).properties as object),
    );
    assert.equal(
      toolInput(getOperation(name)).safeParse({ command: "x", allow_host_compat: true }).success,
      false,
    );
  }
  assert.equal(toolInputJsonSchema("workspace_exec").additionalProperties, false);
});

test("getOperation: unknown names are a PyroError with the nearest operation", () => {
  assert.throws(
    () => getOperation("vm_rnu"),
    (e: unknown) =>
      e instanceof PyroError && e.code === "unknown_operation" && /did you mean `vm_run`/.test(e.message),
  );
});
