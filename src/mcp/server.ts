import { type CallToolResult, McpServer, type ServerContext } from "@modelcontextprotocol/server";
import { toPyroError } from "../errors.js";
import { invoke } from "../operations/invoke.js";
import { OPERATIONS, type Operation } from "../operations/table.js";
import { Runtime } from "../runtime/runtime.js";
import { VERSION } from "../version.js";
import { PROGRESS_INTERVAL_MS, progressReporter } from "./progress.js";
import { renderError, renderResult } from "./render.js";

export interface CreateServerOptions {
  /** Share one runtime with an SDK instance; defaults to a runtime over process.env. */
  runtime?: Runtime;
  /** Where diagnostics go; stdout belongs to the protocol on stdio, so the default is stderr. */
  log?: (line: string) => void;
}

const INSTRUCTIONS =
  "pyro runs commands in isolated, disposable Linux sandboxes. Use vm_run for one-shot commands (the default). " +
  "Use workspace_create / workspace_exec / workspace_delete only for several commands that share files, " +
  "and delete workspaces when done. Network is off unless network=true.";

// Generous for any real call (a command array is capped at 10,000 items) but bounds the
// work a hostile payload can make validation do.
const MAX_TOOL_INPUT_ELEMENTS = 50_000;

/** The operations exposed as MCP tools, in table order. */
export function mcpOperations(): Operation[] {
  return OPERATIONS.filter((o) => o.mcp) as unknown as Operation[];
}

function stderrLog(line: string): void {
  process.stderr.write(`pyro mcp: ${line}\n`);
}

/** Runs one operation for a tools/call; every failure becomes an isError result, never a crash. */
export async function callOperation(
  runtime: Runtime,
  op: Operation,
  args: unknown,
  ctx: ServerContext,
  log: (line: string) => void = stderrLog,
): Promise<CallToolResult> {
  const interval = Number(process.env.PYRO_MCP_PROGRESS_INTERVAL_MS) || PROGRESS_INTERVAL_MS;
  const progress = progressReporter(ctx, log, interval);
  try {
    const raw = await invoke(runtime, op, args, {
      signal: ctx.mcpReq.signal,
      ...progress?.callbacks,
    });
    // The published outputSchema forbids extra keys; parsing strips anything the runtime
    // added beyond the contract so strict clients (ajv in the v1 SDK) accept the result.
    const structured = op.result.parse(raw) as Record<string, unknown>;
    return {
      content: [{ type: "text", text: renderResult(op.name, structured) }],
      structuredContent: structured,
    };
  } catch (e) {
    const err = toPyroError(e);
    if (err.code === "engine_failure") log(`${op.name} failed: ${err.stack ?? err.message}`);
    return { content: [{ type: "text", text: renderError(err) }], isError: true };
  } finally {
    progress?.stop();
  }
}

/**
 * An MCP server with one tool per `mcp: true` operation. Everything about a tool (name,
 * schemas, description) comes from the operation table, so MCP cannot drift from the CLI/SDK.
 */
export function createServer(opts: CreateServerOptions = {}): McpServer {
  const runtime = opts.runtime ?? new Runtime();
  const log = opts.log ?? stderrLog;
  const server = new McpServer(
    { name: "pyro", title: "pyro sandboxes", version: VERSION },
    {
      capabilities: { tools: {} },
      instructions: INSTRUCTIONS,
      maxToolInputElements: MAX_TOOL_INPUT_ELEMENTS,
    },
  );
  for (const op of mcpOperations()) {
    server.registerTool(
      op.name,
      {
        title: op.title,
        description: op.description,
        inputSchema: op.input,
        outputSchema: op.result,
        annotations: {
          title: op.title,
          readOnlyHint: op.readOnly === true,
          destructiveHint: op.destructive === true,
          // Sandboxes are local; even with network=true the tool itself talks to no outside service.
          openWorldHint: false,
        },
      },
      (args, ctx) => callOperation(runtime, op, args, ctx, log),
    );
  }
  return server;
}
