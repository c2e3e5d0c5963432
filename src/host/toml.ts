import type { Launch } from "./clients.js";

/**
 * Just enough TOML for one `[mcp_servers.NAME]` table in Codex's config.toml, edited in
 * place as text: the rest of the file (comments, other servers, other settings, this
 * server's other keys such as `env`) is left byte for byte as it was. pyro writes `command`
 * and `args` as one-line basic strings and arrays, which JSON's string syntax produces.
 */
const tomlString = (s: string) => JSON.stringify(s);
const tomlArray = (xs: string[]) => `[${xs.map(tomlString).join(", ")}]`;

function headerRe(name: string): RegExp {
  const n = name.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&");
  return new RegExp(`^\\s*\\[\\s*mcp_servers\\s*\\.\\s*(?:${n}|"${n}")\\s*\\]\\s*(?:#.*)?$`);
}

interface Block {
  /** Line index of the header. */
  start: number;
  /** Line index after the table's last line (the next header, or the end). */
  end: number;
}

function findBlock(lines: string[], name: string): Block | undefined {
  const re = headerRe(name);
  const start = lines.findIndex((l) => re.test(l));
  if (start < 0) return undefined;
  let end = start + 1;
  while (end < lines.length && !/^\s*\[/.test(lines[end]!)) end++;
  return { start, end };
}

/** [first line, line after] of `key = ...` in a block, following a multi-line array. */
function keyLines(lines: string[], b: Block, key: string): [number, number] | undefined {
  const re = new RegExp(`^\\s*${key}\\s*=`);
  for (let i = b.start + 1; i < b.end; i++) {
    if (!re.test(lines[i]!)) continue;
    let depth = 0;
    let j = i;
    for (; j < b.end; j++) {
      for (const ch of lines[j]!.replace(/"(?:[^"\\]|\\.)*"|'[^']*'/g, "")) {
        if (ch === "[") depth++;
        if (ch === "]") depth--;
      }
      if (depth <= 0) break;
    }
    return [i, Math.min(j + 1, b.end)];
  }
  return undefined;
}

/** The launch in `[mcp_servers.NAME]`, undefined when there is no such table, null when it cannot be read. */
export function readTomlServer(text: string, name: string): Launch | null | undefined {
  const lines = text.split("\n");
  const b = findBlock(lines, name);
  if (!b) return undefined;
  const value = (key: string): unknown => {
    const at = keyLines(lines, b, key);
    if (!at) return undefined;
    const raw = lines
      .slice(at[0], at[1])
      .join("\n")
      .replace(/^\s*\w+\s*=\s*/, "")
      .replace(/#[^"\n]*$/gm, "")
      .replace(/,(\s*)\]/g, "$1]")
      .trim();
    try {
      return JSON.parse(raw.replace(/'([^']*)'/g, (_, s: string) => JSON.stringify(s)));
    } catch {
      return null;
    }
  };
  const command = value("command");
  const args = value("args") ?? [];
  if (typeof command !== "string" || !Array.isArray(args) || !args.every((a) => typeof a === "string"))
    return null;
  return { command, args: args as string[] };
}

/** `text` with `[mcp_servers.NAME]` set to `launch` (the table added at the end if missing). */
export function writeTomlServer(text: string, name: string, launch: Launch): string {
  const lines = text.split("\n");
  const b = findBlock(lines, name);
  const command = `command = ${tomlString(launch.command)}`;
  const args = `args = ${tomlArray(launch.args)}`;
  if (!b) {
    const body = text.replace(/\n*$/, "");
    return `${body}${body ? "\n\n" : ""}[mcp_servers.${name}]\n${command}\n${args}\n`;
  }
  // Replace args first (it comes after the header, so command's line numbers stay right).
  const set = (key: string, line: string) => {
    const at = keyLines(lines, b, key);
    if (at) {
      lines.splice(at[0], at[1] - at[0], line);
      b.end -= at[1] - at[0] - 1;
    } else {
      lines.splice(b.start + 1, 0, line);
      b.end++;
    }
  };
  set("args", args);
  set("command", command);
  // Keep command before args when both were added.
  const ci = lines.indexOf(command, b.start);
  const ai = lines.indexOf(args, b.start);
  if (ai >= 0 && ci > ai) {
    lines[ai] = command;
    lines[ci] = args;
  }
  return lines.join("\n");
}
