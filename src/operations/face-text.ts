import * as z from "zod";
import type { Face } from "./hints.js";
import { OPERATIONS, type Operation } from "./table.js";

/**
 * The operation table's prose (descriptions of operations and their fields) is written once,
 * in wire terms, for a model: `prefer vm_run`, `unless network=true`, `page it with
 * output_read`. A model reads it as is; `pyro run --help` must say `pyro run`, `--network`
 * and `pyro output read`, and the SDK `pyro.runInVm()` and `network: true`. As the hints do
 * (hints.ts), the text is rendered per face at the moment it is shown, from the one table, so
 * no face's wording can drift from the others.
 *
 * What is rendered: operation names (and `workspace_*`-style families), and input fields, bare
 * or as `field=value`. Result fields stay as they are: `--json`, the SDK and MCP all return
 * the wire objects. A positional argument stays too: commander shows it by that name.
 */

const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
const kebab = (s: string) => s.replace(/_/g, "-");

/**
 * A snake_case identifier (or a `family_*`), optionally `=value` (a word, a number, a
 * "string"); a word without `_` counts only with a value (`network=true`).
 */
const IDENT = /\b([a-z][a-z0-9]*(?:_(?:[a-z0-9]+|\*))*)(?:=("[^"]*"|[\w+:-]+(?:\.[\w+:-]+)*))?/g;

const ops = () => OPERATIONS as unknown as Operation[];

function unwrap(t: z.ZodType): z.ZodType {
  let cur = t;
  while (cur instanceof z.ZodDefault || cur instanceof z.ZodOptional) cur = cur.unwrap() as z.ZodType;
  return cur;
}

/** The CLI flag of an input field: a collection takes one item per flag (`labels` → `--label`). */
function cliFlag(field: string, t: z.ZodType | undefined): string {
  const b = t && unwrap(t);
  const name = b instanceof z.ZodRecord || b instanceof z.ZodArray ? field.replace(/s$/, "") : field;
  return `--${kebab(name)}`;
}

interface FieldRef {
  /** the operation whose input has the field */
  op: Operation;
  type: z.ZodType;
}

/** The input field a word names: this operation's first, then any operation's. */
function fieldOf(word: string, here: Operation | undefined, assigned: boolean): FieldRef | undefined {
  const lookup = (o: Operation): FieldRef | undefined => {
    const shape = o.input.shape as Record<string, z.ZodType>;
    for (const [f, t] of Object.entries(shape))
      if (f === word || cliFlag(f, t) === `--${kebab(word)}`) return { op: o, type: t };
    return undefined;
  };
  if (here) {
    const own = lookup(here);
    if (own) return own;
    // A result field of this operation is what the caller gets back, the same on every face
    // (`field=value` is a setting, so an input field of some operation).
    if (!assigned && word in here.result.shape) return undefined;
  }
  for (const o of ops()) {
    const f = lookup(o);
    if (f) return f;
  }
  return undefined;
}

function renderOp(o: Operation, face: Face): string {
  return face === "cli" ? `\`pyro ${o.cli.path.join(" ")}\`` : `\`pyro.${o.sdk}()\``;
}

function renderWord(word: string, value: string | undefined, face: Face, here: Operation | undefined) {
  const whole = value === undefined ? word : `${word}=${value}`;
  if (value === undefined && !word.includes("_")) return whole;
  if (word.endsWith("_*")) {
    const family = ops().filter((o) => o.name.startsWith(word.slice(0, -1)));
    if (family.length === 0) return whole;
    if (face === "sdk") return `the ${word.slice(0, -2).replace(/_/g, " ")} methods`;
    // The words all the family's commands start with: `workspace_file_*` → `pyro workspace file …`.
    const common: string[] = [];
    for (
      let i = 0;
      family.every((o) => o.cli.path[i] !== undefined && o.cli.path[i] === family[0]!.cli.path[i]);
      i++
    )
      common.push(family[0]!.cli.path[i]!);
    return `\`pyro ${[...common, "…"].join(" ")}\``;
  }
  const o = ops().find((x) => x.name === word);
  if (o && value === undefined) return renderOp(o, face);
  const field = fieldOf(word, here, value !== undefined);
  if (!field) return whole;
  const positional = field.op.cli.positional?.includes(word) || field.op.cli.rest === word;
  if (face === "sdk") return value === undefined ? camel(word) : `${camel(word)}: ${value}`;
  if (positional) return whole;
  const flag = cliFlag(word, field.type);
  if (value === undefined) return flag;
  if (value === "true" && unwrap(field.type) instanceof z.ZodBoolean) return flag;
  return `${flag} ${value}`;
}

/**
 * `text` (written in wire terms) in the terms of `face`; `here` is the operation it describes,
 * whose own fields win over another operation's of the same name.
 */
export function faceText(text: string, face: Face, here?: Operation): string {
  if (face === "mcp") return text;
  const out = text.replace(IDENT, (_m, word: string, value: string | undefined) =>
    renderWord(word, value, face, here),
  );
  // A model calls tools; a person at a shell runs commands.
  return face === "cli"
    ? out.replace(/\bthe default tool\b/g, "the default command").replace(/\bfile tools\b/g, "file commands")
    : out;
}
