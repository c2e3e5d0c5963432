import { PyroError } from "../core/errors.js";
import { isValidId } from "../core/ids.js";
import type { WorkspacePort } from "./port.js";

/**
 * Workspace names and labels (discovery). A name is unique among one tenant's workspaces in
 * a state dir (local callers: the untenanted ones; see WorkspaceManager.resolveId) and may
 * stand wherever a workspace id is taken; a label is a KEY=VALUE pair to filter
 * `workspace list` by. Both are checked here, the same way for every face.
 */

/** Letters, digits, `.`, `_`, `-`; starts with a letter or digit; never `ws_…` (ids). */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/;
const MAX_LABELS = 32;
const MAX_VALUE = 256;

/** `ws_…` is left to the id checks (a mistyped id gets "malformed workspace id"). */
export function looksLikeName(s: string): boolean {
  return NAME.test(s) && !s.startsWith("ws_");
}

export function checkName(name: string): string | null {
  if (name === "") return null; // `--name ""` clears it
  if (!NAME.test(name))
    throw new PyroError(
      "invalid_argument",
      `bad workspace name ${JSON.stringify(name.slice(0, 80))}`,
      "use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit",
    );
  if (name.startsWith("ws_"))
    throw new PyroError(
      "invalid_argument",
      `the name ${name} starts with ws_, which is kept for workspace ids`,
      "choose another name",
    );
  return name;
}

export function checkLabels(labels: Record<string, string>): Record<string, string> {
  const keys = Object.keys(labels);
  if (keys.length > MAX_LABELS)
    throw new PyroError("invalid_argument", `${keys.length} labels given; at most ${MAX_LABELS}`);
  for (const k of keys) {
    if (!LABEL_KEY.test(k))
      throw new PyroError(
        "invalid_argument",
        `bad label key ${JSON.stringify(k.slice(0, 80))}`,
        "use 1-63 letters, digits, '.', '_', '/' or '-', starting with a letter or digit (KEY=VALUE)",
      );
    const v = labels[k]!;
    if (v.length > MAX_VALUE || /[\0-\x1f]/.test(v))
      throw new PyroError(
        "invalid_argument",
        `bad value for label ${k}`,
        `use at most ${MAX_VALUE} characters, no control characters`,
      );
  }
  return { ...labels };
}

/** Whether `labels` has every pair of `want`. */
export function labelsMatch(labels: Record<string, string>, want: Record<string, string>): boolean {
  return Object.entries(want).every(([k, v]) => labels[k] === v);
}

/** The records a name is looked up in (the manager's store, through the port). */
type NamedRecords = Pick<WorkspacePort["records"], "entries">;

/**
 * A workspace's id from its id or its name: what every workspace reference input accepts
 * (`invoke` calls WorkspaceManager.resolveId for each one, operations/refs.ts). Names belong to a tenant
 * (`CallContext.tenant`, the remote token of `pyro mcp serve --http`; undefined for local
 * callers, whose names are those of untenanted workspaces): a name is looked up among that
 * tenant's workspaces only, so another tenant's name is "no workspace named …" exactly like
 * an unknown one. `tenant` is a required parameter so no caller can forget it. Anything
 * that is not a name comes back unchanged, for checkId to refuse (and ids are checked
 * against the tenant by src/remote/tenancy.ts).
 */
export async function resolveName(
  records: NamedRecords,
  idOrName: string,
  tenant: string | undefined,
): Promise<string> {
  if (isValidId("ws", idOrName) || !looksLikeName(idOrName)) return idOrName;
  const ids = await idsNamed(records, idOrName, tenant);
  if (ids.length === 1) return ids[0]!;
  if (ids.length === 0)
    throw new PyroError("not_found", `no workspace named ${JSON.stringify(idOrName)}`, [
      "list workspaces (with their names) with ",
      { op: "workspace_list" },
    ]);
  throw new PyroError(
    "invalid_argument",
    `${ids.length} workspaces are named ${JSON.stringify(idOrName)} (${ids.join(", ")})`,
    "use the workspace id",
  );
}

/** The live workspaces of one tenant's namespace (undefined: the untenanted ones) with this name. */
async function idsNamed(
  records: NamedRecords,
  name: string,
  tenant: string | undefined,
  except?: string,
): Promise<string[]> {
  const ids: string[] = [];
  for await (const e of records.entries())
    if (e.rec?.name === name && e.rec.tenant === tenant && e.id !== except && e.rec.state !== "expired")
      ids.push(e.id);
  return ids;
}

/**
 * Names are unique among one tenant's workspaces (expired tombstones aside): two tenants may
 * each have a `main`, and a taken name tells nobody about another tenant's workspaces.
 */
export async function checkNameFree(
  records: NamedRecords,
  name: string,
  tenant: string | undefined,
  self?: string,
): Promise<void> {
  const taken = await idsNamed(records, name, tenant, self);
  if (taken.length)
    throw new PyroError(
      "invalid_argument",
      `the name ${JSON.stringify(name)} is taken by workspace ${taken[0]}`,
      [
        "choose another name, or rename that one with ",
        { op: "workspace_update", args: { workspace_id: taken[0]! } },
      ],
    );
}
