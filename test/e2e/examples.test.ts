import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { MockLanguageModelV3 } from "ai/test";
import { main as langchainMain } from "../../examples/langchain_vm_run.js";
import { main as lifecycleMain } from "../../examples/lifecycle.js";
import { main as openaiMain, vmRunTool as openaiVmRunTool } from "../../examples/openai_responses_vm_run.js";
import { main as runMain } from "../../examples/run.js";
import { main as vercelMain } from "../../examples/vercel_ai_vm_run.js";
import { main as workspaceMain } from "../../examples/workspace.js";
import { Pyro } from "../../src/index.js";
import { ScriptedToolCallingModel } from "../fixtures/scripted-chat-model.js";
import { openaiResponsesStandin, TOOL_COMMAND } from "../fixtures/standins.js";
import { gvisorSkipReason, skipped, testEnv } from "../helpers.js";

/**
 * Every example runs for real: the SDK examples against the real engine, the provider
 * examples against the real engine AND a local stand-in speaking the provider's wire
 * format (no provider is reachable from CI). Each proves the tool loop ran pyro and fed
 * the result back to the "model".
 */

const skip = await gvisorSkipReason();

describe("examples", { concurrency: false }, () => {
  let env: Awaited<ReturnType<typeof testEnv>>;
  let pyro: Pyro;
  before(async () => {
    env = await testEnv();
    pyro = new Pyro({ env: env.env });
  });
  after(async () => {
    await env.cleanup();
  });

  test("run.ts: one-shot run", async (t) => {
    if (skip) return skipped(t, skip);
    const r = await runMain(pyro);
    assert.equal(r.exit_code, 0);
    assert.match(r.stdout, /^git version \d/);
    assert.equal(r.cleaned_up, true);
    assert.notEqual(r.execution_mode, "host_compat", "an isolated engine ran it");
  });

  test("lifecycle.ts: create → start → status → exec, then the VM is gone", async (t) => {
    if (skip) return skipped(t, skip);
    const r = await lifecycleMain(pyro);
    assert.equal(r.created.state, "created");
    assert.equal(r.running.state, "running");
    assert.equal(r.result.exit_code, 0);
    assert.match(r.result.stdout, /^12\.\d+\nLinux\n$/);
    assert.equal(r.goneCode, "not_found");
    assert.deepEqual(await pyro.listVms(), []);
  });

  test("workspace.ts: seed, sync push, exec, status, logs, delete; handle style", async (t) => {
    if (skip) return skipped(t, skip);
    const r = await workspaceMain(pyro);
    assert.equal(r.exec.exit_code, 0);
    assert.match(r.exec.stdout, /^hello from 12\.\d+\npushed after create\n$/);
    assert.equal(r.status.state, "running");
    assert.equal(r.status.command_count, 1);
    assert.equal(r.status.workspace_seed.mode, "directory");
    assert.equal(r.logs.commands.length, 1);
    assert.equal(r.handleExec.stdout, "42\n");
    assert.deepEqual(await pyro.listWorkspaces(), [], "both workspaces are deleted");
  });

  test("openai_responses_vm_run.ts: Responses API tool loop against a stand-in", async (t) => {
    if (skip) return skipped(t, skip);
    const standin = await openaiResponsesStandin();
    try {
      const r = await openaiMain({
        pyro,
        baseURL: `${standin.url}/v1`,
        apiKey: "sk-standin",
        model: "standin-model",
      });
      assert.equal(standin.requests.length, 2, "one request for the tool call, one with its output");
      const [first, second] = standin.requests;
      assert.equal(first!.path, "/v1/responses");
      assert.equal(first!.body.model, "standin-model");
      const tool = (
        first!.body.tools as { name: string; parameters: { required: string[]; properties: object } }[]
      )[0]!;
      assert.equal(tool.name, "vm_run");
      assert.deepEqual(tool.parameters.required, ["command"]);
      assert.deepEqual(tool.parameters, openaiVmRunTool.parameters);
      // The model is never offered the way out of isolation, and unknown fields are refused.
      assert.ok(!("allow_host_compat" in tool.parameters.properties), "allow_host_compat reached the model");
      assert.equal((tool.parameters as { additionalProperties?: unknown }).additionalProperties, false);
      assert.equal(second!.body.previous_response_id, "resp_1");
      const output = (second!.body.input as { type: string; call_id: string; output: string }[])[0]!;
      assert.equal(output.type, "function_call_output");
      assert.equal(output.call_id, "call_vm_run_1");
      const fed = JSON.parse(output.output) as {
        exit_code: number;
        stdout: string;
        command: string;
        execution_mode: string;
      };
      assert.equal(fed.exit_code, 0);
      assert.equal(fed.command, TOOL_COMMAND);
      assert.match(fed.stdout, /^12\./, "the real /etc/debian_version went back to the model");
      assert.notEqual(fed.execution_mode, "host_compat");
      assert.equal(r.toolCalls.length, 1);
      assert.match(r.text, /^The sandbox runs Debian 12\.\d+\.$/);
    } finally {
      await standin.close();
    }
  });

  test("langchain_vm_run.ts: tool() around runInVm, direct tool call and agent loop", async (t) => {
    if (skip) return skipped(t, skip);
    const direct = await langchainMain({ pyro });
    assert.match((JSON.parse(direct.text) as { stdout: string }).stdout, /^12\./);

    const model = new ScriptedToolCallingModel({});
    const r = await langchainMain({ pyro, model });
    assert.equal(model.boundTools.length, 1);
    assert.equal(model.received.length, 2);
    const toolMsg = model.received[1]!.find((m) => m.getType() === "tool")!;
    const fed = JSON.parse(String(toolMsg.content)) as { exit_code: number; stdout: string };
    assert.equal(fed.exit_code, 0);
    assert.match(fed.stdout, /^12\./);
    assert.match(r.text, /^The sandbox runs Debian 12\.\d+\.$/);
  });

  test("vercel_ai_vm_run.ts: generateText tool loop with MockLanguageModelV3", async (t) => {
    if (skip) return skipped(t, skip);
    const usage = {
      inputTokens: { total: 1, noCache: 1, cacheRead: undefined, cacheWrite: undefined },
      outputTokens: { total: 1, text: 1, reasoning: undefined },
    };
    const model = new MockLanguageModelV3({
      doGenerate: async (opts) => {
        const toolMsg = opts.prompt.find((m) => m.role === "tool");
        if (!toolMsg) {
          return {
            content: [
              {
                type: "tool-call",
                toolCallId: "call_1",
                toolName: "vm_run",
                input: JSON.stringify({ command: TOOL_COMMAND }),
              },
            ],
            finishReason: { unified: "tool-calls", raw: "tool_calls" },
            usage,
            warnings: [],
          };
        }
        const part = toolMsg.content.find((p) => p.type === "tool-result");
        const value =
          part && part.type === "tool-result" && part.output.type === "json"
            ? (part.output.value as { stdout: string })
            : { stdout: "?" };
        return {
          content: [{ type: "text", text: `The sandbox runs Debian ${value.stdout.trim()}.` }],
          finishReason: { unified: "stop", raw: "stop" },
          usage,
          warnings: [],
        };
      },
    });
    const r = await vercelMain({ pyro, model });
    assert.equal(model.doGenerateCalls.length, 2);
    const tools = model.doGenerateCalls[0]!.tools ?? [];
    assert.equal(tools[0]?.name, "vm_run");
    assert.equal(r.steps[0]!.toolResults.length, 1);
    assert.match(r.text, /^The sandbox runs Debian 12\.\d+\.$/);
  });
});
