import type { McpServer } from "@modelcontextprotocol/server";
import type { CreateServerOptions } from "./server.js";

export type { CreateServerOptions };

/**
 * The package entry's createServer. It loads the MCP SDK on first use so that
 * `import { Pyro } from "pyro-mcp"` does not pay for it (about 40-50 ms) when no server is wanted.
 */
export async function createServer(opts: CreateServerOptions = {}): Promise<McpServer> {
  const m = await import("./server.js");
  return m.createServer(opts);
}
