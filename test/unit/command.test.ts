import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { test } from "node:test";
import { displayCommand, shellQuote, toArgv } from "../../src/core/command.js";

test("a string command runs through /bin/sh -c", () => {
  assert.deepEqual(toArgv("echo hi | wc -c"), ["/bin/sh", "-c", "echo hi | wc -c"]);
});

test("an argv runs unparsed, through exec so a missing program exits 127", () => {
  const argv = toArgv(["printf", "%s|", "a b", "$HOME", "'q'", ""]);
  // The argv is the same program with the same arguments, whatever the shell metacharacters.
  const out = execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
  assert.equal(out, "a b|$HOME|'q'||");
  const missing = toArgv(["pyro-no-such-program-xyz", "arg"]);
  const r = spawnSync(missing[0]!, missing.slice(1), { encoding: "utf8" });
  assert.equal(r.status, 127);
  assert.match(r.stderr, /pyro-no-such-program-xyz: not found/);
  const notExec = toArgv(["/tmp"]);
  assert.equal(spawnSync(notExec[0]!, notExec.slice(1)).status, 126);
  const self = toArgv(["sh", "-c", "echo $0"]);
  assert.equal(execFileSync(self[0]!, self.slice(1), { encoding: "utf8" }), "sh\n");
});

test("shellQuote leaves safe words alone and quotes everything else", () => {
  assert.equal(shellQuote("git"), "git");
  assert.equal(shellQuote("--flag=a,b/c:d@e%f+g"), "--flag=a,b/c:d@e%f+g");
  assert.equal(shellQuote(""), "''");
  assert.equal(shellQuote("a b"), "'a b'");
  assert.equal(shellQuote("it's"), "'it'\\''s'");
  assert.equal(shellQuote("$HOME"), "'$HOME'");
  assert.equal(shellQuote("a\nb"), "'a\nb'");
});

test("displayCommand round-trips through a shell to the same argv", () => {
  assert.equal(displayCommand("echo hi; exit 3"), "echo hi; exit 3");
  const argv = ["sh", "-c", "echo \"$1\" '$2'", "x", "it's a $test", ""];
  const shown = displayCommand(argv);
  assert.equal(shown, `sh -c 'echo "$1" '\\''$2'\\''' x 'it'\\''s a $test' ''`);
  const back = execFileSync("/bin/sh", ["-c", `for a in ${shown}; do :; done; printf '%s\\n' ${shown}`], {
    encoding: "utf8",
  });
  assert.equal(back, `${argv.join("\n")}\n`);
});
