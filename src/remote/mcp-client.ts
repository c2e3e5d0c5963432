// The MCP client, behind one module so the CLI bundles it on its own (scripts/bundle-cli.mjs):
// only `--remote` and the SDK's remote mode load it.
export { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
