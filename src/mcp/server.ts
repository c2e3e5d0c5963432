import {
  type CallToolResult,
  McpServer,
  type ServerContext,
  type StandardSchemaWithJSON,
} from "@modelcontextprotocol/server";
import { defaultMcpPolicy, type HostAccessPolicy, hostAccessPolicy } from "../core/host-paths.js";
import { VERSION } from "../core/version.js";
import { errorForFace } from "../operations/hints.js";
import { invoke } from "../operations/invoke.js";
import { type ProfileName, parseProfile, profileTools, textForTools } from "../operations/profiles.js";
import { OPERATIONS, type Operation } from "../operations/table.js";
import {
  type ToolOptions,
  toolInput,
  toolInputJsonSchema,
  toolOutputJsonSchema,
} from "../operations/tool-schema.js";
import { toolSet } from "../operations/tool-sets.js";
import { type ExportPolicy, serverExportPolicy } from "../project/export-policy.js";
import type { ProjectSeeder } from "../project/source.js";
import { Runtime } from "../runtime/runtime.js";
import type { CallContext } from "../sandbox/context.js";
import { type OperatorSecrets, type SecretPolicy, secretPolicy } from "../secrets/spec.js";
import type { OperationGate } from "../tenants/tenancy.js";
import { type AskFirstPolicy, confirmAskFirst } from "./elicit.js";
import { InflightCalls } from "./inflight.js";
import { logCall } from "./logging.js";
import { PROGRESS_INTERVAL_MS, progressReporter } from "./progress.js";
import { renderContent, renderError } from "./render.js";
import { registerResources } from "./resources.js";

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
  /**
   * Which tools to serve (`pyro mcp serve --profile`): `vm-run`, `workspace-core` (the
   * default) or `workspace-full`. See src/operations/profiles.ts.
   */
  profile?: ProfileName | string;
  /**
   * `pyro mcp serve --mode`: `repro-fix`, `inspect`, `cold-start` or `review-eval`, a fixed
   * list of tools for one job with narrower schemas and descriptions (src/operations/modes.ts).
   * Replaces the profile.
   */
  mode?: string;
  /**
   * The project workspace_create seeds from when a call gives no seed_path (`pyro mcp serve`
   * in a git checkout, `--project-path`, `--repo-url`); see src/project/source.ts.
   */
  project?: ProjectSeeder;
  /**
   * Secrets a model may name in workspace_create (`pyro mcp serve --secret-env NAME[=VAR]`,
   * `--secret-file NAME=PATH`); values are read from this process's environment or the file
   * when a workspace is created. A model never names a host file or variable itself.
   */
  secrets?: OperatorSecrets;
  /** `--allow-secret-values`: a model may also send { name, value }. Off by default. */
  allowSecretValues?: boolean;
  /**
   * Every tool call goes through it (`pyro mcp serve --http`: the caller's tenant, see
   * src/tenants/tenancy.ts); it may rewrite the input and context and filter the result.
   */
  gate?: OperationGate;
  /** The host-access policy itself, instead of one built from allowPaths (HTTP: no default root). */
  hostAccess?: HostAccessPolicy;
  /**
   * Where workspace_export may write (`pyro mcp serve --export-dir DIR`): a model's output
   * must lie strictly inside it (a relative one is resolved there). Default: `pyro-exports/`
   * under the directory the server was started in, created (0700) by the first export; none
   * when that is `/`. See src/project/export-policy.ts.
   */
  exportDir?: string;
  /** `--allow-export-overwrite`: an export with force may replace an existing path in the area. */
  allowExportOverwrite?: boolean;
  /** `--allow-export-exec`: exported files keep their execute bits. */
  allowExportExec?: boolean;
  /** The export policy itself, instead of one built from the options above (HTTP). */
  exportPolicy?: ExportPolicy;
  /**
   * Whether the server lives as long as its connection (stdio: the default), so resource
   * subscriptions are polled and updates sent, and a client can be asked (elicitation). A
   * stateless HTTP request's server does not.
   */
  liveConnection?: boolean;
  /** `--ask-first`, `--ask-first-fallback`: calls a human confirms first (src/mcp/elicit.ts). */
  askFirst?: AskFirstPolicy;
  /**
   * Where this server's tool calls are registered for `notifications/cancelled`, and the
   * scope (one client) its calls belong to; see src/mcp/inflight.ts. HTTP passes one registry
   * for all its per-request servers and the caller's tenant and session as the scope; the
   * default (stdio: one server per connection) is a registry of this server's own.
   */
  inflight?: { calls: InflightCalls; scope: string };
}

