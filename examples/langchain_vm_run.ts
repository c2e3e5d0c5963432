/**
 * LangChain: pyro's one-shot run as a LangChain tool, a thin `tool()` around `runInVm`.
 *
 * Give `main` any chat model that supports tool calling (ChatOpenAI from @langchain/openai,
 * ChatOllama from @langchain/ollama, ChatAnthropic, ...) and it runs the agent loop: the model
 * asks for vm_run, the tool runs in a fresh sandbox, the ToolMessage goes back to the model.
 * Without a model it shows the tool call an agent would make, and the ToolMessage it gets.
 *
 *   npx tsx examples/langchain_vm_run.ts
 */
import { pathToFileURL } from "node:url";
import type { BaseChatModel } from "@langchain/core/language_models/chat_models";
import { type AIMessage, type BaseMessage, HumanMessage, type ToolMessage } from "@langchain/core/messages";
import { tool } from "@langchain/core/tools";
import { Pyro, PyroError } from "pyro-mcp";
import * as z from "zod";

export function vmRunTool(pyro: Pyro = new Pyro()) {
  return tool(
    async ({ command, environment, timeout_seconds }) => {
      const r = await pyro.runInVm({ command, environment, timeoutSeconds: timeout_seconds });
      return JSON.stringify({
        exit_code: r.exit_code,
        stdout: r.stdout,
        stderr: r.stderr,
        timed_out: r.timed_out,
        execution_mode: r.execution_mode,
      });
    },
    {
      name: "vm_run",
      description:
        "Run one shell command in a fresh, isolated Debian 12 sandbox that is deleted afterwards. " +
        "Network is off. Returns exit_code, stdout, stderr and timed_out as JSON.",
      schema: z.object({
        command: z.string().describe("Shell command, run with /bin/sh -c"),
        environment: z.enum(["debian:12", "debian:12-base", "debian:12-build"]).default("debian:12"),
        timeout_seconds: z.number().int().min(1).max(600).default(30),
      }),
    },
  );
}

export interface LangChainExampleOptions {
  pyro?: Pyro;
  /** A chat model with tool calling. */
  model?: BaseChatModel;
  prompt?: string;
  maxRounds?: number;
}

export async function main(
  opts: LangChainExampleOptions = {},
): Promise<{ text: string; messages: BaseMessage[] }> {
  const vmRun = vmRunTool(opts.pyro);
  const prompt =
    opts.prompt ?? "Which Debian point release is the sandbox? Read /etc/debian_version with vm_run.";

  if (!opts.model) {
    // What an agent executor does with the model's tool call: invoke the tool with it.
    const msg = (await vmRun.invoke({
      type: "tool_call",
      id: "call_1",
      name: "vm_run",
      args: { command: "cat /etc/debian_version" },
    })) as ToolMessage;
    console.log(`[tool] ${msg.content}`);
    return { text: String(msg.content), messages: [msg] };
  }

  if (!opts.model.bindTools) throw new Error("this chat model does not support tool calling");
  const model = opts.model.bindTools([vmRun]);
  const messages: BaseMessage[] = [new HumanMessage(prompt)];
  for (let round = 0; round < (opts.maxRounds ?? 5); round++) {
    const ai = (await model.invoke(messages)) as AIMessage;
    messages.push(ai);
    if (!ai.tool_calls?.length) break;
    for (const call of ai.tool_calls) {
      console.log(`[model] ${call.name} ${JSON.stringify(call.args)}`);
      const result = (await vmRun.invoke({ ...call, type: "tool_call" })) as ToolMessage;
      console.log(`[tool] ${String(result.content).slice(0, 200)}`);
      messages.push(result);
    }
  }
  const last = messages[messages.length - 1]!;
  const text = typeof last.content === "string" ? last.content : JSON.stringify(last.content);
  console.log(`[model] ${text}`);
  return { text, messages };
}

// Run as a script: a missing input or a pyro error is one message with its fix, not a stack trace.
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  try {
    await main();
  } catch (e) {
    console.error(`langchain_vm_run.ts: ${e instanceof Error ? e.message : String(e)}`);
    if (e instanceof PyroError && e.hint) console.error(`hint: ${e.hint}`);
    process.exitCode = 1;
  }
}
