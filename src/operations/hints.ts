import * as z from "zod";
import { type Hint, type HintPart, type PyroError, toPyroError } from "../core/errors.js";
import { OPERATIONS, type Operation } from "./table.js";

/**
 * Renders structured hints (see HintPart in errors.ts) in the language of the face that
 * reports the error. The runtime names operations by wire name; only here do they become a
 * CLI command, an SDK method or an MCP tool.
 */
export type Face = "cli" | "sdk" | "mcp";

const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
const kebab = (s: string) => s.replace(/_/g, "-");

function shellWord(v: string | number | boolean): string {
  const s = String(v);
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function findOp(name: string): Operation | undefined {
  return (OPERATIONS as unknown as Operation[]).find((o) => o.name === name);
}

function isOptional(t: z.ZodType | undefined): boolean {
  return t instanceof z.ZodDefault || t instanceof z.ZodOptional;
}

/** `pyro workspace delete ws_…` */
function cliCall(op: Operation, args: Record<string, string | number | boolean>): string {
  const words = ["pyro", ...op.cli.path];
  const positional = op.cli.positional ?? [];
  for (const p of positional) if (args[p] !== undefined) words.push(shellWord(args[p]));
  let rest: string | undefined;
  for (const [k, v] of Object.entries(args)) {
    if (positional.includes(k)) continue;
    if (k === op.cli.rest) rest = String(v);
    else if (v === true) words.push(`--${kebab(k)}`);
    else if (v !== false) words.push(`--${kebab(k)}`, shellWord(v));
  }
  if (rest !== undefined) words.push("--", rest);
  return words.join(" ");
}

/**
 * `pyro.deleteWorkspace("ws_…")`. SDK methods take the operation's required positional
 * fields as arguments, in CLI order, and everything else as a trailing camelCase object.
 */
function sdkCall(op: Operation, args: Record<string, string | number | boolean>): string {
  const shape = op.input.shape as Record<string, z.ZodType>;
  const positional = (op.cli.positional ?? []).filter((p) => !isOptional(shape[p]));
  const out: string[] = positional.filter((p) => args[p] !== undefined).map((p) => JSON.stringify(args[p]));
  const rest = Object.entries(args).filter(([k]) => !positional.includes(k));
  if (rest.length) out.push(`{ ${rest.map(([k, v]) => `${camel(k)}: ${JSON.stringify(v)}`).join(", ")} }`);
  return `pyro.${op.sdk}(${out.join(", ")})`;
}

/**
 * `tools`: for MCP, the tools this server serves (its profile). An operation outside it is
 * worded as the operator's command, as for one that is no tool at all.
 */
function renderPart(p: HintPart, face: Face, tools?: ReadonlySet<string>): string {
  if (typeof p === "string") return p;
  if ("unisolated" in p)
    return face === "mcp" ? "" : p.unisolated.map((q) => renderPart(q, face, tools)).join("");
  if ("option" in p) {
    if (face === "cli")
      return p.value === true ? `\`--${kebab(p.option)}\`` : `\`--${kebab(p.option)} ${shellWord(p.value)}\``;
    if (face === "sdk") return `\`${camel(p.option)}: ${JSON.stringify(p.value)}\``;
    return `\`${p.option}: ${JSON.stringify(p.value)}\``;
  }
  const op = findOp(p.op);
  const args = p.args ?? {};
  if (!op) return `\`${p.op}\``;
  if (face === "cli") return `\`${cliCall(op, args)}\``;
  if (face === "sdk") return `\`${sdkCall(op, args)}\``;
  // A model can only call tools; an operation that is not one is host administration,
  // which the operator does on the host.
  if (!op.mcp || (tools && !tools.has(op.name)))
    return `\`${cliCall(op, args)}\` (the operator runs this on the host)`;
  return Object.keys(args).length
    ? `the \`${op.name}\` tool with ${JSON.stringify(args)}`
    : `the \`${op.name}\` tool`;
}

export function renderHint(parts: Hint, face: Face, tools?: ReadonlySet<string>): string {
  return parts
    .map((p) => renderPart(p, face, tools))
    .join("")
    .replace(/\s+([,;.])/g, "$1")
    .replace(/[,;]\s*$/, "")
    .trim();
}

/** Any thrown value as a PyroError whose hint speaks the face's language. */
export function errorForFace(e: unknown, face: Face, tools?: ReadonlySet<string>): PyroError {
  const err = toPyroError(e);
  if (!err.hintParts) return err;
  const hint = renderHint(err.hintParts, face, tools);
  return hint === err.hint ? err : err.withHint(hint || undefined);
}
