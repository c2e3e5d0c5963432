import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { CLI, REPO, runCli, runCliJson, runCliJsonGuest, withGvisorState, withHostDir } from "../helpers.js";

/**
 * `pyro workspace exec WS -- CMD` is answered by the launcher's fast path (src/cli/fast-exec.ts)
 * without loading the CLI. Shown with a copy of the launcher whose full CLI (pyro.cjs) is a
 * stub that prints FULL and exits 99: a command it runs was the fast path's; one it declines
 * reaches the stub with nothing run or logged. What it prints, logs and exits with is compared
 * with the full CLI's (PYRO_FAST_PATHS=0, or the workspace's name, which only the full CLI
 * resolves).
 */
/** The launcher at `main` (the stub copy, or this checkout's) with `args`. */
const runLauncher = (main: string, args: string[], env: NodeJS.ProcessEnv) => runCli(args, { env, main });

/** The shell's view of `pyro … -- yes | head -1`: what head printed and pyro's exit code. */
function pipeToHead(main: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const line = [process.execPath, main, ...args].map((a) => `'${a}'`).join(" ");
  return new Promise((res) => {
    const child = spawn("bash", ["-c", `${line} | head -1; echo "exit \${PIPESTATUS[0]}"`], { env });
    let out = "";
    child.stdout.on("data", (c) => {
      out += c;
    });
    child.on("close", () => res(out));
  });
}

const FOOTER = /^err\n\[pyro\] exit 3 · gvisor · \d+ ms · output (ws_[0-9a-f]{16}:\d+)\n$/;

