import { readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { PyroError } from "../core/errors.js";
import type { Operation } from "../operations/table.js";
import { RemoteClient } from "./client.js";

/**
 * `pyro --remote URL …` (or PYRO_REMOTE): the CLI's operation commands against a
 * `pyro mcp serve --http` elsewhere. The token comes from PYRO_TOKEN, else from
 * `$XDG_CONFIG_HOME/pyro/remote.json` (`{ "token": "…" }`, mode 0600 like an
 * ssh key: a file others can read is refused rather than used).
 */
export interface RemoteConfig {
  token?: string;
}

export function remoteConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CONFIG_HOME || join(homedir(), ".config"), "pyro", "remote.json");
}

export function readRemoteConfig(env: NodeJS.ProcessEnv = process.env): RemoteConfig {
  const p = remoteConfigPath(env);
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(p);
  } catch {
    return {};
  }
  if ((st.mode & 0o077) !== 0)
    throw new PyroError(
      "invalid_argument",
      `${p} is readable by other users and holds a token`,
      `chmod 600 ${p}`,
    );
  try {
    const j = JSON.parse(readFileSync(p, "utf8")) as RemoteConfig;
    return typeof j.token === "string" ? { token: j.token } : {};
  } catch (e) {
    throw new PyroError(
      "invalid_argument",
      `cannot read ${p}: ${(e as Error).message}`,
      'it should be JSON: { "token": "pyro_tok_…" }',
    );
  }
}

/**
 * The remote server the CLI talks to, if any: --remote, else PYRO_REMOTE. (Never the config
 * file alone: a file should not silently send every local command elsewhere.)
 */
export function remoteUrl(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  return flag ?? (env.PYRO_REMOTE || undefined);
}

function decode(s: unknown, encoding: unknown): Buffer {
  return Buffer.from(typeof s === "string" ? s : "", encoding === "base64" ? "base64" : "utf8");
}

/** Runs one operation remotely; a command's output (no live stream over HTTP) is written after. */
export async function invokeRemote(
  url: string,
  op: Operation,
  input: Record<string, unknown>,
  opts: { signal?: AbortSignal; cwd?: string; stdout?: (b: Buffer) => void; stderr?: (b: Buffer) => void },
): Promise<Record<string, unknown>> {
  const token = process.env.PYRO_TOKEN || readRemoteConfig().token;
  if (!token)
    throw new PyroError(
      "unauthorized",
      `no token for the remote server ${url}`,
      `set PYRO_TOKEN, or put { "token": "…" } in ${remoteConfigPath()} (mode 0600); the server's operator makes one with \`pyro token create\``,
    );
  const client = new RemoteClient({ url, token });
  try {
    const r = (await client.call(op, input, {
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
    })) as Record<string, unknown>;
    if ("exit_code" in r && "stdout" in r) {
      opts.stdout?.(decode(r.stdout, r.stdout_encoding));
      opts.stderr?.(decode(r.stderr, r.stderr_encoding));
    }
    return r;
  } finally {
    await client.close();
  }
}
