import assert from "node:assert/strict";
import { test } from "node:test";
import type * as z from "zod";
import { describeOf } from "../../src/cli/commands.js";
import { faceText } from "../../src/operations/face-text.js";
import { getOperation, OPERATIONS, type Operation } from "../../src/operations/table.js";

/** The operation table's prose, rendered per face (src/operations/face-text.ts). */

const run = getOperation("vm_run") as unknown as Operation;

test("the CLI face names commands and flags, not tools and parameters", () => {
  const text = "prefer vm_run; use workspace_* only for more; page it with output_read; unless network=true";
  assert.equal(
    faceText(text, "cli", run),
    "prefer `pyro run`; use `pyro workspace …` only for more; page it with `pyro output read`; unless --network",
  );
  assert.equal(faceText("at most max_output_bytes", "cli", run), "at most --max-output-bytes");
  assert.equal(faceText("network_policy=egress.", "cli", run), "--network-policy egress.");
  // A collection field is one flag per item; a result field stays as the caller gets it.
  assert.equal(faceText("allow_cidr wins", "cli", run), "--allow-cidr wins");
  assert.equal(faceText("counted in stdout_omitted_bytes", "cli", run), "counted in stdout_omitted_bytes");
  assert.equal(faceText("This is the default tool: fine", "cli", run), "This is the default command: fine");
});

test("the SDK face names methods and camelCase options; MCP keeps the wire terms", () => {
  const text = "prefer vm_run unless network=true, at most max_output_bytes";
  assert.equal(
    faceText(text, "sdk", run),
    "prefer `pyro.runInVm()` unless network: true, at most maxOutputBytes",
  );
  assert.equal(faceText(text, "mcp", run), text);
});

test("no operation's CLI help names a tool or a parameter=value", () => {
  // Wire names with `_` (`doctor`, `prepare` are plain words, and the commands' own names).
  const names = new Set<string>(OPERATIONS.map((o) => o.name).filter((n) => n.includes("_")));
  const inputs = new Set(OPERATIONS.flatMap((o) => Object.keys(o.input.shape)));
  const left: string[] = [];
  for (const o of OPERATIONS as unknown as Operation[]) {
    const texts = [
      o.description,
      ...Object.values(o.input.shape as Record<string, z.ZodType>).map((t) => describeOf(t) ?? ""),
    ];
    for (const t of texts) {
      const cli = faceText(t, "cli", o);
      for (const m of cli.matchAll(/\b([a-z][a-z0-9_]*)(=\S+)?/g))
        if (names.has(m[1]!) || (m[2] && inputs.has(m[1]!))) left.push(`${o.name}: ${m[0]} in ${cli}`);
      assert.doesNotMatch(cli, /\b[a-z]+_\*/, `${o.name}: a tool family left in: ${cli}`);
    }
  }
  assert.deepEqual(left, []);
});
