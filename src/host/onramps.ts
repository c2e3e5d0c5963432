import { spawn } from "node:child_process";
import { accessSync, constants, existsSync, realpathSync } from "node:fs";
import { chmod, copyFile, mkdir, readFile, realpath, rename, stat, writeFile } from "node:fs/promises";
import { delimiter, dirname, isAbsolute, join } from "node:path";
import { PyroError } from "../core/errors.js";
import { VERSION } from "../core/version.js";
import { type ModeName, parseMode } from "../operations/modes.js";
import { DEFAULT_PROFILE, type ProfileName, parseProfile } from "../operations/profiles.js";
import { nearest } from "../operations/suggest.js";
import { noted } from "../util/best-effort.js";
import { packageRoot } from "../util/static-binaries.js";
import {
  CLIENT_SPECS,
  CLIENTS,
  type Client,
  type ClientName,
  type Launch,
  type Scope,
  SERVER_NAME,
  type Where,
} from "./clients.js";
import { readTomlServer, writeTomlServer } from "./toml.js";

/**
 * `pyro host connect|print-config|doctor|repair`: puts pyro's MCP server into a client's own
 * config file, in that client's format, without disturbing anything else in it.
 * - Idempotent: when the file already says what it would write, it is not touched.
 * - A file that changes is first copied to `<file>.pyro-backup-<time>`.
 * - Other servers and settings stay as they were; a file pyro cannot parse (JSON with
 *   comments, say) is refused with the entry to add by hand, never overwritten.
 */