test("workspace exec from the fast path prints, logs and exits as the full CLI does", async (t) => {
  await withHostDir("pyro-fastexec-", async (host) => {
    // The launcher and the fast path's bundle, with a full CLI that only says it was reached.
    for (const f of ["main.js", "package.json", "pyro-fast-exec.cjs"])
      await copyFile(join(REPO, "dist", "cli", f), join(host, f));
    await writeFile(join(host, "pyro.cjs"), 'process.stdout.write("FULL\\n");\nprocess.exit(99);\n');
    const stub = join(host, "main.js");
    await withGvisorState(t, async ({ env }) => {
      const loud = { ...env, PYRO_QUIET: "0" };
      const full = { ...env, PYRO_QUIET: "0", PYRO_FAST_PATHS: "0" };
      const created = await runCliJson(["workspace", "create", "--name", "fx"], { env });
      assert.equal(created.code, 0, created.stderr);
      const id = created.json.workspace_id as string;
      const count = async () =>
        (await runCliJson(["workspace", "status", id], { env })).json.command_count as number;
      const cmd = ["--", "sh", "-c", "echo out; echo err >&2; exit 3"];

      // Human output: the command's streams live, then the footer; exit code the command's.
      const seen: string[] = [];
      for (const [main, args, e] of [
        [stub, ["workspace", "exec", id, ...cmd], loud],
        [CLI, ["workspace", "exec", "fx", ...cmd], loud],
        [CLI, ["workspace", "exec", id, ...cmd], full],
      ] as const) {
        const r = await runLauncher(main, [...args], e);
        assert.equal(r.code, 3, r.stderr);
        assert.equal(r.stdout, "out\n");
        const m = FOOTER.exec(r.stderr);
        assert.ok(m, `footer: ${JSON.stringify(r.stderr)}`);
        seen.push(m[1]!);
      }
      assert.deepEqual(seen, [`${id}:1`, `${id}:2`, `${id}:3`], "each logged in turn");

      // JSON: the same fields in the same order, the same values but for the run's own.
      const fast = await runLauncher(stub, ["workspace", "exec", id, "--json", ...cmd], env);
      const fullJson = await runCliJsonGuest(["workspace", "exec", id, ...cmd], { env: full });
      assert.equal(fast.code, 3, fast.stderr);
      const f = JSON.parse(fast.stdout) as Record<string, unknown>;
      assert.deepEqual(Object.keys(f), Object.keys(fullJson.json), "same fields, same order");
      for (const k of Object.keys(f))
        if (!["sequence", "output_id", "duration_ms", "exec_ms"].includes(k))
          assert.deepEqual(f[k], fullJson.json[k], `field ${k}`);
      assert.deepEqual([f.sequence, f.output_id], [4, `${id}:4`]);

      // The log: every entry alike, whichever path wrote it; the output kept for output_read.
      const logs = await runCliJson(["workspace", "logs", id], { env });
      const entries = logs.json.commands as Record<string, unknown>[];
      assert.deepEqual(
        entries.map((e) => [e.sequence, e.command, e.exit_code, e.stdout_bytes, e.stderr_bytes]),
        [1, 2, 3, 4, 5].map((s) => [s, "sh -c 'echo out; echo err >&2; exit 3'", 3, 4, 4]),
      );
      assert.equal((await runCli(["output", "read", `${id}:1`], { env })).stdout, "out\n");
      assert.equal(
        (await runCli(["output", "read", `${id}:1`, "--stream", "stderr"], { env })).stdout,
        "err\n",
      );

      // Deadline: 124 and TIMED OUT, as in the full CLI.
      const slow = await runLauncher(
        stub,
        ["workspace", "exec", id, "--timeout-seconds", "1", "--", "sleep", "30"],
        loud,
      );
      assert.equal(slow.code, 124, slow.stderr);
      assert.match(slow.stderr, /exit 124 · gvisor · \d+ ms · TIMED OUT · output ws_/);

      // A reader that goes away ends the command: 141, and the log says it was cut short.
      for (const [main, e] of [
        [stub, env],
        [CLI, { ...env, PYRO_FAST_PATHS: "0" }],
      ] as const) {
        const before = await count();
        assert.equal(await pipeToHead(main, ["workspace", "exec", id, "--", "yes"], e), "y\nexit 141\n");
        const last = (await runCliJson(["workspace", "logs", id, "--limit", "1"], { env })).json
          .commands as Record<string, unknown>[];
        assert.deepEqual([last[0]!.sequence, last[0]!.exit_code], [before + 1, 130]);
      }

      // kill -9 of the fast path mid-command: the closed channel ends the command's whole
      // group in the sandbox, and the workspace takes the next command as usual.
      const victim = spawn(
        process.execPath,
        [stub, "workspace", "exec", id, "--", "sh", "-c", "sleep 300 & sleep 300"],
        {
          env,
          stdio: "ignore",
        },
      );
      await new Promise((r) => setTimeout(r, 1500));
      victim.kill("SIGKILL");
      await new Promise((r) => victim.on("close", r));
      await new Promise((r) => setTimeout(r, 500));
      const left = await runLauncher(
        stub,
        ["workspace", "exec", id, "--", "sh", "-c", "grep -l 'slee[p]' /proc/[0-9]*/cmdline | wc -l"],
        env,
      );
      assert.deepEqual([left.code, left.stdout.trim()], [0, "0"], "no sleep left in the sandbox");

      // Declined before anything ran: a name, a flag it does not take, a stopped workspace.
      const n = await count();
      for (const args of [
        ["workspace", "exec", "fx", "--", "touch", "/workspace/ran"],
        ["workspace", "exec", id, "--secret-env", "NOPE", "--", "touch", "/workspace/ran"],
      ]) {
        const r = await runLauncher(stub, args, env);
        assert.deepEqual([r.code, r.stdout], [99, "FULL\n"], args.join(" "));
      }
      assert.equal((await runCli(["workspace", "stop", id], { env })).code, 0);
      const stopped = await runLauncher(
        stub,
        ["workspace", "exec", id, "--", "touch", "/workspace/ran"],
        env,
      );
      assert.deepEqual([stopped.code, stopped.stdout], [99, "FULL\n"]);
      assert.equal(await count(), n, "nothing ran or was logged");
      assert.equal((await runCli(["workspace", "delete", id], { env })).code, 0);

      // A workspace with secrets is the full CLI's (it redacts their values from the output).
      const secret = await runCliJson(["workspace", "create", "--secret", "TOKEN=fast-exec-secret-1"], {
        env,
      });
      assert.equal(secret.code, 0, secret.stderr);
      const sid = secret.json.workspace_id as string;
      const declined = await runLauncher(
        stub,
        ["workspace", "exec", sid, "--", "echo", "fast-exec-secret-1"],
        env,
      );
      assert.deepEqual([declined.code, declined.stdout], [99, "FULL\n"]);
      const redacted = await runCli(["workspace", "exec", sid, "--", "echo", "fast-exec-secret-1"], { env });
      assert.equal(redacted.code, 0, redacted.stderr);
      assert.ok(!redacted.stdout.includes("fast-exec-secret-1"), redacted.stdout);
      assert.equal((await runCli(["workspace", "delete", sid], { env })).code, 0);
    });
  });
});
