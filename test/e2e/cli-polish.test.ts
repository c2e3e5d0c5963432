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