export function parseClient(name: string): Client {
  if ((CLIENTS as readonly string[]).includes(name)) return CLIENT_SPECS[name as ClientName];
  const near = nearest(name, [...CLIENTS]);
  throw new PyroError(
    "invalid_argument",
    `unknown MCP client ${JSON.stringify(name)}${near ? `; did you mean \`${near}\`?` : ""}`,
    `clients are: ${CLIENTS.join(", ")}`,
  );
}

export function parseScope(s: string | undefined, c: Client): Scope {
  if (s === undefined) return c.defaultScope;
  if (s === "user" || s === "project") return s;
  throw new PyroError("invalid_argument", `unknown scope ${JSON.stringify(s)}`, "scopes are: user, project");
}

/**
 * How clients should start this pyro: this Node binary and this package's CLI by absolute
 * path (works whatever PATH the client gives its servers), or through npx when asked
 * (`--npx`). pyro-mcp is not on the npm registry, so `npx -y pyro-mcp` would fail (E404):
 * npx is given this installation's package dir instead (`--package=DIR pyro`). Once the
 * package is published, this becomes `npx -y pyro-mcp`, which works on any machine.
 */
export function pyroLauncher(opts: { npx?: boolean } = {}): Launch {
  const root = packageRoot();
  if (opts.npx) {
    if (!root)
      throw new PyroError(
        "invalid_state",
        "cannot find this pyro's package dir to hand to npx",
        "run `pyro host connect` from an installed pyro, or leave out --npx to point at this pyro by path",
      );
    return { command: "npx", args: ["-y", `--package=${realpathSync(root)}`, "pyro"] };
  }
  const main = root ? join(root, "dist", "cli", "main.js") : undefined;
  if (!main || !existsSync(main))
    throw new PyroError(
      "invalid_state",
      "cannot find this pyro's dist/cli/main.js to point the client at",
      "build pyro first (npm run build)",
    );
  return { command: process.execPath, args: [realpathSync(main)] };
}

/** The full server launch for a profile, or a mode (`{ mode }`: a job's tools, pyro-mcp 4.4). */
export function serverLaunch(
  base: Launch,
  serves: ProfileName | { mode: ModeName },
  extra: string[] = [],
): Launch {
  const flag = typeof serves === "string" ? ["--profile", serves] : ["--mode", serves.mode];
  return { command: base.command, args: [...base.args, "mcp", "serve", ...flag, ...extra] };
}

export interface ConfigFile {
  client: ClientName;
  scope: Scope;
  path: string;
  format: "json" | "toml";
}

export interface ConnectResult extends ConfigFile {
  changed: boolean;
  created: boolean;
  backup: string | null;
  command: string;
  args: string[];
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new PyroError("invalid_state", `cannot read ${path}: ${(e as Error).message}`);
  }
}

function parseJsonConfig(path: string, text: string, snippet: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = text.trim() === "" ? {} : JSON.parse(text);
  } catch (e) {
    throw new PyroError(
      "invalid_state",
      `${path} is not plain JSON (${(e as Error).message}); pyro will not rewrite it and lose what it cannot read`,
      `add this by hand: ${snippet}`,
    );
  }
  if (!v || typeof v !== "object" || Array.isArray(v))
    throw new PyroError(
      "invalid_state",
      `${path} does not hold a JSON object`,
      `add this by hand: ${snippet}`,
    );
  return v as Record<string, unknown>;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** What `print-config` shows: the fragment to merge, in the client's format. */
export function renderFragment(c: Client, launch: Launch): string {
  if (c.format === "toml") return writeTomlServer("", SERVER_NAME, launch);
  return `${JSON.stringify({ ...(c.fresh ?? {}), [c.key]: { [SERVER_NAME]: c.entry(launch) } }, null, 2)}\n`;
}

/** The config text with pyro's entry set to `launch`; unchanged text when it already is. */
export function mergedConfig(c: Client, path: string, existing: string | undefined, launch: Launch): string {
  if (c.format === "toml") {
    const text = existing ?? "";
    const cur = readTomlServer(text, SERVER_NAME);
    if (cur && sameJson(cur, launch)) return text;
    return writeTomlServer(text, SERVER_NAME, launch);
  }
  const snippet = JSON.stringify({ [c.key]: { [SERVER_NAME]: c.entry(launch) } });
  const doc = existing === undefined ? { ...(c.fresh ?? {}) } : parseJsonConfig(path, existing, snippet);
  const servers = doc[c.key] ?? {};
  if (typeof servers !== "object" || Array.isArray(servers) || servers === null)
    throw new PyroError(
      "invalid_state",
      `${path}: "${c.key}" is not an object`,
      `fix that key by hand, then run this again; the entry is ${snippet}`,
    );
  const entry = c.entry(launch);
  if (existing !== undefined && sameJson((servers as Record<string, unknown>)[SERVER_NAME], entry))
    return existing;
  doc[c.key] = { ...(servers as Record<string, unknown>), [SERVER_NAME]: entry };
  const indent = existing?.match(/^[{[]\n([ \t]+)/)?.[1] ?? 2;
  return `${JSON.stringify(doc, null, indent)}\n`;
}

/**
 * Writes `text` to `path` atomically, keeping its mode, after copying the old file aside. A
 * symlinked config (dotfiles kept in a repository) is written where the link points, so the
 * link stays a link. A new file gets `newMode`: user-scope files hold the client's own
 * settings and may hold secrets, so they are created private.
 */
async function writeWithBackup(
  path: string,
  text: string,
  existed: boolean,
  newMode: number,
): Promise<string | null> {
  const target = existed ? await realpath(path) : path;
  await mkdir(dirname(target), { recursive: true });
  let backup: string | null = null;
  let mode = newMode;
  if (existed) {
    backup = `${target}.pyro-backup-${new Date().toISOString().replace(/[:.]/g, "-")}`;
    await copyFile(target, backup);
    mode = (await stat(target)).mode & 0o777;
  }
  const tmp = `${target}.pyro-tmp-${process.pid}`;
  await writeFile(tmp, text, { mode });
  await chmod(tmp, mode);
  await rename(tmp, target);
  return backup;
}

export async function connect(
  client: Client,
  scope: Scope,
  launch: Launch,
  where: Where,
  opts: { dryRun?: boolean } = {},
): Promise<ConnectResult> {
  const path = client.file(scope, where);
  const existing = await readText(path);
  const next = mergedConfig(client, path, existing, launch);
  const changed = next !== existing;
  const newMode = scope === "user" ? 0o600 : 0o644;
  const backup =
    changed && !opts.dryRun ? await writeWithBackup(path, next, existing !== undefined, newMode) : null;
  return {
    client: client.name,
    scope,
    path,
    format: client.format,
    changed,
    created: existing === undefined,
    backup,
    command: launch.command,
    args: launch.args,
  };
}

/* ---------------- doctor and repair ---------------- */

export type EntryStatus = "ok" | "stale" | "broken";

export interface DoctorEntry extends ConfigFile {
  /** The client's own command is on PATH (claude, codex, cursor, code, opencode). */
  client_installed: boolean;
  configured: boolean;
  status: EntryStatus | "not_configured";
  detail: string;
  command: string | null;
  args: string[] | null;
  profile: string | null;
  /** The entry's `--mode` (null: it serves a profile). */
  mode: string | null;
}

/** The entry pyro would read from a config file: undefined = none, null = unreadable. */
async function readEntry(
  c: Client,
  path: string,
): Promise<{ launch: Launch | null | undefined; text?: string }> {
  const text = await readText(path);
  if (text === undefined) return { launch: undefined };
  if (c.format === "toml") return { launch: readTomlServer(text, SERVER_NAME), text };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { launch: text.includes(`"${SERVER_NAME}"`) ? null : undefined, text };
  }
  const servers = (doc as Record<string, unknown> | null)?.[c.key] as Record<string, unknown> | undefined;
  const entry = servers && typeof servers === "object" ? servers[SERVER_NAME] : undefined;
  if (entry === undefined) return { launch: undefined, text };
  return { launch: c.launch(entry) ?? null, text };
}

function onPath(cmd: string, env: NodeJS.ProcessEnv): string | undefined {
  if (isAbsolute(cmd)) return cmd;
  for (const d of (env.PATH ?? "").split(delimiter)) {
    const p = join(d, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch (e) {
      noted("not an executable in this PATH entry: try the next", e);
    }
  }
  return undefined;
}

/** `command [args before "mcp"] --version`: the pyro the entry starts, asked its version. */
function askVersion(l: Launch, env: NodeJS.ProcessEnv): Promise<{ ok: boolean; out: string }> {
  const cut = l.args.indexOf("mcp");
  const args = [...(cut >= 0 ? l.args.slice(0, cut) : l.args), "--version"];
  return new Promise((res) => {
    const child = spawn(l.command, args, { stdio: ["ignore", "pipe", "pipe"], env });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.stderr.on("data", (d) => {
      out += d;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      res({ ok: false, out: e.message });
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      res({ ok: code === 0, out: out.trim() });
    });
  });
}

export function profileOf(l: Launch): string | null {
  const i = l.args.indexOf("--profile");
  return i >= 0 ? (l.args[i + 1] ?? null) : null;
}

export function modeOf(l: Launch): string | null {
  const i = l.args.indexOf("--mode");
  return i >= 0 ? (l.args[i + 1] ?? null) : null;
}

/** Whether an entry starts a working pyro: the program exists, answers --version, serves a valid profile. */
export async function checkLaunch(
  l: Launch,
  env: NodeJS.ProcessEnv,
  self: Launch,
): Promise<{ status: EntryStatus; detail: string }> {
  if (!l.args.includes("mcp") || l.args[l.args.indexOf("mcp") + 1] !== "serve")
    return { status: "broken", detail: "its arguments do not run `mcp serve`" };
  const profile = profileOf(l);
  const mode = modeOf(l);
  try {
    if (profile !== null) parseProfile(profile);
    if (mode !== null) parseMode(mode);
  } catch (e) {
    return { status: "broken", detail: (e as Error).message };
  }
  if (l.command === "npx") {
    if (!onPath("npx", env)) return { status: "broken", detail: "npx is not on this PATH" };
    const pkg = l.args.find((a) => a.startsWith("--package="))?.slice("--package=".length);
    // Until pyro-mcp is published, the registry has no such package (an older --npx wrote this).
    if (pkg === undefined && l.args.includes("pyro-mcp"))
      return {
        status: "broken",
        detail:
          "`npx -y pyro-mcp` fails: pyro-mcp is not on the npm registry (yet); `pyro host repair` points it at this pyro",
      };
    if (pkg !== undefined && isAbsolute(pkg) && !existsSync(pkg))
      return { status: "stale", detail: `npx is given ${pkg}, which does not exist (pyro moved?)` };
    return {
      status: "ok",
      detail: `starts pyro with npx from ${pkg ?? "the registry"} (not run here: npx may install)`,
    };
  }
  const bin = onPath(l.command, env);
  if (!bin || !existsSync(bin)) return { status: "stale", detail: `${l.command} does not exist` };
  const script = l.args[0]?.endsWith(".js") ? l.args[0] : undefined;
  if (script && !existsSync(script))
    return { status: "stale", detail: `${script} does not exist (pyro moved?)` };
  const v = await askVersion(l, env);
  if (!v.ok)
    return {
      status: "broken",
      detail: `${[l.command, ...l.args.slice(0, 1)].join(" ")} --version failed: ${v.out.slice(0, 200)}`,
    };
  if (v.out !== VERSION) return { status: "stale", detail: `starts pyro ${v.out}; this is pyro ${VERSION}` };
  const isSelf = l.command === self.command && self.args.every((a, i) => l.args[i] === a);
  return {
    status: "ok",
    detail: isSelf ? `starts this pyro (${VERSION})` : `starts pyro ${VERSION} at ${script ?? bin}`,
  };
}

/**
 * Every client's pyro entries, checked. With `want.mode` (`pyro host doctor --mode`), a
 * working entry that serves anything else is `stale`: the client was connected for
 * another job.
 */
export async function doctor(
  where: Where,
  self: Launch,
  clients: readonly ClientName[] = CLIENTS,
  want: { mode?: ModeName } = {},
): Promise<DoctorEntry[]> {
  const out: DoctorEntry[] = [];
  for (const name of clients) {
    const c = CLIENT_SPECS[name];
    const installed = onPath(c.bin, where.env) !== undefined;
    for (const scope of ["user", "project"] as const) {
      const path = c.file(scope, where);
      // In the home directory, a client's project file can be its user file.
      if (out.some((e) => e.client === name && e.path === path)) continue;
      const base = { client: name, scope, path, format: c.format, client_installed: installed };
      const { launch } = await readEntry(c, path);
      if (launch === undefined) {
        out.push({
          ...base,
          configured: false,
          status: "not_configured",
          detail: existsSync(path) ? "no pyro entry" : "no config file",
          command: null,
          args: null,
          profile: null,
          mode: null,
        });
        continue;
      }
      if (launch === null) {
        out.push({
          ...base,
          configured: true,
          status: "broken",
          detail: `the ${SERVER_NAME} entry cannot be read`,
          command: null,
          args: null,
          profile: null,
          mode: null,
        });
        continue;
      }
      let check = await checkLaunch(launch, where.env, self);
      const mode = modeOf(launch);
      if (want.mode && check.status === "ok" && mode !== want.mode)
        check = {
          status: "stale",
          detail: `serves ${mode ? `mode ${mode}` : `profile ${profileOf(launch) ?? DEFAULT_PROFILE}`}, not mode ${want.mode}`,
        };
      out.push({
        ...base,
        configured: true,
        ...check,
        command: launch.command,
        args: launch.args,
        profile: profileOf(launch),
        mode,
      });
    }
  }
  return out;
}

/**
 * Re-points a client's existing pyro entry at this pyro, keeping what it serves (the
 * arguments after `mcp serve`: profile, --allow-path, ...). Scopes without an entry are
 * left alone; with no entry anywhere it says to connect instead.
 */
export async function repair(
  client: Client,
  scopes: readonly Scope[],
  self: Launch,
  where: Where,
): Promise<ConnectResult[]> {
  const results: ConnectResult[] = [];
  for (const scope of scopes) {
    const path = client.file(scope, where);
    const { launch } = await readEntry(client, path);
    if (launch === undefined) continue;
    const serve = launch?.args.indexOf("mcp") ?? -1;
    const tail =
      launch && serve >= 0 ? launch.args.slice(serve) : ["mcp", "serve", "--profile", DEFAULT_PROFILE];
    results.push(
      await connect(client, scope, { command: self.command, args: [...self.args, ...tail] }, where),
    );
  }
  if (results.length === 0)
    throw new PyroError(
      "not_found",
      `${client.title} has no pyro entry to repair (${scopes.map((s) => client.file(s, where)).join(", ")})`,
      `connect it first: \`pyro host connect ${client.name}\``,
    );
  return results;
}
