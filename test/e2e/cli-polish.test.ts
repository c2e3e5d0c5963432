import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { runCli } from "../helpers.js";

/**
 * The CLI held to gh and docker (issue #30): usage errors that say the fix, help in the CLI's
 * own terms, completion, colour, and the notes a newcomer needs. No sandbox is started here.
 */

describe("a guest command without `--`", () => {
  test("pyro run debian:12 ls -la says to put the command after `--`, spelled out", async () => {
    const r = await runCli(["run", "debian:12", "ls", "-la"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown option `-la`/);
    assert.match(r.stderr, /fix: put the guest command after `--`.*`pyro run debian:12 -- ls -la`/);
    const ws = await runCli(["workspace", "exec", "ws_0123456789abcdef", "ls", "-la"]);
    assert.match(ws.stderr, /`pyro workspace exec ws_0123456789abcdef -- ls -la`/);
    const flags = await runCli(["run", "--mem-mib", "512", "ls", "-l"]);
    assert.match(flags.stderr, /`pyro run --mem-mib 512 -- ls -l`/, "pyro's own flags stay before `--`");
  });

  test("a misspelt pyro flag is still answered with its nearest flag, not `--`", async () => {
    const r = await runCli(["run", "debian:12", "--netwrk"]);
    assert.match(r.stderr, /did you mean `--network`/);
    assert.match(r.stderr, /fix: see `pyro run --help`/);
  });
});

describe("help speaks the CLI's terms", () => {
  test("every command group has a description, at every level", async () => {
    const missing: string[] = [];
    const visit = async (path: string[]): Promise<void> => {
      const r = await runCli([...path, "--help"], { timeoutMs: 30_000 });
      assert.equal(r.code, 0, `pyro ${path.join(" ")} --help`);
      const lines = r.stdout.split("\n");
      const start = lines.indexOf("Commands:");
      if (start < 0) return;
      const groups: string[] = [];
      for (const l of lines.slice(start + 1)) {
        if (!l.startsWith("  ")) break;
        const m = l.match(/^ {2}([a-z][\w-]*)(\s+\[options\])?(.*)$/);
        if (!m || m[1] === "help") continue;
        // A group's line is its name alone (commands show their arguments or [options]).
        if (m[2] === undefined && !/[<[]/.test(m[3]!)) {
          groups.push(m[1]!);
          if (m[3]!.trim() === "") missing.push(`pyro ${[...path, m[1]!].join(" ")}`);
        }
      }
      await Promise.all(groups.map((g) => visit([...path, g])));
    };
    await visit([]);
    assert.deepEqual(missing, []);
  });

  test("`pyro run --help` says `pyro output read` and --network, not output_read and network=true", async () => {
    const r = await runCli(["run", "--help"]);
    assert.match(r.stdout, /`pyro output read`/);
    assert.match(r.stdout, /unless --network\b/);
    assert.doesNotMatch(r.stdout, /\bvm_run\b|\boutput_read\b|network=true/);
  });
});
