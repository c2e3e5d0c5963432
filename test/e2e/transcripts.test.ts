import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { gvisorSkipReason, REPO, runCli, withHostDir, withTestState } from "../helpers.js";

/**
 * The documented transcripts against real output. docs/first-run.md is a real session
 * (scripts/first-run.sh); README.md's shell block is shown without output. Both are run here
 * as written, in a scratch directory shown as `~`, and compared allowing only for what a
 * rerun changes: ids, times, durations, versions of the guest's packages. What depends on a
 * fresh machine (doctor, env list and env pull on an empty cache, which this host no longer
 * has and rebuilding would need the Debian mirror) is compared by its shape: doctor's fields,
 * env list's header and rows.
 */

interface Step {
  section: string;
  argv: string[];
  expected: string;
}

/** The `$ pyro …` commands of every console block, each with the output shown under it. */
function transcriptSteps(md: string): Step[] {
  const steps: Step[] = [];
  let section = "";
  let inBlock = false;
  for (const line of md.split("\n")) {
    if (line.startsWith("## ")) section = line.slice(3);
    if (line.startsWith("```")) {
      inBlock = line === "```console";
      continue;
    }
    if (!inBlock) continue;
    if (line.startsWith("$ pyro ")) steps.push({ section, argv: shellWords(line.slice(7)), expected: "" });
    else if (steps.length) steps[steps.length - 1]!.expected += `${line}\n`;
  }
  return steps;
}

/** Words of a shell line with '…' quoting (what scripts/first-run.sh prints). */
function shellWords(s: string): string[] {
  return [...s.matchAll(/'((?:[^']|'\\'')*)'|(\S+)/g)].map((m) =>
    m[1] !== undefined ? m[1].replace(/'\\''/g, "'") : m[2]!,
  );
}

/** What a rerun may change, made equal. */
function normalise(text: string): string {
  return text
    .replace(/\b(ws|vm)_[0-9a-f]{16}\b/g, "$1_ID")
    .replace(/\bsh_[0-9a-f]{12}\b/g, "sh_ID")
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, "TIME")
    .replace(/\b\d+ ms\b/g, "N ms")
    .replace(/"(duration_ms|boot_ms|exec_ms)": \d+/g, '"$1": N')
    .replace(/^pyro: \[\d+s\]/gm, "pyro: [Ns]")
    .replace(/\b12\.\d+\b/g, "12.x")
    .replace(/git version \S+/g, "git version X");
}

/**
 * The shape of `pyro doctor`'s report: its fields and the engines it lists (not its progress,
 * nor its problems, which a fresh machine has and this one may not).
 */
function doctorShape(text: string): string[] {
  return text
    .split("\n")
    .map((l) => l.match(/^([a-z][a-z ]*):/)?.[1] ?? l.match(/^ {2}[✓✗!] (\w+)/)?.[1])
    .filter((x): x is string => x !== undefined && x !== "pyro" && x !== "problems");
}

/** Runs one documented command as scripts/first-run.sh shows it: stderr, stdout, footer, exit. */
async function shown(argv: string[], env: NodeJS.ProcessEnv, home: string): Promise<string> {
  const r = await runCli(argv, { env, cwd: home, timeoutMs: 180_000 });
  const err = r.stderr.split("\n").filter(Boolean);
  const out = [
    ...err.filter((l) => !l.startsWith("[pyro] ")).map((l) => `${l}\n`),
    r.stdout && !r.stdout.endsWith("\n") ? `${r.stdout}\n` : r.stdout,
    ...err.filter((l) => l.startsWith("[pyro] ")).map((l) => `${l}\n`),
    r.code === 0 ? "" : `(exit ${r.code})\n`,
  ].join("");
  return out.split(home).join("~");
}

