/**
 * OpenAI Responses API tool loop with pyro's `vm_run` as a function tool.
 *
 * The tool's JSON schema comes straight from pyro's operation table, so it is exactly the
 * schema MCP clients see for `vm_run`. The loop: create a response; for every
 * `function_call` item, run it through pyro; send the results back as
 * `function_call_output` items with `previous_response_id`; stop when the model answers.
 *
 *   OPENAI_API_KEY=sk-... [OPENAI_MODEL=gpt-5-mini] [OPENAI_BASE_URL=...] npx tsx examples/openai_responses_vm_run.ts
 */
import { pathToFileURL } from "node:url";
import OpenAI from "openai";
import type {
  FunctionTool,
  Response,
  ResponseFunctionToolCall,
  ResponseInputItem,
} from "openai/resources/responses/responses";
import { OPERATIONS, Pyro, PyroError, toolInputJsonSchema } from "pyro-mcp";

const VM_RUN = OPERATIONS.find((o) => o.name === "vm_run")!;

/**
 * `vm_run` as a Responses API function tool, with the schema the MCP server publishes: the
 * model-facing one (no allow_host_compat; isolation is the operator's choice, not the model's).
 */
export const vmRunTool: FunctionTool = {
  type: "function",
  name: VM_RUN.name,
  description: VM_RUN.description,
  parameters: toolInputJsonSchema(VM_RUN.name),
  // Strict mode requires every field to be required; vm_run has optional fields with defaults.
  strict: false,
};

export interface OpenAIExampleOptions {
  pyro?: Pyro;
  client?: OpenAI;
  baseURL?: string;
  apiKey?: string;
  model?: string;
  prompt?: string;
  maxRounds?: number;
}

/** Runs one function call through pyro. Errors go back to the model as data, not as exceptions. */
async function runToolCall(pyro: Pyro, call: ResponseFunctionToolCall): Promise<string> {
  if (call.name !== VM_RUN.name)
    return JSON.stringify({ error: { code: "invalid_argument", message: `unknown tool ${call.name}` } });
  try {
    // The arguments are vm_run's wire input (snake_case); callTool validates them against the
    // same model-facing schema, so a model cannot slip allow_host_compat in.
    const result = await pyro.callTool(VM_RUN.name, JSON.parse(call.arguments || "{}"));
    return JSON.stringify(result);
  } catch (e) {
    if (e instanceof PyroError) return JSON.stringify(e.toJSON());
    if (e instanceof SyntaxError)
      return JSON.stringify({
        error: { code: "invalid_argument", message: `arguments are not JSON: ${e.message}` },
      });
    throw e;
  }
}

export async function main(
  opts: OpenAIExampleOptions = {},
): Promise<{ text: string; toolCalls: ResponseFunctionToolCall[]; response: Response }> {
  const apiKey = opts.apiKey ?? process.env.OPENAI_API_KEY;
  // Checked before any call, so the missing key is named rather than failing deep in the client.
  if (!opts.client && !apiKey)
    throw new Error(
      "OPENAI_API_KEY is not set: export OPENAI_API_KEY=sk-... (and OPENAI_BASE_URL for an OpenAI-compatible server, OPENAI_MODEL for another model), then run this again",
    );
  const pyro = opts.pyro ?? new Pyro();
  const client =
    opts.client ??
    new OpenAI({
      apiKey,
      baseURL: opts.baseURL ?? process.env.OPENAI_BASE_URL ?? "https://api.openai.com/v1",
    });
  const model = opts.model ?? process.env.OPENAI_MODEL ?? "gpt-5-mini";
  const prompt =
    opts.prompt ??
    "Which Debian point release is the sandbox? Use vm_run to read /etc/debian_version, then answer in one sentence.";
  const toolCalls: ResponseFunctionToolCall[] = [];

  let response = await client.responses.create({ model, input: prompt, tools: [vmRunTool] });
  for (let round = 0; round < (opts.maxRounds ?? 5); round++) {
    const calls = response.output.filter(
      (item): item is ResponseFunctionToolCall => item.type === "function_call",
    );
    if (calls.length === 0) break;
    const outputs: ResponseInputItem[] = [];
    for (const call of calls) {
      console.log(`[model] ${call.name} ${call.arguments}`);
      toolCalls.push(call);
      const output = await runToolCall(pyro, call);
      console.log(`[tool] ${output.slice(0, 200)}`);
      outputs.push({ type: "function_call_output", call_id: call.call_id, output });
    }
    response = await client.responses.create({
      model,
      previous_response_id: response.id,
      input: outputs,
      tools: [vmRunTool],
    });
  }
  console.log(`[model] ${response.output_text}`);
  return { text: response.output_text, toolCalls, response };
}

// Run as a script: a missing input or a pyro error is one message with its fix, not a stack trace.
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  try {
    await main();
  } catch (e) {
    console.error(`openai_responses_vm_run.ts: ${e instanceof Error ? e.message : String(e)}`);
    if (e instanceof PyroError && e.hint) console.error(`hint: ${e.hint}`);
    process.exitCode = 1;
  }
}
