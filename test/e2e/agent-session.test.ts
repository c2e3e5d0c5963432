import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, realpath, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { CLI, withGvisorState, withHostDir } from "../helpers.js";

/**
 * The agent session of issue #27, as a model would run it: the BUILT server over stdio with
 * its default profile, driven by the official MCP client. A small Python project with one
 * failing test is seeded; the test is run (it fails and leaves __pycache__ behind), the file
 * read, fixed with an edit, the test run again (it passes), then diff, changed-only export and
 * delete. Each call's bytes (the model-facing text and structuredContent) are printed.
 *
 * What the model must not stumble on: the file comes back as its text, not a JSON string;
 * result text carries no nulls; the project's .gitignore keeps __pycache__ out of the diff
 * and the export (while include_ignored shows it is there); and the first attempt, in
 * debian:12, which has no python3, says which catalog environment has it.
 */

type ToolResult = {
  content?: { type: string; text?: string }[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
};

const CALC = "def add(a, b):\n    return a - b\n";
const TEST = [
  "import unittest",
  "from calc import add",
  "",
  "class AddTest(unittest.TestCase):",
  "    def test_add(self):",
  "        self.assertEqual(add(2, 3), 5)",
  "",
  'if __name__ == "__main__":',
  "    unittest.main()",
  "",
].join("\n");
const RUN_TESTS = "python3 -m unittest discover -v";

test("agent session over MCP (default profile, stdio): run, read, edit, re-run, diff, export, delete", {
  timeout: 600_000,
}, async (t) => {
  await withGvisorState(t, async ({ env }) => {
    await withHostDir("pyro-agent-session-", async (host) => {
      // The server starts in `host`: seed_path below it is allowed, exports land in pyro-exports/.
      const start = await realpath(host);
      const project = join(start, "project");
      await mkdir(project);
      await writeFile(join(project, "calc.py"), CALC);
      await writeFile(join(project, "test_calc.py"), TEST);
      await writeFile(join(project, ".gitignore"), "__pycache__/\n*.pyc\n");

      const transport = new StdioClientTransport({
        command: process.execPath,
        args: [CLI, "mcp", "serve"],
        env: Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined)),
        cwd: start,
        stderr: "pipe",
      });
      const client = new Client({ name: "pyro-agent-session", version: "0.0.0" });
      await client.connect(transport);
      const rows: string[] = [];
      const call = async (name: string, args: Record<string, unknown>) => {
        const r = (await client.callTool({ name, arguments: args })) as ToolResult;
        const text = (r.content ?? []).map((c) => c.text ?? "").join("\n");
        const textBytes = Buffer.byteLength(text);
        const structuredBytes = Buffer.byteLength(JSON.stringify(r.structuredContent ?? {}));
        const label = args.include_ignored ? `${name} (include_ignored)` : name;
        const row = `${label.padEnd(34)} text ${String(textBytes).padStart(6)} B   structuredContent ${String(structuredBytes).padStart(6)} B`;
        rows.push(row);
        assert.notEqual(r.isError, true, `${name} failed: ${text}`);
        return { text, s: r.structuredContent ?? {} };
      };
      let workspaceId: string | undefined;
      try {
        // A first try where python3 is not: the result says which catalog environment has it.
        const missing = await call("vm_run", { environment: "debian:12", command: RUN_TESTS });
        assert.equal(missing.s.exit_code, 127, missing.text);
        assert.match(
          missing.text,
          /hint: command not found: python3 is not in debian:12; catalog environments that have it: debian:12-build/,
        );
        assert.ok(
          (missing.s.notes as string[]).some((n) => /debian:12-build/.test(n)),
          JSON.stringify(missing.s.notes),
        );

        const created = await call("workspace_create", {
          environment: "debian:12-build",
          seed_path: project,
        });
        workspaceId = String(created.s.workspace_id);
        assert.doesNotMatch(created.text, /null/, "nulls are left out of the text");
        assert.ok(
          Object.values(created.s).some((v) => v === null),
          "structuredContent keeps its null fields",
        );

        const failing = await call("workspace_exec", { workspace_id: workspaceId, command: RUN_TESTS });
        assert.notEqual(failing.s.exit_code, 0, failing.text);
        assert.match(failing.text, /FAILED \(failures=1\)/);

        const read = await call("workspace_file_read", { workspace_id: workspaceId, path: "calc.py" });
        assert.equal(read.text, CALC, "the text is the file itself");
        assert.equal(read.s.content, CALC);

        await call("workspace_file_edit", {
          workspace_id: workspaceId,
          path: "calc.py",
          old_string: "return a - b",
          new_string: "return a + b",
        });

        const passing = await call("workspace_exec", { workspace_id: workspaceId, command: RUN_TESTS });
        assert.equal(passing.s.exit_code, 0, passing.text);
        assert.match(passing.text, /\nOK\n/);

        // The test runs left bytecode behind: there, and shown when asked for...
        const all = await call("workspace_diff", {
          workspace_id: workspaceId,
          name_only: true,
          include_ignored: true,
        });
        const allPaths = (all.s.files as { path: string }[]).map((f) => f.path);
        assert.ok(
          allPaths.some((p) => p.startsWith("__pycache__/")),
          `the tests made __pycache__: ${allPaths.join(", ")}`,
        );
        // ...but not in the diff a model reviews, nor in its export.
        const diff = await call("workspace_diff", { workspace_id: workspaceId });
        assert.deepEqual(
          (diff.s.files as { path: string; status: string }[]).map((f) => [f.path, f.status]),
          [["calc.py", "modified"]],
        );
        assert.match(String(diff.s.patch), /-\s+return a - b\n\+\s+return a \+ b/);
        assert.doesNotMatch(diff.text, /__pycache__|\.pyc/);

        const exported = await call("workspace_export", {
          workspace_id: workspaceId,
          output: "fix",
          changed_only: true,
        });
        assert.equal(exported.s.files, 1, exported.text);
        const out = String(exported.s.output);
        assert.deepEqual(await readdir(out), ["calc.py"]);
        assert.equal(await readFile(join(out, "calc.py"), "utf8"), CALC.replace("a - b", "a + b"));
        assert.equal(existsSync(join(out, "__pycache__")), false);

        const deleted = await call("workspace_delete", { workspace_id: workspaceId });
        assert.equal(deleted.s.deleted, true);
        workspaceId = undefined;
        // The bytes returned per call, in one block for the reader of the test output.
        console.log(`agent session, bytes returned per call:\n  ${rows.join("\n  ")}`);
      } finally {
        if (workspaceId)
          await client
            .callTool({ name: "workspace_delete", arguments: { workspace_id: workspaceId } })
            .catch(() => undefined);
        await client.close();
      }
    });
  });
});
