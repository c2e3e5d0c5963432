import assert from "node:assert/strict";
import { test } from "node:test";
import { parseFastExec } from "../../src/cli/fast-exec.js";
import { LIMITS, OUTPUT_BUDGET } from "../../src/contract/defaults.js";
import { WorkspaceExecInput } from "../../src/contract/workspace.js";
import { CATALOG } from "../../src/environments/catalog.js";
import { DEFAULT_RUNTIME } from "../../src/environments/runtime-config.js";
import { EnvironmentStore } from "../../src/environments/store.js";

const WS = "ws_0123456789abcdef";

test("the workspace exec fast path's defaults and limits are WorkspaceExecInput's", () => {
  const parsed = WorkspaceExecInput.parse({ workspace_id: WS, command: ["true"] });
  const fast = parseFastExec(["workspace", "exec", WS, "--", "true"])!;
  assert.equal(fast.timeoutSeconds, parsed.timeout_seconds);
  assert.equal(fast.maxOutputBytes, parsed.max_output_bytes);
  for (const [n, ok] of [
    [LIMITS.timeoutMax, true],
    [LIMITS.timeoutMax + 1, false],
  ] as const) {
    assert.equal(
      WorkspaceExecInput.safeParse({ workspace_id: WS, command: "x", timeout_seconds: n }).success,
      ok,
    );
    assert.equal(!!parseFastExec(["workspace", "exec", WS, "--timeout-seconds", String(n), "--", "x"]), ok);
  }
  for (const n of [OUTPUT_BUDGET.min - 1, OUTPUT_BUDGET.min, OUTPUT_BUDGET.max, OUTPUT_BUDGET.max + 1]) {
    const schema = WorkspaceExecInput.safeParse({
      workspace_id: WS,
      command: "x",
      max_output_bytes: n,
    }).success;
    assert.equal(
      !!parseFastExec(["workspace", "exec", WS, "--max-output-bytes", String(n), "--", "x"]),
      schema,
    );
  }
});

test("a catalog environment runs commands with the default runtime (what the fast path assumes)", async () => {
  const store = new EnvironmentStore("/nonexistent-pyro-envs", {}, []);
  for (const c of CATALOG) assert.deepEqual(await store.runtimeConfig(c.name), DEFAULT_RUNTIME, c.name);
});

test("the workspace exec fast path takes only the plain command line", () => {
  assert.deepEqual(parseFastExec(["workspace", "exec", WS, "--", "make", "test"]), {
    workspaceId: WS,
    command: ["make", "test"],
    timeoutSeconds: 30,
    maxOutputBytes: OUTPUT_BUDGET.default,
    json: false,
  });
  assert.deepEqual(
    parseFastExec([
      "workspace",
      "exec",
      "--json",
      "--timeout-seconds",
      "5",
      WS,
      "--max-output-bytes",
      "2048",
      "--",
      "ls",
      "--json",
    ]),
    { workspaceId: WS, command: ["ls", "--json"], timeoutSeconds: 5, maxOutputBytes: 2048, json: true },
  );
  // Everything else is the full CLI's: names, other flags, no `--`, no command, bad values, help.
  for (const argv of [
    ["workspace", "exec", "my-workspace", "--", "true"],
    ["workspace", "exec", WS, "true"],
    ["workspace", "exec", WS, "--"],
    ["workspace", "exec", "--", "true"],
    ["workspace", "exec", WS, WS, "--", "true"],
    ["workspace", "exec", WS, "--secret-env", "TOKEN", "--", "true"],
    ["workspace", "exec", WS, "--timeout-seconds", "0", "--", "true"],
    ["workspace", "exec", WS, "--timeout-seconds=5", "--", "true"],
    ["workspace", "exec", WS, "--timeout-seconds", "--", "true"],
    ["workspace", "exec", WS, "--help", "--", "true"],
    ["workspace", "exec", WS, "--remote", "http://x", "--", "true"],
    ["workspace", "exec", "ws_0123", "--", "true"],
    ["workspace", "logs", WS, "--", "true"],
    ["run", "--", "true"],
  ])
    assert.equal(parseFastExec(argv), undefined, argv.join(" "));
});
