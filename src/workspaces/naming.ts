import { PyroError } from "../core/errors.js";

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
