import type { Runtime } from "../runtime/runtime.js";

/** Placeholder until the MCP server lands (issue 4). */
export function createServer(_opts: { runtime?: Runtime } = {}): never {
  throw new Error("MCP server not built yet");
}
