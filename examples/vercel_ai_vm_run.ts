/**
 * Vercel AI SDK: pyro's one-shot run as an AI SDK tool (`tool({ inputSchema, execute })`),
 * with `generateText` running the tool loop until the model answers (`stopWhen`).
 *
 * `model` is any AI SDK language model: a provider model such as `openai("gpt-5-mini")`
 * from @ai-sdk/openai, or a gateway id string (default: $AI_MODEL or "openai/gpt-5-mini",
 * which goes through the Vercel AI Gateway and needs AI_GATEWAY_API_KEY).
 *
 *   AI_GATEWAY_API_KEY=... npx tsx examples/vercel_ai_vm_run.ts
 */
import { pathToFileURL } from "node:url";
import { generateText, type LanguageModel, stepCountIs, tool } from "ai";
import { Pyro, PyroError } from "pyro-mcp";
import * as z from "zod";

export function vmRunTool(pyro: Pyro = new Pyro()) {
  return tool({
    description:
      "Run one shell command in a fresh, isolated Debian 12 sandbox that is deleted afterwards. " +
      "Network is off. Returns exit_code, stdout, stderr and timed_out.",
    inputSchema: z.object({
      command: z.string().describe("Shell command, run with /bin/sh -c"),
      environment: z.enum(["debian:12", "debian:12-base", "debian:12-build"]).default("debian:12"),
      timeout_seconds: z.number().int().min(1).max(600).default(30),
    }),
    execute: async ({ command, environment, timeout_seconds }) => {
      const r = await pyro.runInVm({ command, environment, timeoutSeconds: timeout_seconds });
      return {
        exit_code: r.exit_code,
        stdout: r.stdout,
        stderr: r.stderr,
        timed_out: r.timed_out,
        execution_mode: r.execution_mode,
      };
    },
  });
}

export interface VercelAiExampleOptions {
  pyro?: Pyro;
  model?: LanguageModel;
  prompt?: string;
  maxSteps?: number;
}

export async function main(opts: VercelAiExampleOptions = {}) {
  // A model id string goes through the Vercel AI Gateway, which needs its key (or an OIDC token).
  if (!opts.model && !process.env.AI_GATEWAY_API_KEY && !process.env.VERCEL_OIDC_TOKEN)
    throw new Error(
      'AI_GATEWAY_API_KEY is not set: export AI_GATEWAY_API_KEY=... (AI_MODEL picks the gateway model), or call main({ model }) with a provider model such as openai("gpt-5-mini") from @ai-sdk/openai',
    );
  const result = await generateText({
    model: opts.model ?? process.env.AI_MODEL ?? "openai/gpt-5-mini",
    tools: { vm_run: vmRunTool(opts.pyro) },
    stopWhen: stepCountIs(opts.maxSteps ?? 5),
    prompt: opts.prompt ?? "Which Debian point release is the sandbox? Read /etc/debian_version with vm_run.",
  });
  for (const step of result.steps) {
    for (const call of step.toolCalls) console.log(`[model] ${call.toolName} ${JSON.stringify(call.input)}`);
    for (const r of step.toolResults) console.log(`[tool] ${JSON.stringify(r.output).slice(0, 200)}`);
  }
  console.log(`[model] ${result.text}`);
  return result;
}

// Run as a script: a missing input or a pyro error is one message with its fix, not a stack trace.
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  try {
    await main();
  } catch (e) {
    console.error(`vercel_ai_vm_run.ts: ${e instanceof Error ? e.message : String(e)}`);
    if (e instanceof PyroError && e.hint) console.error(`hint: ${e.hint}`);
    process.exitCode = 1;
  }
}