describe("documented transcripts match real output", () => {
  test("docs/first-run.md, command by command", async (t) => {
    const steps = transcriptSteps(await readFile(join(REPO, "docs/first-run.md"), "utf8"));
    assert.ok(steps.length >= 20, `first-run.md shows its commands (${steps.length})`);
    await withTestState(t, await gvisorSkipReason(), { NO_COLOR: "1", PYRO_ENGINE: "gvisor" }, (c) =>
      withHostDir("pyro-first-run-", async (home) => {
        // The project scripts/first-run.sh seeds with, and the notes it pushes later.
        await mkdir(join(home, "hello"));
        await writeFile(
          join(home, "hello/README.md"),
          "# hello\nA tiny project for the first-run transcript.\n",
        );
        await writeFile(
          join(home, "hello/hello.sh"),
          '#!/bin/sh\necho "hello from $(cat /etc/debian_version), in $(pwd)"\n',
        );
        await mkdir(join(home, "notes"));
        await writeFile(join(home, "notes/todo.txt"), "added after the workspace was created\n");
        const env = { ...c.env, PYRO_POOL_SIZE: "0" };
        const failures: string[] = [];
        const check = (f: () => void) => {
          try {
            f();
          } catch (e) {
            failures.push(e instanceof Error ? e.message : String(e));
          }
        };
        let documentedWs: string | undefined;
        let realWs: string | undefined;
        for (const s of steps) {
          const argv = s.argv.map((a) => (documentedWs && realWs ? a.split(documentedWs).join(realWs) : a));
          const actual = await shown(argv, env, home);
          const what = `${s.section}: pyro ${s.argv.join(" ")}`;
          if (argv[0] === "workspace" && argv[1] === "create") {
            documentedWs = s.expected.match(/ws_[0-9a-f]{16}/)?.[0];
            realWs = actual.match(/ws_[0-9a-f]{16}/)?.[0];
            assert.ok(documentedWs && realWs, `${what}: both show the workspace id`);
          }
          // A fresh machine's answers, which this one no longer gives: compared by shape.
          check(() => {
            if (argv[0] === "doctor") assert.deepEqual(doctorShape(actual), doctorShape(s.expected), what);
            else if (argv.join(" ") === "env list") {
              const rows = (x: string) => x.split("\n").map((l) => l.split(/\s+/)[0]);
              assert.deepEqual(rows(actual), rows(s.expected), what);
              const header = (x: string) => x.split("\n")[0]!.split(/\s+/);
              assert.deepEqual(header(actual), header(s.expected), `${what}: header`);
            } else if (argv[0] === "env" && argv[1] === "pull")
              assert.match(actual, /^debian:12: /m, `${what}: says what became of debian:12`);
            else if (argv[0] === "workspace" && argv[1] === "create") {
              // The seeding and start-up progress lines may differ on a warm host; the record not.
              const record = (x: string) => normalise(x.replace(/^pyro: .*\n/gm, ""));
              assert.equal(record(actual), record(s.expected), what);
            } else assert.equal(normalise(actual), normalise(s.expected), what);
          });
        }
        assert.deepEqual(failures, [], "scripts/first-run.sh regenerates docs/first-run.md");
      }),
    );
  });

  test("README.md's shell block runs as written (shell open --id-only, write, read)", async (t) => {
    const readme = await readFile(join(REPO, "README.md"), "utf8");
    const block = readme.match(
      /```bash\n(WS=\$\(pyro workspace create [^\n]*\nSH=\$\(pyro workspace shell open[\s\S]*?)```/,
    )?.[1];
    assert.ok(block, "README.md has the shell block, with SH=$(pyro workspace shell open … --id-only …)");
    await withTestState(t, await gvisorSkipReason(), { PYRO_ENGINE: "gvisor" }, async (c) => {
      // The shell lines, with `pyro` the built CLI; the service lines are not this test's. The
      // read is repeated until python3 has answered (its 300 ms of quiet can come before the
      // answer on a loaded machine), for up to a minute.
      const lines = block.split("\n").filter((l) => l.startsWith("WS=") || l.includes(" shell "));
      const read = lines.pop()!;
      assert.match(read, /shell read/);
      const script = [
        `pyro() { node ${JSON.stringify(join(REPO, "dist/cli/main.js"))} "$@"; }`,
        "set -e",
        ...lines,
        `for i in $(seq 120); do out=$(${read}); case "$out" in *42*) break;; esac; sleep 0.5; done`,
        'printf "%s\n" "$out"',
        'pyro workspace delete "$WS" >/dev/null',
      ].join("\n");
      const { spawnSync } = await import("node:child_process");
      const r = spawnSync("bash", ["-c", script], { env: c.env, encoding: "utf8", timeout: 120_000 });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^42\r?$/m, `python3 answered 42: ${r.stdout}`);
    });
  });
});
