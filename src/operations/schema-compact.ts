/**
 * The JSON Schemas pyro publishes in MCP tools/list, made small and portable. zod's
 * conversion is faithful but wordy, and every byte of a tools/list is context a host
 * spends before the model does anything (issue #27: 78 KB for the default profile, 60 %
 * of it outputSchemas). What this leaves out never changes what is accepted: the server
 * validates every input and result with the zod schema itself (src/operations/invoke.ts,
 * src/mcp/server.ts), so a published schema only has to say what a caller needs to know.
 *
 * - `type: ["string", "null"]` becomes `anyOf: [{type: "string"}, {type: "null"}]`: the
 *   same values, in the single-`type` form portable clients (the Inspector's `--strict`,
 *   Gemini's function declarations) accept.
 * - `{}` as a subschema (zod's loose object: `additionalProperties: {}`) is dropped; absent
 *   means the same and says nothing unchecked.
 * - The bounds of a JavaScript safe integer (what zod writes for every `.int()`) and
 *   `propertyNames: {type: "string"}` (every JSON key is one) say nothing and go.
 * - Output schemas (`for: "output"`) keep types, enums and required keys, not descriptions:
 *   a client validates structuredContent with them; the model reads the result itself.
 * - Input schemas (`for: "input"`) keep descriptions, defaults, enums and numeric ranges a
 *   model chooses within, not the length and count bounds that only catch abuse and
 *   empties (maxLength 100000, maxItems 256, minLength 1): a call past one is refused with
 *   a message naming it. A description's "Default X." sentence goes where the schema has
 *   `default`, and its "(1-16)" where it has that minimum and maximum: the keywords say it.
 */
export interface CompactOptions {
  for: "input" | "output";
  /**
   * Object levels kept in full: a property below them that is an object or a list is
   * published as just that (`{type: "object"}`), its insides left to the docs. Output
   * schemas use 1: pyro's results nest records (network_info, the seed, published ports)
   * that were most of their size.
   */
  depth?: number;
}

const SAFE_INT = Number.MAX_SAFE_INTEGER;
/** Bounds that catch abuse and empties, not choices a model makes (input schemas only). */
const LENGTH_BOUNDS = ["maxLength", "maxItems", "maxProperties", "minLength", "minItems"] as const;

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** Keywords whose value is one subschema, or a map / list of them. */
const ONE = ["items", "additionalProperties", "not", "contains", "propertyNames"];
const MAP = ["properties", "patternProperties", "$defs", "definitions"];
const LIST = ["anyOf", "oneOf", "allOf", "prefixItems"];

/** A compacted copy of `schema` (the input is never changed). */
export function compactJsonSchema(schema: Json, opts: CompactOptions, level = 0): Json {
  const out: Json = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === "$schema") continue;
    if (k === "description" && opts.for === "output") continue;
    if (opts.for === "input" && (LENGTH_BOUNDS as readonly string[]).includes(k)) continue;
    if ((k === "minimum" && v === -SAFE_INT) || (k === "maximum" && v === SAFE_INT)) continue;
    if (k === "propertyNames" && isObject(v) && Object.keys(v).length === 1 && v.type === "string") continue;
    if (ONE.includes(k) && isObject(v)) {
      if (Object.keys(v).length === 0) continue;
      out[k] = compactJsonSchema(v, opts, level + 1);
    } else if (MAP.includes(k) && isObject(v)) {
      const deep = opts.depth !== undefined && level + 1 >= opts.depth;
      out[k] = Object.fromEntries(
        Object.entries(v).map(([name, s]) => {
          if (!isObject(s)) return [name, s];
          const c = compactJsonSchema(s, opts, level + 1);
          return [name, deep ? outline(c) : c];
        }),
      );
    } else if (LIST.includes(k) && Array.isArray(v)) {
      out[k] = v.map((s) => (isObject(s) ? compactJsonSchema(s, opts, level) : s));
    } else out[k] = v;
  }
  if (opts.for === "input" && typeof out.description === "string") {
    let d = out.description;
    if ("default" in out) d = withoutDefaultSentence(d);
    // "(1-16)" where minimum and maximum say 1 and 16.
    if (typeof out.minimum === "number" && typeof out.maximum === "number")
      d = d.replace(` (${out.minimum}-${out.maximum})`, "");
    out.description = d;
  }
  return splitTypeList(out);
}

/** A description without its "Default X." sentence (unless that is all of it). */
export function withoutDefaultSentence(text: string): string {
  const kept = text
    .split(/(?<=\.)\s+/)
    .filter((sentence) => !/^Default\b[^.]*(\.\d[^.]*)*\.$/.test(sentence));
  return kept.length ? kept.join(" ") : text;
}

/**
 * `type: [A, B]` as `anyOf` branches of one type each. Keywords about values go to the
 * branch of the type they apply to (the annotation keywords stay outside).
 */
function splitTypeList(s: Json): Json {
  if (!Array.isArray(s.type)) return s;
  const types = s.type as string[];
  if (types.length === 1) return { ...s, type: types[0] };
  const outer: Json = {};
  const inner: Json = {};
  for (const [k, v] of Object.entries(s)) {
    if (k === "type") continue;
    if (["description", "title", "default", "examples"].includes(k)) outer[k] = v;
    else inner[k] = v;
  }
  // enum/const hold values of several types: they stay outside, where they apply to all.
  for (const k of ["enum", "const"])
    if (k in inner) {
      outer[k] = inner[k];
      delete inner[k];
    }
  const branch = (t: string): Json => (t === "null" ? { type: t } : { type: t, ...inner });
  return { anyOf: types.map(branch), ...outer };
}

/** An object or list schema as just its type (a union: each branch so); scalars unchanged. */
function outline(s: Json): Json {
  if (Array.isArray(s.anyOf)) {
    const seen = new Set<string>();
    const branches = (s.anyOf as Json[]).map(outline).filter((b) => {
      const k = JSON.stringify(b);
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
    return branches.length === 1 ? { ...s, anyOf: undefined, ...branches[0] } : { ...s, anyOf: branches };
  }
  if (s.type === "object" || "properties" in s) return { type: "object" };
  if (s.type === "array") return { type: "array" };
  return s;
}
