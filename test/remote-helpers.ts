import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CLI, runCliJson } from "./helpers.js";

/** A `pyro mcp serve --http 127.0.0.1:0` started by a test, with its URL and log. */
export interface HttpServer {
  url: string;
  proc: ChildProcess;
  log: () => string;
  /** SIGTERM, then the exit code (fails the test if it does not exit within `ms`). */
  stop: (ms?: number) => Promise<number | null>;
}

export async function startHttpServer(env: NodeJS.ProcessEnv, extra: string[] = []): Promise<HttpServer> {
  const proc = spawn(process.execPath, [CLI, "mcp", "serve", "--http", "127.0.0.1:0", ...extra], {
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${log}`)), 20_000);
    proc.stderr!.on("data", (d: Buffer) => {
      log += d.toString();
      const m = /serving MCP on (http:\/\/[0-9.]+:\d+)\/mcp/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}): ${log}`));
    });
  });
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  return {
    url,
    proc,
    log: () => log,
    stop: async (ms = 60_000) => {
      if (proc.exitCode === null) proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), ms);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

export async function createToken(
  env: NodeJS.ProcessEnv,
  name: string,
  flags: string[] = [],
): Promise<{ token: string; token_id: string }> {
  const r = await runCliJson<{ token: string; token_id: string }>(
    ["token", "create", "--name", name, ...flags],
    { env },
  );
  if (r.code !== 0) throw new Error(`token create failed: ${r.stderr}`);
  return r.json;
}

// biome-ignore lint/suspicious/noExplicitAny: test plumbing over results of many shapes
export type Json = Record<string, any>;
/** A failed call: the text a model sees, and the error as data (`_meta["pyro/error"]`). */
export type Call = (
  name: string,
  args?: Json,
) => Promise<{ ok: true; r: Json } | { ok: false; text: string; code?: string; error?: Json }>;

/** The official MCP client (v1 SDK, what desktop clients ship) on `${url}/mcp` with a bearer token. */
export async function mcpClient(url: string, token?: string): Promise<{ client: Client; call: Call }> {
  const transport = new StreamableHTTPClientTransport(new URL(`${url}/mcp`), {
    requestInit: { headers: token ? { Authorization: `Bearer ${token}` } : {} },
  });
  const client = new Client({ name: "pyro-remote-test", version: "0.0.0" });
  await client.connect(transport);
  const call: Call = async (name, args = {}) => {
    const r = (await client.callTool({ name, arguments: args }, undefined, { timeout: 300_000 })) as Json;
    if (r.isError)
      return {
        ok: false,
        text: (r.content ?? []).map((c: Json) => c.text).join("\n"),
        code: r._meta?.["pyro/error"]?.error?.code,
        error: r._meta?.["pyro/error"]?.error,
      };
    return { ok: true, r: r.structuredContent };
  };
  return { client, call };
}

export function ok(x: Awaited<ReturnType<Call>>): Json {
  if (!x.ok) assert.fail(`expected success, got: ${x.text}`);
  return x.r;
}
