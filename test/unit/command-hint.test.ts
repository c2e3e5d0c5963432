import assert from "node:assert/strict";
import { test } from "node:test";
import { execFooter } from "../../src/cli/exec-footer.js";
import {
  COMMAND_HINT_PREFIX,
  commandHint,
  missingCommand,
  withCommandHint,
} from "../../src/environments/command-hint.js";

/**
 * A command missing from the environment exits 127; the result's notes then name the catalog
 * environments that have it (src/environments/command-hint.ts), and the faces show that note.
 */

test("the missing command is read from each shell's and exec wrapper's own words", () => {
  assert.equal(missingCommand("sh: 1: python3: not found\n"), "python3");
  assert.equal(missingCommand("bash: line 1: gcc: command not found\n"), "gcc");
  assert.equal(missingCommand("bash: make: command not found"), "make");
  assert.equal(missingCommand("pyro: python3: not found\n"), "python3");
  assert.equal(missingCommand("/usr/bin/env: 'python3': No such file or directory\n"), "python3");
  assert.equal(missingCommand("pyro-agent: g++: No such file or directory\n"), "g++");
  assert.equal(
    missingCommand("cat: notes.txt: No such file or directory\n"),
    undefined,
    "a file, not a command",
  );
  assert.equal(missingCommand("sh: 1: ./run.sh: not found\n"), undefined, "a path is not a catalog command");
  assert.equal(
    missingCommand("sh: 1: git: not found\nsh: 1: python3: not found\n"),
    "python3",
    "the last one",
  );
});

const run = (over: Record<string, unknown> = {}) => ({
  environment: "debian:12",
  exit_code: 127,
  stdout: "",
  stderr: "sh: 1: python3: not found\n",
  notes: [] as string[],
  ...over,
});

test("python3 in debian:12 names debian:12-build", () => {
  const note = commandHint(run());
  assert.ok(note?.startsWith(COMMAND_HINT_PREFIX), note);
  assert.match(note!, /python3 is not in debian:12; catalog environments that have it: debian:12-build/);
  assert.match(note!, /run it in debian:12-build instead/);
});

test("no hint but on 127, nor where the environment declares the command", () => {
  assert.equal(commandHint(run({ exit_code: 1 })), undefined);
  assert.equal(commandHint(run({ environment: "debian:12-build" })), undefined);
  assert.equal(commandHint(run({ stderr: "something else failed\n" })), undefined);
  assert.equal(commandHint(run({ stderr: "c2g6", stderr_encoding: "base64" })), undefined);
});

test("a command no catalog environment has says so and points at OCI images", () => {
  const note = commandHint(run({ stderr: "sh: 1: cargo: not found\n" }));
  assert.match(
    note!,
    /cargo is in none of pyro's catalog environments \(debian:12, debian:12-base, debian:12-build\)/,
  );
  assert.match(note!, /OCI image/);
});

test("withCommandHint appends the note once and leaves other results alone", () => {
  const r = withCommandHint(run({ notes: ["gVisor shows the guest at least 2 CPUs"] }));
  assert.equal(r.notes.length, 2);
  assert.equal(withCommandHint(r).notes.length, 2, "not twice");
  const ok = run({ exit_code: 0 });
  assert.equal(withCommandHint(ok), ok);
  assert.deepEqual(withCommandHint({ workspace_id: "ws_1", deleted: true }), {
    workspace_id: "ws_1",
    deleted: true,
  });
  assert.equal(withCommandHint(undefined), undefined);
});

test("the CLI's footer shows the hint on its own line", () => {
  const r = withCommandHint({ ...run(), execution_mode: "gvisor", duration_ms: 5, output_id: "out_1" });
  const footer = execFooter(r);
  assert.match(footer, /^\[pyro\] exit 127/);
  assert.match(footer, /\n\[pyro\] command not found: python3 is not in debian:12; .*debian:12-build/);
  assert.doesNotMatch(execFooter({ ...run({ exit_code: 0 }), execution_mode: "gvisor" }), /\n/);
});