/** The export policy of a server created with these options (throws on a bad --export-dir). */
export function serverExports(
  opts: Pick<CreateServerOptions, "exportDir" | "allowExportOverwrite" | "allowExportExec" | "exportPolicy">,
  hostAccess: HostAccessPolicy,
): ExportPolicy {
  return (
    opts.exportPolicy ??
    serverExportPolicy({
      ...(opts.exportDir !== undefined ? { exportDir: opts.exportDir } : {}),
      allowOverwrite: opts.allowExportOverwrite === true,
      allowExec: opts.allowExportExec === true,
      roots: hostAccess.roots,
    })
  );
}

/** The host-access policy of a server created with these options (throws on a bad directory). */
export function serverHostPolicy(
  opts: Pick<CreateServerOptions, "allowPaths" | "hostAccess"> = {},
): HostAccessPolicy {
  if (opts.hostAccess) return opts.hostAccess;
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

/** The operations a profile exposes as MCP tools, in table order (default: the default profile). */
export function mcpOperations(profile?: ProfileName | string): Operation[] {
  const names = profileTools(parseProfile(profile));
  return (OPERATIONS as unknown as Operation[]).filter((o) => names.includes(o.name));
}

/** The server's instructions, mentioning only tools the profile has. */
export function serverInstructions(tools: ReadonlySet<string>): string {
  return textForTools(INSTRUCTIONS, tools);
}

/** A tool's description as this server publishes it: only its own tools, and its project. */
export function toolDescription(
  op: Operation,
  tools: ReadonlySet<string>,
  project?: ProjectSeeder,
  exports?: ExportPolicy,
  base: string = op.description,
): string {
  let d = textForTools(base, tools);
  if (exports && op.name === "workspace_export")
    d += exports.area
      ? ` This server's export area is ${exports.area}: give output as a new relative path (e.g. "result" or "fix.tar.gz"), which lands there.`
      : ` This server has no export area: ${exports.noAreaBecause ?? "exports to host paths are refused"}.`;
  if (project && op.name === "workspace_create") {
    const p = project.project;
    const what = p.includeUntracked ? "git-tracked and untracked (not ignored) files" : "git-tracked files";
    const where = p.kind === "repo_url" ? `the repository ${p.url}` : `the project ${p.root}`;
    d += ` This server has a project: without seed_path, /workspace is seeded with the ${what} of ${where}${p.ref ? ` (${p.ref})` : ""}.`;
  }
  return d;
}

function stderrLog(line: string): void {
  process.stderr.write(`pyro mcp: ${line}\n`);
}

/**
 * Tool input JSON Schemas, converted once per process. An HTTP server builds a fresh
 * McpServer for every request (src/remote/http.ts), and converting the ~20 zod schemas took
 * 10-25 ms of CPU (and as much garbage) per request, whether or not it was a tools/list.
 * Bounded: one entry per operation and tool-option combination.
 */
const jsonSchemas = new Map<string, Record<string, unknown>>();

/** The memoised model-facing JSON Schema of `op`, computed on first use. */
export function cachedToolJsonSchema(op: Operation, tool: ToolOptions): Record<string, unknown> {
  const key = JSON.stringify([
    op.name,
    tool.allowHostCompat === true,
    tool.allowSecretValues === true,
    tool.omitFields,
    tool.onlyFields,
  ]);
  let json = jsonSchemas.get(key);
  if (!json) {
    json = toolInputJsonSchema(op, tool);
    jsonSchemas.set(key, json);
  }
  return json;
}

/** How many tool JSON Schemas this process holds (for the bound's test). */
export const cachedToolJsonSchemaCount = (): number => jsonSchemas.size;

/**
 * A tool's inputSchema as the MCP SDK wants it (a Standard Schema), publishing the strict
 * model-facing JSON Schema but accepting any arguments: the SDK would otherwise reject bad
 * input before our handler, with a bare "Input validation error". Our handler validates
 * against the same schema and says what is wrong (unknown name and the nearest valid one,
 * which field is required). The JSON Schema is produced only when the SDK asks (tools/list),
 * each time a copy of the memoised one, so nothing the SDK does to it reaches another server.
 */
export function publishedInputSchema(json: () => Record<string, unknown>) {
  const copy = () => structuredClone(json());
  return {
    "~standard": {
      version: 1 as const,
      vendor: "pyro",
      validate: (value: unknown) => ({ value }),
      jsonSchema: { input: copy, output: copy },
    },
  };
}

const outputSchemas = new Map<string, Record<string, unknown>>();

/**
 * A tool's outputSchema for the SDK: the compact published JSON Schema
 * (toolOutputJsonSchema, memoised), validating with the operation's zod result schema.
 */
export function publishedOutputSchema(op: Operation): StandardSchemaWithJSON<unknown, unknown> {
  const json = () => {
    let j = outputSchemas.get(op.name);
    if (!j) {
      j = toolOutputJsonSchema(op);
      outputSchemas.set(op.name, j);
    }
    return structuredClone(j);
  };
  return {
    "~standard": {
      version: 1 as const,
      vendor: "pyro",
      validate: (value: unknown) => op.result["~standard"].validate(value),
      jsonSchema: { input: json, output: json },
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
  served?: {
    tools?: ReadonlySet<string>;
    project?: ProjectSeeder;
    secretPolicy?: SecretPolicy;
    gate?: OperationGate;
    exportPolicy?: ExportPolicy;
    inflight?: { calls: InflightCalls; scope: string };
  },
): Promise<CallToolResult> {
  const interval = Number(process.env.PYRO_MCP_PROGRESS_INTERVAL_MS) || PROGRESS_INTERVAL_MS;
  const progress = progressReporter(ctx, log, interval);
  // The call's signal: the SDK's (a disconnect, or a cancel this instance received) or a
  // cancel any instance of this server received (inflight.ts).
  const running = served?.inflight?.calls.register(served.inflight.scope, ctx.mcpReq.id, ctx.mcpReq.signal);
  try {
    const call: CallContext = {
      signal: running?.signal ?? ctx.mcpReq.signal,
      hostAccess,
      // Always set over MCP: a model exports only into the operator's export area.
      exportPolicy: served?.exportPolicy ?? serverExportPolicy({ roots: hostAccess.roots }),
      ...progress?.callbacks,
      ...(served?.project ? { project: served.project } : {}),
      // Always set over MCP: the caller is a model (names only unless the operator allowed values).
      secretPolicy: served?.secretPolicy ?? secretPolicy({}, false),
    };
    const run = (a: unknown, c: CallContext) =>
      invoke(runtime, op, a, c, { face: "mcp", schema: toolInput(op, tool) });
    const raw = served?.gate ? await served.gate.run(op, args, call, run) : await run(args, call);
    // The published outputSchema forbids extra keys; parsing strips anything the runtime
    // added beyond the contract so strict clients (ajv in the v1 SDK) accept the result.
    const structured = op.result.parse(raw) as Record<string, unknown>;
    return {
      content: renderContent(op.name, structured).map((text) => ({ type: "text" as const, text })),
      structuredContent: structured,
    };
  } catch (e) {
    const err = errorForFace(e, "mcp", served?.tools);
    if (err.code === "engine_failure") log(`${op.name} failed: ${err.stack ?? err.message}`);
    // The error as data too, for programs (the SDK's remote mode rebuilds the PyroError).
    return {
      content: [{ type: "text", text: renderError(err) }],
      isError: true,
      _meta: { "pyro/error": err.toJSON() },
    };
  } finally {
    running?.done();
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
  const exportPolicy = serverExports(opts, hostAccess);
  const tool: ToolOptions = {
    allowHostCompat: opts.allowHostCompat === true,
    allowSecretValues: opts.allowSecretValues === true,
  };
  const secrets = secretPolicy(opts.secrets ?? {}, opts.allowSecretValues === true);
  const set = toolSet({
    ...(opts.profile !== undefined ? { profile: opts.profile } : {}),
    ...(opts.mode !== undefined ? { mode: opts.mode } : {}),
    secretsConfigured: secrets.catalog.size > 0 || opts.allowSecretValues === true,
  });
  const tools = new Set(set.tools.map((t) => t.op.name));
  const inflight = opts.inflight ?? { calls: new InflightCalls(), scope: "connection" };
  const served = {
    inflight,
    tools,
    ...(opts.project ? { project: opts.project } : {}),
    secretPolicy: secrets,
    ...(opts.gate ? { gate: opts.gate } : {}),
    exportPolicy,
  };
  const server = new McpServer(
    { name: "pyro", title: "pyro sandboxes", version: VERSION },
    {
      // resources and completions: src/mcp/resources.ts; logging: src/mcp/logging.ts.
      capabilities: {
        tools: {},
        logging: {},
        resources: { subscribe: true, listChanged: false },
        completions: {},
      },
      instructions: set.instructions ?? serverInstructions(tools),
      maxToolInputElements: MAX_TOOL_INPUT_ELEMENTS,
    },
  );
  for (const { op, description, omitFields, onlyFields } of set.tools) {
    // This tool's fields in this profile or mode: calls are checked against the same schema.
    const view: ToolOptions = {
      ...tool,
      ...(omitFields ? { omitFields } : {}),
      ...(onlyFields ? { onlyFields } : {}),
    };
    server.registerTool(
      op.name,
      {
        title: op.title,
        description: toolDescription(op, tools, opts.project, exportPolicy, description),
        inputSchema: publishedInputSchema(() => cachedToolJsonSchema(op, view)),
        outputSchema: publishedOutputSchema(op),
        // The tool's own title is the title (annotations.title would repeat it); readOnlyHint
        // only when true (false is its default), the other two always (their defaults are true).
        annotations: {
          ...(op.readOnly === true ? { readOnlyHint: true } : {}),
          destructiveHint: op.destructive === true,
          // Sandboxes are local; even with network=true the tool itself talks to no outside service.
          openWorldHint: false,
        },
      },
      async (args, ctx) => {
        try {
          await confirmAskFirst(opts.askFirst, server, ctx, op.name, args, opts.liveConnection !== false);
        } catch (e) {
          const err = errorForFace(e, "mcp", tools);
          const refused: CallToolResult = {
            content: [{ type: "text", text: renderError(err) }],
            isError: true,
            _meta: { "pyro/error": err.toJSON() },
          };
          await logCall(ctx, op.name, refused);
          return refused;
        }
        const result = await callOperation(runtime, op, args, ctx, log, view, hostAccess, served);
        await logCall(ctx, op.name, result);
        return result;
      },
    );
  }
  // Resources and completions run operations as a tool call would: same checks, same gate.
  registerResources(server, {
    watch: opts.liveConnection !== false,
    ...(Number(process.env.PYRO_MCP_RESOURCE_POLL_MS) > 0
      ? { pollMs: Number(process.env.PYRO_MCP_RESOURCE_POLL_MS) }
      : {}),
    run: (name, args, signal) => {
      const op = (OPERATIONS as unknown as Operation[]).find((o) => o.name === name);
      if (!op) throw new Error(`no operation ${name}`);
      const call: CallContext = {
        ...(signal ? { signal } : {}),
        hostAccess,
        exportPolicy,
        secretPolicy: served.secretPolicy,
      };
      const run = (a: unknown, c: CallContext) => invoke(runtime, op, a, c, { face: "mcp" });
      return served.gate ? served.gate.run(op, args, call, run) : run(args, call);
    },
  });
  routeCancels(server, inflight);
  return server;
}

/** The SDK's own cancel handling, a protected method of its Protocol class (see routeCancels). */
type WithOwnCancel = { _oncancel?: (n: unknown) => Promise<void> | void };

/**
 * `notifications/cancelled` aborts the named call wherever it runs: first the SDK's own way,
 * which finds a call of this very instance (stdio) and also keeps the SDK from sending a
 * response for it (the spec asks for none), then through the registry, which finds a call
 * another instance is running (HTTP: each POST has its own instance).
 */
export function routeCancels(server: McpServer, inflight: { calls: InflightCalls; scope: string }): void {
  const proto = server.server as unknown as WithOwnCancel;
  server.server.setNotificationHandler("notifications/cancelled", async (n) => {
    if (typeof proto._oncancel === "function") await proto._oncancel.call(server.server, n);
    const id = n.params.requestId;
    if (id !== undefined) inflight.calls.cancel(inflight.scope, id, n.params.reason);
  });
}
