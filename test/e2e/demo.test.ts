import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { closedPortUrl, ollamaStandin, TOOL_COMMAND } from "../fixtures/standins.js";
import { gvisorSkipReason, runCli, runCliJson, skipped, testEnv } from "../helpers.js";

/** `pyro demo` and `pyro demo ollama`, through the built CLI. */

const skip = await gvisorSkipReason();

describe("pyro demo", { concurrency: false }, () => {
  let env: Awaited<ReturnType<typeof testEnv>>;
  before(async () => {
    env = await testEnv();
  });
  after(async () => {
    await env.cleanup();
  });

  test("pyro demo --json runs every step and leaves nothing behind", async (t) => {
    if (skip) return skipped(t, skip);
    const { code, json, stderr } = await runCliJson<{
      ok: boolean;
      execution_mode: string;
      steps: { step: string; ok: boolean; detail: string }[];
      summary: string;
    }>(["demo"], { env: env.env });
    assert.equal(code, 0, stderr);
    assert.equal(json.ok, true);
    assert.notEqual(json.execution_mode, "host_compat");
    assert.deepEqual(
      json.steps.map((s) => s.step),
      [
        "run",
        "workspace create",
        "workspace exec",
        "persistence",
        "workspace status",
        "workspace logs",
        "workspace delete",
      ],
    );
    assert.ok(json.steps.every((s) => s.ok));
    assert.match(json.steps[0]!.detail, /git version \d/);
    assert.match(json.steps[2]!.detail, /debian: 12\.\d+/);
    assert.match(json.summary, /^demo OK: 7 steps/);
    const list = await runCliJson<{ workspaces: unknown[] }>(["workspace", "list"], { env: env.env });
    assert.deepEqual(list.json.workspaces, []);
  });

  test("pyro demo prints each step, then a summary", async (t) => {
    if (skip) return skipped(t, skip);
    const r = await runCli(["demo"], { env: env.env });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 8);
    for (const [i, l] of lines.slice(0, 7).entries()) assert.match(l, new RegExp(`^\\[${i + 1}/7\\] `));
    assert.match(lines[7]!, /^demo OK: /);
  });

  test("pyro demo ollama fails clearly when no Ollama is reachable", async () => {
    const url = await closedPortUrl();
    const r = await runCli(["demo", "ollama", "--base-url", url], { env: env.env, timeoutMs: 30_000 });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(
        `pyro: error: no Ollama server reachable at ${url.replace(/\./g, "\\.")} \\(ECONNREFUSED\\)`,
      ),
    );
    assert.match(r.stderr, /fix: start Ollama \(`ollama serve`\)/);
    assert.doesNotMatch(r.stdout, /\[summary\]/);
  });

  test("OLLAMA_HOST is honoured when --base-url is absent", async () => {
    const url = await closedPortUrl();
    const r = await runCli(["demo", "ollama", "--json"], {
      env: { ...env.env, OLLAMA_HOST: url.replace("http://", "") },
      timeoutMs: 30_000,
    });
    assert.equal(r.code, 1);
    const err = JSON.parse(r.stdout) as { error: { code: string; message: string } };
    assert.equal(err.error.code, "host_dependency_missing");
    assert.ok(err.error.message.includes(url), err.error.message);
  });

  test("pyro demo ollama runs the tool loop against an Ollama stand-in", async (t) => {
    if (skip) return skipped(t, skip);
    const standin = await ollamaStandin();
    try {
      const r = await runCli(["demo", "ollama", "--base-url", standin.url, "--model", "standin:1b"], {
        env: env.env,
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trimEnd().split("\n");
      const summaries = lines.filter((l) => l.startsWith("[summary]"));
      assert.equal(summaries.length, 1, "exactly one summary line");
      assert.equal(lines[lines.length - 1], summaries[0], "the summary is the last line");
      assert.match(
        summaries[0]!,
        /^\[summary\] demo ollama OK: standin:1b made 1 vm_run call\(s\) \(1 ran, engine (gvisor|qemu|firecracker)\)/,
      );
      assert.ok(lines.some((l) => l.startsWith("[tool] vm_run → exit 0")));

      assert.equal(standin.requests.length, 2);
      const first = standin.requests[0]!.body as {
        model: string;
        stream: boolean;
        tools: { function: { name: string; parameters: { required: string[] } } }[];
      };
      assert.equal(first.model, "standin:1b");
      assert.equal(first.stream, false);
      assert.equal(first.tools[0]!.function.name, "vm_run");
      assert.deepEqual(first.tools[0]!.function.parameters.required, ["command"]);
      const messages = standin.requests[1]!.body.messages as {
        role: string;
        content: string;
        tool_calls?: unknown[];
      }[];
      assert.ok(
        messages.some((m) => m.role === "assistant" && m.tool_calls?.length === 1),
        "the tool call is echoed back in the history",
      );
      const tool = messages.find((m) => m.role === "tool")!;
      const fed = JSON.parse(tool.content) as { exit_code: number; stdout: string; command: string };
      assert.equal(fed.command, TOOL_COMMAND);
      assert.equal(fed.exit_code, 0);
      assert.match(fed.stdout, /^12\./, "the real /etc/debian_version went back to the model");
      assert.ok(lines.includes(`[model] The sandbox runs Debian ${fed.stdout.trim()}.`));
    } finally {
      await standin.close();
    }
  });
});
