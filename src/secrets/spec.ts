import { statSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { resolve as resolvePath } from "node:path";
import { MAX_SECRET_BYTES } from "../contract/defaults.js";
import type { SecretSpec } from "../contract/secrets.js";
import { PyroError } from "../core/errors.js";
import { type HostPathContext, resolveHostPath } from "../core/host-paths.js";
import { ignore } from "../util/best-effort.js";
import { MIN_SECRET_BYTES, type SecretValue } from "./redactor.js";

/**
 * Secrets on the wire: `workspace_create` takes `secrets: [{ name, value | file_path | from_env }]`
 * (CLI `--secret NAME=VALUE`, `--secret-file NAME=PATH`, `--secret-env NAME`), and exec,
 * shell open and service start take `secret_env: ["NAME" | "VAR=NAME"]`. Values exist on the
 * host only in memory, for the call that needs them; see docs/security.md, "Secrets".
 */

/** Environment-variable-shaped: also a safe file name under /run/pyro-secrets. */
export const SECRET_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
// The wire's secret fields and their limits are the contract's (contract/secrets.ts,
// contract/defaults.ts MAX_SECRETS, MAX_SECRET_BYTES, SECRETS_DIR).

/** Secrets a server's operator offers to models by name (`pyro mcp serve --secret-env/--secret-file`). */
export interface SecretPolicy {
  /** name → where the value comes from (read when a workspace is created). */
  catalog: ReadonlyMap<string, { from_env?: string; file_path?: string }>;
  /** `--allow-secret-values`: a model may send { name, value }. */
  allowValues: boolean;
}

/** `pyro mcp serve --secret-env NAME[=VAR]` and `--secret-file NAME=PATH`, as given. */
export interface OperatorSecrets {
  secretEnv?: readonly string[];
  secretFiles?: readonly string[];
}

/** The policy of an MCP server; bad names or a missing file are startup errors. */
export function secretPolicy(o: OperatorSecrets, allowValues: boolean, cwd = process.cwd()): SecretPolicy {
  const catalog = new Map<string, { from_env?: string; file_path?: string }>();
  for (const s of secretsFromFlags({
    secretEnv: [...(o.secretEnv ?? [])],
    secretFile: [...(o.secretFiles ?? [])],
  })) {
    checkSecretName(s.name);
    if (catalog.has(s.name))
      throw new PyroError(
        "invalid_argument",
        `secret ${s.name} is configured twice`,
        "name each secret once",
      );
    const file = s.file_path !== undefined ? resolvePath(cwd, s.file_path) : undefined;
    if (file !== undefined && !statSync(file, { throwIfNoEntry: false })?.isFile())
      throw new PyroError(
        "invalid_argument",
        `--secret-file ${s.name}: ${file} is not a file`,
        "pass an existing file (read again at each workspace_create)",
      );
    catalog.set(s.name, file !== undefined ? { file_path: file } : { from_env: s.from_env! });
  }
  return { catalog, allowValues };
}

export function checkSecretName(name: string, what = "secret name"): string {
  if (!SECRET_NAME_RE.test(name))
    throw new PyroError(
      "invalid_argument",
      `${what} ${JSON.stringify(name.slice(0, 80))} is not valid`,
      "use letters, digits and _ (not starting with a digit, at most 64): it becomes /run/pyro-secrets/NAME and an environment variable name",
    );
  return name;
}

/** `NAME=REST` as given to --secret / --secret-file / --secret-env (operator faces). */
export function splitAssignment(flag: string, given: string): [string, string] {
  const i = given.indexOf("=");
  if (i <= 0)
    throw new PyroError(
      "invalid_argument",
      `${flag} needs NAME=${flag === "--secret-file" ? "PATH" : "VALUE"} (got ${i === 0 ? "an empty name" : "no ="})`,
      `e.g. ${flag} TOKEN=${flag === "--secret-file" ? "./token.txt" : "..."}`,
    );
  return [given.slice(0, i), given.slice(i + 1)];
}

/** The CLI's three create flags as the wire's `secrets`. */
export function secretsFromFlags(opts: {
  secret?: string[];
  secretFile?: string[];
  secretEnv?: string[];
}): SecretSpec[] {
  const out: SecretSpec[] = [];
  for (const s of opts.secret ?? []) {
    const [name, value] = splitAssignment("--secret", s);
    out.push({ name, value });
  }
  for (const s of opts.secretFile ?? []) {
    const [name, file_path] = splitAssignment("--secret-file", s);
    out.push({ name, file_path });
  }
  for (const s of opts.secretEnv ?? []) {
    // NAME (the variable NAME) or NAME=VAR.
    const i = s.indexOf("=");
    out.push(i > 0 ? { name: s.slice(0, i), from_env: s.slice(i + 1) } : { name: s, from_env: s });
  }
  return out;
}

export interface ResolveContext extends HostPathContext {
  /** Set by the MCP server: the caller is a model. Undefined: the operator (CLI, SDK). */
  secretPolicy?: SecretPolicy;
  env?: NodeJS.ProcessEnv;
}

/**
 * Where a value came from, kept in the record (never the value): a file or variable can be
 * read again to re-materialise the secrets in a new sandbox; a literal value cannot.
 */
export interface SecretSource {
  kind: "value" | "file_path" | "from_env";
  /** The absolute file path or the variable name; null for a literal value. */
  ref: string | null;
}
export interface ResolvedSecret extends SecretValue {
  source: SecretSource;
}

/** The values of `specs`, read now and held only in memory. Errors name the secret, never a value. */
export async function resolveSecrets(
  specs: readonly SecretSpec[],
  ctx: ResolveContext,
): Promise<ResolvedSecret[]> {
  const seen = new Set<string>();
  const out: ResolvedSecret[] = [];
  const env = ctx.env ?? process.env;
  for (const s of specs) {
    const name = checkSecretName(s.name);
    if (seen.has(name))
      throw new PyroError("invalid_argument", `secret ${name} is given twice`, "give each name once");
    seen.add(name);
    const sources = (["value", "file_path", "from_env"] as const).filter((k) => s[k] !== undefined);
    let spec: { value?: string; file_path?: string; from_env?: string } = s;
    if (ctx.secretPolicy) {
      // A model names secrets; the operator decides where their values come from.
      const p = ctx.secretPolicy;
      if (s.file_path !== undefined || s.from_env !== undefined)
        throw new PyroError(
          "invalid_argument",
          `secret ${name}: a model may not name a host file or environment variable`,
          "ask the operator to offer it with `pyro mcp serve --secret-env NAME` or `--secret-file NAME=PATH`",
        );
      if (s.value !== undefined) {
        if (!p.allowValues)
          throw new PyroError(
            "invalid_argument",
            `secret ${name}: this server does not accept secret values from a model, only names`,
            p.catalog.size
              ? `use one of the configured names: ${[...p.catalog.keys()].join(", ")}`
              : "the operator can offer secrets with `pyro mcp serve --secret-env NAME`, or allow values with `--allow-secret-values`",
          );
      } else {
        const c = p.catalog.get(name);
        if (!c)
          throw new PyroError(
            "invalid_argument",
            `secret ${name} is not configured on this server`,
            p.catalog.size
              ? `configured secrets: ${[...p.catalog.keys()].join(", ")}`
              : "the operator can offer one with `pyro mcp serve --secret-env NAME` or `--secret-file NAME=PATH`",
          );
        spec = c;
      }
    } else if (sources.length !== 1) {
      throw new PyroError(
        "invalid_argument",
        `secret ${name} needs exactly one of value, file_path, from_env (got ${sources.length ? sources.join(" and ") : "none"})`,
        "CLI: --secret NAME=VALUE, --secret-file NAME=PATH or --secret-env NAME",
      );
    }
    const read = await readSource(name, spec, ctx, env);
    out.push({ name, ...read });
  }
  return out;
}

/** Reads a recorded source again (re-materialising in a later process); literal values cannot be. */
export async function rereadSource(
  name: string,
  source: SecretSource,
  env: NodeJS.ProcessEnv,
): Promise<Buffer> {
  if (source.kind === "value" || source.ref === null)
    throw new PyroError(
      "invalid_state",
      `secret ${name} was given as a literal value, which pyro does not keep; it cannot be written into the new sandbox`,
      "create the workspace again with its secrets, or give secrets with --secret-file / --secret-env so they can be re-read",
    );
  const spec = source.kind === "file_path" ? { file_path: source.ref } : { from_env: source.ref };
  return (await readSource(name, spec, {}, env)).value;
}

async function readSource(
  name: string,
  s: { value?: string; file_path?: string; from_env?: string },
  ctx: ResolveContext,
  env: NodeJS.ProcessEnv,
): Promise<{ value: Buffer; source: SecretSource }> {
  let value: Buffer;
  let source: SecretSource;
  if (s.value !== undefined) {
    value = Buffer.from(s.value, "utf8");
    source = { kind: "value", ref: null };
  } else if (s.file_path !== undefined) {
    // The operator's own file (CLI/SDK, or the server's --secret-file): full access.
    const path = ctx.secretPolicy ? s.file_path : await resolveHostPath(s.file_path, "secret file", ctx);
    source = { kind: "file_path", ref: path };
    const st = await stat(path).catch(
      ignore("secret file cannot be stat-ed: the invalid_argument below names it"),
    );
    if (!st?.isFile())
      throw new PyroError(
        "invalid_argument",
        `secret ${name}: ${path} is not a readable file`,
        "pass a regular file",
      );
    if (st.size > MAX_SECRET_BYTES) throw tooLarge(name, st.size);
    value = await readFile(path);
  } else {
    const v = env[s.from_env!];
    if (v === undefined)
      throw new PyroError(
        "invalid_argument",
        `secret ${name}: the environment variable ${s.from_env} is not set`,
        `export ${s.from_env}=... before starting pyro`,
      );
    value = Buffer.from(v, "utf8");
    source = { kind: "from_env", ref: s.from_env! };
  }
  if (value.length > MAX_SECRET_BYTES) throw tooLarge(name, value.length);
  if (value.length < MIN_SECRET_BYTES)
    throw new PyroError(
      "invalid_argument",
      `secret ${name} is ${value.length} bytes; at least ${MIN_SECRET_BYTES} are needed`,
      "a shorter value could not be redacted without mangling ordinary output",
    );
  return { value, source };
}

function tooLarge(name: string, n: number): PyroError {
  return new PyroError(
    "invalid_argument",
    `secret ${name} is ${n} bytes; at most ${MAX_SECRET_BYTES}`,
    "secrets are tokens and keys; put larger files in the workspace with sync push",
  );
}

/** `secret_env` entries as [variable, secret] pairs, checked against the workspace's secrets. */
export function parseSecretEnv(
  entries: readonly string[],
  known: readonly string[],
  id: string,
): [string, string][] {
  const out: [string, string][] = [];
  for (const e of entries) {
    const i = e.indexOf("=");
    const [v, n] = i >= 0 ? [e.slice(0, i), e.slice(i + 1)] : [e, e];
    checkSecretName(v, "secret_env variable");
    checkSecretName(n, "secret_env secret");
    if (!known.includes(n))
      throw new PyroError(
        "invalid_argument",
        `workspace ${id} has no secret ${n}`,
        known.length
          ? `its secrets: ${known.join(", ")}`
          : "give secrets when creating the workspace (secrets / --secret)",
      );
    out.push([v, n]);
  }
  return out;
}
