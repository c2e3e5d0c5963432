import assert from "node:assert/strict";
import { test } from "node:test";
import { FAST_RUN_DEFAULTS, parseFastRun } from "../../src/cli/fast-run.js";
import { RunInput } from "../../src/contract/vm.js";
import { decodeFrames, encodeRequest } from "../../src/engines/gvisor/exec-channel.js";

test("the fast path's defaults are RunInput's", () => {
  const parsed = RunInput.parse({ command: ["true"] });
  for (const [k, v] of Object.entries(FAST_RUN_DEFAULTS))
    assert.equal((parsed as Record<string, unknown>)[k], v, `default of ${k}`);
});

test("the fast path takes only the plain run command line", () => {
  assert.deepEqual(parseFastRun(["run", "--", "true"]), {
    environment: "debian:12",
    command: ["true"],
    timeoutSeconds: 30,
    json: false,
  });
  assert.deepEqual(
    parseFastRun(["run", "debian:12-base", "--json", "--timeout-seconds", "5", "--", "ls", "-la"]),
    {
      environment: "debian:12-base",
      command: ["ls", "-la"],
      timeoutSeconds: 5,
      json: true,
    },
  );
  // Everything else is the full CLI's: other flags, no `--`, no command, bad values, help.
  for (const argv of [
    ["run", "true"],
    ["run", "--"],
    ["run", "--vcpu-count", "2", "--", "true"],
    ["run", "--network", "--", "true"],
    ["run", "--timeout-seconds", "0", "--", "true"],
    ["run", "--timeout-seconds", "x", "--", "true"],
    ["run", "a", "b", "--", "true"],
    ["run", "--help"],
    ["run", "--secret", "A=1", "--", "true"],
    ["workspace", "exec", "w", "--", "true"],
  ])
    assert.equal(parseFastRun(argv), undefined, argv.join(" "));
});

test("exec channel frames round-trip", () => {
  const buf = encodeRequest({
    argv: ["sh", "-c", "echo é"],
    env: ["A=1"],
    cwd: "/w",
    user: { uid: 1000, gid: 1000 },
    deadlineMs: 1500,
    stdin: Buffer.from([0, 1, 2]),
  });
  const got: [string, string][] = [];
  // Split anywhere: frames are parsed as they complete.
  const rest = decodeFrames(buf.subarray(0, 7), (t, b) => got.push([t, b.toString()]));
  decodeFrames(Buffer.concat([rest, buf.subarray(7)]), (t, b) => got.push([t, b.toString("latin1")]));
  assert.deepEqual(
    got.map(([t]) => t),
    ["A", "A", "A", "E", "C", "U", "T", "I", "G"],
  );
  assert.equal(got[4]![1], "/w");
  assert.equal(got[5]![1], "1000 1000");
  assert.equal(got[6]![1], "1500");
});
