import { type CallToolResult, McpServer, type ServerContext } from "@modelcontextprotocol/server";
import { defaultMcpPolicy, type HostAccessPolicy, hostAccessPolicy } from "../host-paths.js";
import { errorForFace } from "../operations/hints.js";
import { invoke } from "../operations/invoke.js";
import { OPERATIONS, type Operation } from "../operations/table.js";
import { type ToolOptions, toolInput, toolInputJsonSchema } from "../operations/tool-schema.js";
import { Runtime } from "../runtime/runtime.js";
import { VERSION } from "../version.js";
import { PROGRESS_INTERVAL_MS, progressReporter } from "./progress.js";
import { renderError, renderResult } from "./render.js";

export interface CreateServerOptions {
  /** Share one runtime with an SDK instance; defaults to a runtime over process.env. */
  runtime?: Runtime;
  /** Where diagnostics go; stdout belongs to the protocol on stdio, so the default is stderr. */
  log?: (line: string) => void;
  /**
   * Host directories tools may read from (seed_path, source_path), and everything below
   * them once symlinks are resolved. Default: the directory the server was started in
   * (none when that is `/`). The model on the other end is not the operator: it gets only
   * what is listed here.
   */
  allowPaths?: readonly string[];
  /**
   * The operator allows unisolated execution (`pyro mcp serve --allow-host-compat`): the
   * tools then offer `allow_host_compat`. Off by default: a model never sees the option.
   */
  allowHostCompat?: boolean;
}

/** The host-access policy of a server created with these options (throws on a bad directory). */
export function serverHostPolicy(opts: Pick<CreateServerOptions, "allowPaths"> = {}): HostAccessPolicy {
  return opts.allowPaths && opts.allowPaths.length > 0
    ? hostAccessPolicy(opts.allowPaths)
    : defaultMcpPolicy();
}

const INSTRUCTIONS =
  "pyro runs commands in isolated, disposable Linux sandboxes. Use vm_run for one-shot commands (the default). " +
  "Use workspace_create / workspace_exec / workspace_delete only for several commands that share files, " +
  "and delete workspaces when done (workspace_list finds them again). Network is off unless network=true.";

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

/**
 * A tool's inputSchema as the MCP SDK wants it (a Standard Schema), publishing the strict
 * model-facing JSON Schema but accepting any arguments: the SDK would otherwise reject bad
 * input before our handler, with a bare "Input validation error". Our handler validates
 * against the same schema and says what is wrong (unknown name and the nearest valid one,
 * which field is required).
 */
export function publishedInputSchema(json: Record<string, unknown>) {
  return {
    "~standard": {
      version: 1 as const,
      vendor: "pyro",
      validate: (value: unknown) => ({ value }),
      jsonSchema: { input: () => json, output: () => json },
    },
  };
}

/** Runs one operation for a tools/call; every failure becomes an isError result, never a crash. */
export async function callOperation(
  runtime: Runtime,
  op: Operation,
  args: unknown,
  ctx: ServerContext,
  log: (line: string) => void = stderrLog,
  tool: ToolOptions = {},
  hostAccess: HostAccessPolicy = defaultMcpPolicy(),
): Promise<CallToolResult> {
  const interval = Number(process.env.PYRO_MCP_PROGRESS_INTERVAL_MS) || PROGRESS_INTERVAL_MS;
  const progress = progressReporter(ctx, log, interval);
  try {
    const raw = await invoke(
      runtime,
      op,
      args,
      { signal: ctx.mcpReq.signal, hostAccess, ...progress?.callbacks },
      { face: "mcp", schema: toolInput(op, tool) },
    );
    // The published outputSchema forbids extra keys; parsing strips anything the runtime
    // added beyond the contract so strict clients (ajv in the v1 SDK) accept the result.
    const structured = op.result.parse(raw) as Record<string, unknown>;
    return {
      content: [{ type: "text", text: renderResult(op.name, structured) }],
      structuredContent: structured,
    };
  } catch (e) {
    const err = errorForFace(e, "mcp");
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
  const hostAccess = serverHostPolicy(opts);
  const tool: ToolOptions = { allowHostCompat: opts.allowHostCompat === true };
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
        inputSchema: publishedInputSchema(toolInputJsonSchema(op, tool)),
        outputSchema: op.result,
        annotations: {
          title: op.title,
          readOnlyHint: op.readOnly === true,
          destructiveHint: op.destructive === true,
          // Sandboxes are local; even with network=true the tool itself talks to no outside service.
          openWorldHint: false,
        },
      },
      (args, ctx) => callOperation(runtime, op, args, ctx, log, tool, hostAccess),
    );
  }
  return server;
}
