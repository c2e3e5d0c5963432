import { PyroError } from "../core/errors.js";
import { MODE_DEFS, type ModeName, parseMode } from "./modes.js";
import { type ProfileName, parseProfile, profileOmits, profileTools, textForFields } from "./profiles.js";
import { getOperation, type Operation } from "./table.js";

/**
 * What one MCP server serves: a profile's tools (src/operations/profiles.ts) or a mode's
 * (src/operations/modes.ts), each with the input fields it offers and its description
 * before the server adds its own facts (export area, project).
 */
export interface ServedTool {
  op: Operation;
  description: string;
  omitFields?: readonly string[];
  onlyFields?: readonly string[];
}

export interface ToolSet {
  /** `profile workspace-core` or `mode repro-fix`, for logs. */
  label: string;
  tools: ServedTool[];
  /** A mode's own server instructions (a profile's come from the server's general text). */
  instructions?: string;
}

export interface ToolSetSelection {
  profile?: ProfileName | string;
  /** A mode replaces the profile: its tools, fields and descriptions. */
  mode?: ModeName | string;
  /** The operator configured secrets a model may name: secrets fields stay in every profile. */
  secretsConfigured?: boolean;
}

/** The tools a server with this selection serves (a bad name throws invalid_argument). */
export function toolSet(sel: ToolSetSelection = {}): ToolSet {
  if (sel.mode !== undefined) {
    const mode = parseMode(sel.mode);
    const def = MODE_DEFS[mode];
    return {
      label: `mode ${mode}`,
      instructions: def.instructions,
      tools: Object.entries(def.tools).map(([name, t]) => ({
        op: getOperation(name),
        description: t.description,
        onlyFields: t.fields,
      })),
    };
  }
  const profile = parseProfile(sel.profile);
  return {
    label: `profile ${profile}`,
    tools: profileTools(profile).map((name) => {
      const op = getOperation(name);
      const omit = profileOmits(profile, name, { secretsConfigured: sel.secretsConfigured === true }).filter(
        (f) => f in op.input.shape,
      );
      if (omit.length === 0) return { op, description: op.description };
      // The description no longer points at the fields this profile leaves out.
      return { op, description: textForFields(op.description, omit), omitFields: omit };
    }),
  };
}

/**
 * `--profile` and `--mode` checked at startup: a mode replaces the profile, so asking for
 * both is an error rather than one of them silently ignored.
 */
export function parseSelection(sel: {
  profile?: string | undefined;
  mode?: string | undefined;
}): { profile: ProfileName } | { mode: ModeName } {
  if (sel.mode !== undefined) {
    if (sel.profile !== undefined)
      throw new PyroError(
        "invalid_argument",
        `--mode ${sel.mode} and --profile ${sel.profile} were both given; a mode is its own list of tools`,
        "give one: --mode for a job's tools, or --profile for a general set",
      );
    return { mode: parseMode(sel.mode) };
  }
  return { profile: parseProfile(sel.profile) };
}
