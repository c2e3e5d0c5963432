import { join } from "node:path";
import type { JSONRPCMessage } from "@modelcontextprotocol/server";
import { StdioServerTransport, serveStdio as serveStdioEntry } from "@modelcontextprotocol/server/stdio";
import { parseSelection } from "../operations/tool-sets.js";
import { type ProjectOptions, projectSeeder, resolveProject } from "../project/source.js";
import { Runtime } from "../runtime/runtime.js";
import { type OperatorSecrets, secretPolicy } from "../secrets/spec.js";
import type { AskFirstPolicy } from "./elicit.js";
import { JsonRpcLineFilter } from "./jsonrpc-filter.js";
import { createServer, serverExports, serverHostPolicy } from "./server.js";

function log(line: string): void {
  process.stderr.write(`pyro mcp: ${line}\n`);
}

// After the client goes away, in-flight calls are aborted and clean up their sandboxes;
// the process then exits on its own. This backstop only fires if something still holds
// the event loop open well after that.
const EXIT_BACKSTOP_MS = 15_000;

/**
 * `pyro mcp serve`: MCP over stdio until the client closes stdin or a signal arrives.
 * Stdout carries protocol messages only, so stray console output is sent to stderr.
 */
export interface ServeStdioOptions {
  /** `--ask-first`, `--ask-first-fallback` (src/mcp/elicit.ts). */
  askFirst?: AskFirstPolicy;
  allowPaths?: readonly string[];
  allowHostCompat?: boolean;
  /** `--profile`: which tools to serve. */
  profile?: string;
  /** `--mode`: a job's tools instead of a profile (src/operations/modes.ts). */
  mode?: string;
  /** `--project-path`, `--repo-url`, `--repo-ref`, `--include-untracked`; `noProject` turns detection off. */
  project?: ProjectOptions & { noProject?: boolean };
  /** `--secret-env`, `--secret-file`: secrets models may name; `--allow-secret-values`. */
  secrets?: OperatorSecrets;
  allowSecretValues?: boolean;
  /** `--export-dir`, `--allow-export-overwrite`, `--allow-export-exec` (src/project/export-policy.ts). */
  exportDir?: string;
  allowExportOverwrite?: boolean;
  allowExportExec?: boolean;
}

export async function serveStdio(opts: ServeStdioOptions = {}): Promise<void> {
  for (const k of ["log", "info", "debug"] as const) console[k] = console.error;
  if (process.stdin.isTTY)
    log("serving on stdio; this is meant to be started by an MCP client (Ctrl-D quits)");

  // One runtime for the connection: the entry may build a probe instance before pinning
  // the real one, and both must see the same state and reaper.
  const runtime = new Runtime();
  const tools = parseSelection(opts);
  // Resolved (and a --repo-url cloned) before serving: a bad project is a startup error.
  if (opts.project?.repoUrl && !opts.project.noProject)
    log(
      `cloning ${opts.project.repoUrl}${opts.project.repoRef ? ` (${opts.project.repoRef})` : ""} (shallow)`,
    );
  const project = opts.project?.noProject
    ? undefined
    : await resolveProject(opts.project ?? {}, { cwd: process.cwd(), cacheDir: runtime.paths.cacheDir });
  if (project)
    log(
      `project: ${project.kind === "repo_url" ? `${project.url} cloned to ` : ""}${project.root}` +
        `${project.ref ? ` (${project.ref})` : ""}; workspace_create without seed_path seeds its ` +
        (project.includeUntracked ? "tracked and untracked files" : "git-tracked files"),
    );
  // Checked once, before serving: a bad --allow-path is an error at startup, not at a tool call.
  const allowPaths = serverHostPolicy(opts).roots;
  if (allowPaths.length === 0)
    log("no host paths are allowed (started in /); pass --allow-path DIR to allow some");
  // Checked once too: a bad --export-dir is a startup error.
  const exports = serverExports(opts, serverHostPolicy(opts));
  log(
    exports.area
      ? `exports go to ${exports.area}${exports.allowOverwrite ? " (may replace existing paths: --allow-export-overwrite)" : ""}${exports.allowExec ? " (execute bits kept: --allow-export-exec)" : ""}`
      : `no export area: ${exports.noAreaBecause}; pass --export-dir DIR`,
  );
  // Checked once, before serving: a bad secret name is a startup error.
  const secrets = secretPolicy(opts.secrets ?? {}, opts.allowSecretValues === true);
  if (secrets.catalog.size) log(`secrets models may name: ${[...secrets.catalog.keys()].join(", ")}`);
  if (opts.allowSecretValues) log("--allow-secret-values: models may send secret values");
  if (opts.allowHostCompat)
    log("--allow-host-compat: tools offer allow_host_compat; a call that sets it may run WITHOUT isolation");
  // Bad lines are answered by the filter (-32700 / -32600) before the SDK sees them.
  const filter = new JsonRpcLineFilter((r) => {
    // JSON-RPC wants `id: null` when the id could not be read; the SDK's type has no null.
    wire
      .send(r as unknown as JSONRPCMessage)
      .catch((e: unknown) => log(`reply to a bad line: ${e instanceof Error ? e.message : String(e)}`));
  });
  const wire = new StdioServerTransport(filter, process.stdout);
  process.stdin.pipe(filter);
  const handle = serveStdioEntry(
    () =>
      createServer({
        runtime,
        log,
        ...(opts.allowPaths?.length ? { allowPaths } : {}),
        ...(opts.allowHostCompat ? { allowHostCompat: true } : {}),
        ...(opts.secrets ? { secrets: opts.secrets } : {}),
        ...(opts.allowSecretValues ? { allowSecretValues: true } : {}),
        ...(opts.askFirst ? { askFirst: opts.askFirst } : {}),
        exportPolicy: exports,
        ...tools,
        ...(project ? { project: projectSeeder(project, join(runtime.paths.stateDir, "tmp")) } : {}),
      }),
    { transport: wire, onerror: (e) => log(`transport: ${e.message}`) },
  );

  await new Promise<void>((resolve) => {
    let done = false;
    const finish = (why: string) => {
      if (done) return;
      done = true;
      if (why !== "stdin closed") log(`${why}, shutting down`);
      // Closing aborts in-flight requests, whose signals make the runtime clean up.
      handle.close().catch((e: unknown) => log(`close: ${e instanceof Error ? e.message : String(e)}`));
      setTimeout(() => process.exit(0), EXIT_BACKSTOP_MS).unref();
      resolve();
    };
    process.stdin.once("end", () => finish("stdin closed"));
    process.stdin.once("close", () => finish("stdin closed"));
    process.once("SIGINT", () => finish("SIGINT"));
    process.once("SIGTERM", () => finish("SIGTERM"));
  });
}
