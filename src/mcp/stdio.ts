export async function serveStdio(): Promise<void> {
  throw new Error("MCP server not built yet");
}
