import { type ServeStdioOptions, serveStdio } from "../mcp/stdio.js";
import { serveHttp } from "../remote/http.js";
import { type CliIo, reportError } from "./commands.js";

/**
 * `pyro mcp serve`, kept apart from the other commands: the CLI bundles it separately
 * (scripts/bundle-cli.mjs), so the MCP SDK is read and compiled only when serving. Errors are
 * reported here, by this bundle's own error classes. Returns whether the server is running.
 */
export async function serveMcp(io: CliIo, opts: ServeStdioOptions): Promise<boolean> {
  try {
    await serveStdio(opts);
    return true;
  } catch (e) {
    // A bad --allow-path is reported like any CLI error, before serving anything.
    reportError(io, e, false);
    return false;
  }
}

// `pyro mcp serve --http` lives in this bundle too: it needs the MCP SDK and node:http.
export { serveHttp } from "../remote/http.js";

/**
 * `serveHttp` with its start-up errors (a refused --no-auth bind, a bad --export-dir)
 * reported by this bundle's error classes, so their hint is printed too.
 */
export async function serveHttpReported(io: CliIo, opts: Parameters<typeof serveHttp>[0]): Promise<void> {
  try {
    await serveHttp(opts);
  } catch (e) {
    reportError(io, e, false);
  }
}
