import { homedir } from "node:os";
import { join } from "node:path";

/**
 * The MCP clients `pyro host` knows: where each keeps its MCP servers, in which format, and
 * how one stdio server is written there. Each shape was looked up in the client's own
 * documentation (cited per client); test/fixtures/host-configs/ holds those documented
 * examples and the tests check our output against them.
 */
export const CLIENTS = ["claude-code", "codex", "cursor", "vscode", "opencode"] as const;
export type ClientName = (typeof CLIENTS)[number];
export type Scope = "user" | "project";

/** How a client starts the server: a program and its arguments. */
export interface Launch {
  command: string;
  args: string[];
}

export interface Where {
  home: string;
  /** The project directory for project scope (default: the current directory). */
  cwd: string;
  env: NodeJS.ProcessEnv;
  platform: NodeJS.Platform;
}

export function defaultWhere(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Where {
  return { home: env.HOME || homedir(), cwd, env, platform: process.platform };
}

interface ClientBase {
  name: ClientName;
  /** The client's command, to tell whether it is installed here. */
  bin: string;
  title: string;
  /** Where the shape below comes from. */
  docs: string;
  defaultScope: Scope;
  file(scope: Scope, w: Where): string;
}

/** A JSON config: servers live in an object under `key`, one entry per server name. */
export interface JsonClient extends ClientBase {
  format: "json";
  key: string;
  /** A fresh file's top-level fields besides `key` (OpenCode's $schema). */
  fresh?: Record<string, unknown>;
  entry(l: Launch): Record<string, unknown>;
  /** The launch an entry describes, or undefined when it is not a stdio server we can read. */
  launch(entry: unknown): Launch | undefined;
}

/** Codex: TOML, one `[mcp_servers.NAME]` table per server. */
export interface TomlClient extends ClientBase {
  format: "toml";
}

export type Client = JsonClient | TomlClient;

const xdgConfig = (w: Where) => w.env.XDG_CONFIG_HOME || join(w.home, ".config");

function commandArgs(entry: unknown): Launch | undefined {
  if (!entry || typeof entry !== "object") return undefined;
  const e = entry as { command?: unknown; args?: unknown };
  if (typeof e.command !== "string") return undefined;
  const args = Array.isArray(e.args) ? e.args : [];
  if (!args.every((a) => typeof a === "string")) return undefined;
  return { command: e.command, args: args as string[] };
}

export const CLIENT_SPECS: Record<ClientName, Client> = {
  // Claude Code: `claude mcp add --scope user` writes `mcpServers` at the top level of
  // ~/.claude.json; `--scope project` writes `.mcp.json` at the project root (meant to be
  // committed), same `mcpServers` shape: { "type": "stdio", "command", "args", "env" }.
  // Source: Claude Code docs, "MCP installation scopes" (docs.anthropic.com/en/docs/claude-code/mcp),
  // as summarised at dev.to/aicoding-guide "claude mcp add --scope: local vs project vs user".
  "claude-code": {
    name: "claude-code",
    bin: "claude",
    title: "Claude Code",
    docs: "https://docs.anthropic.com/en/docs/claude-code/mcp",
    defaultScope: "user",
    format: "json",
    key: "mcpServers",
    file: (scope, w) => (scope === "user" ? join(w.home, ".claude.json") : join(w.cwd, ".mcp.json")),
    entry: (l) => ({ type: "stdio", command: l.command, args: l.args, env: {} }),
    launch: commandArgs,
  },
  // Codex: `[mcp_servers.<name>]` tables with `command`, `args` (and optional `env`) in
  // ~/.codex/config.toml ($CODEX_HOME moves it), or .codex/config.toml in a trusted project.
  // Source: openai/codex docs/config.md ("MCP servers"; PR 6845 shows the block), and
  // developers.openai.com/codex/mcp.
  codex: {
    name: "codex",
    bin: "codex",
    title: "Codex",
    docs: "https://github.com/openai/codex/blob/main/docs/config.md#mcp_servers",
    defaultScope: "user",
    format: "toml",
    file: (scope, w) =>
      scope === "user"
        ? join(w.env.CODEX_HOME || join(w.home, ".codex"), "config.toml")
        : join(w.cwd, ".codex", "config.toml"),
  },
  // Cursor: `mcpServers` in ~/.cursor/mcp.json (every project) or .cursor/mcp.json (one
  // project); a local server is { "command", "args", "env" }. Source: cursor.com/docs/mcp.
  cursor: {
    name: "cursor",
    bin: "cursor",
    title: "Cursor",
    docs: "https://cursor.com/docs/mcp",
    defaultScope: "user",
    format: "json",
    key: "mcpServers",
    file: (scope, w) => join(scope === "user" ? join(w.home, ".cursor") : join(w.cwd, ".cursor"), "mcp.json"),
    entry: (l) => ({ command: l.command, args: l.args }),
    launch: commandArgs,
  },
  // VS Code: `servers` (not `mcpServers`) in .vscode/mcp.json, or the user profile's
  // mcp.json; a stdio server needs "type": "stdio", "command", optional "args"/"env".
  // Source: code.visualstudio.com/docs/copilot/reference/mcp-configuration. A workspace
  // server with no "cwd" starts in the workspace folder (microsoft/vscode PR 330253 describes
  // the extension host's `defaultCwd`), so project scope gets the project-aware start.
  vscode: {
    name: "vscode",
    bin: "code",
    title: "VS Code",
    docs: "https://code.visualstudio.com/docs/copilot/reference/mcp-configuration",
    defaultScope: "project",
    format: "json",
    key: "servers",
    file: (scope, w) => {
      if (scope === "project") return join(w.cwd, ".vscode", "mcp.json");
      if (w.platform === "darwin")
        return join(w.home, "Library", "Application Support", "Code", "User", "mcp.json");
      return join(xdgConfig(w), "Code", "User", "mcp.json");
    },
    entry: (l) => ({ type: "stdio", command: l.command, args: l.args }),
    launch: (e) =>
      e && typeof e === "object" && (e as { type?: unknown }).type === "stdio" ? commandArgs(e) : undefined,
  },
  // OpenCode: servers under `mcp`; a local one is { "type": "local", "command": [program,
  // ...args], "enabled": true }, in opencode.json at the project root or
  // ~/.config/opencode/opencode.json. Source: opencode.ai/docs/mcp-servers ("Local").
  opencode: {
    name: "opencode",
    bin: "opencode",
    title: "OpenCode",
    docs: "https://opencode.ai/docs/mcp-servers",
    defaultScope: "user",
    format: "json",
    key: "mcp",
    fresh: { $schema: "https://opencode.ai/config.json" },
    file: (scope, w) =>
      scope === "user" ? join(xdgConfig(w), "opencode", "opencode.json") : join(w.cwd, "opencode.json"),
    entry: (l) => ({ type: "local", command: [l.command, ...l.args], enabled: true }),
    launch: (e) => {
      const c = (e as { type?: unknown; command?: unknown } | undefined)?.command;
      if (!Array.isArray(c) || c.length === 0 || !c.every((x) => typeof x === "string")) return undefined;
      return { command: c[0] as string, args: c.slice(1) as string[] };
    },
  },
};

/** The name pyro's entry has in every client's config. */
export const SERVER_NAME = "pyro";
