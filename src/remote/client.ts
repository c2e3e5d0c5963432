import { readFile, stat } from "node:fs/promises";
import { resolve } from "node:path";
import { PyroError } from "../core/errors.js";
import { VERSION } from "../core/version.js";
import type { Operation } from "../operations/table.js";
import { ignore } from "../util/best-effort.js";

/**
 * The client side of `pyro mcp serve --http`, for the SDK (`new Pyro({ url, token })`) and
 * the CLI (`pyro --remote URL`): operations become tool calls of the official MCP client over
 * Streamable HTTP, and the host paths in them are the *client's*: a seed_path/source_path is
 * packed (tar.gz) and uploaded (`POST /uploads` → "upload:ID"), an export's output is asked
 * for as "download:" and the archive fetched and written locally with the export's checks.
 */
export interface RemoteOptions {
  /** The server: `http(s)://host:port` (or its `/mcp` endpoint). */
  url: string;
  /** A bearer token from `pyro token create` on the server (default: $PYRO_TOKEN). */
  token?: string;
}

const PATH_FIELDS = ["seed_path", "source_path"];
/** Long enough for an environment build or a long command; progress resets it. */
const CALL_TIMEOUT_MS = 60 * 60 * 1000;

interface ToolResult {
  content?: { type: string; text?: string }[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
  _meta?: Record<string, unknown>;
}
interface McpClient {
  callTool(
    p: { name: string; arguments: Record<string, unknown> },
    o?: { signal?: AbortSignal; timeout?: number; resetTimeoutOnProgress?: boolean },
  ): Promise<ToolResult>;
  close(): Promise<void>;
}

export function remoteBase(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new PyroError(
      "invalid_argument",
      `remote URL ${JSON.stringify(url.slice(0, 100))} is not a URL`,
      "e.g. http://127.0.0.1:8080 or https://pyro.example.com",
    );
  }
  if (u.protocol !== "http:" && u.protocol !== "https:")
    throw new PyroError(
      "invalid_argument",
      `remote URL ${url} is not http(s)`,
      "e.g. https://pyro.example.com:8443",
    );
  return `${u.origin}${u.pathname.replace(/\/+$/, "").replace(/\/mcp$/, "")}`;
}

function unauthorized(): PyroError {
  return new PyroError(
    "unauthorized",
    "the server refused the token (missing, unknown or revoked)",
    "pass a live token (on the server: `pyro token create --name NAME`) as PYRO_TOKEN or { token }",
  );
}

export class RemoteClient {
  readonly base: string;
  private readonly token: string | undefined;
  private client: Promise<McpClient> | undefined;

  constructor(opts: RemoteOptions) {
    this.base = remoteBase(opts.url);
    this.token = opts.token ?? process.env.PYRO_TOKEN;
  }

  private headers(): Record<string, string> {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  private connect(): Promise<McpClient> {
    this.client ??= (async () => {
      const { Client, StreamableHTTPClientTransport } = await import("./mcp-client.js");
      const client = new Client({ name: "pyro-sdk", version: VERSION });
      const transport = new StreamableHTTPClientTransport(new URL(`${this.base}/mcp`), {
        requestInit: { headers: this.headers() },
      });
      try {
        await client.connect(transport);
      } catch (e) {
        this.client = undefined;
        throw this.transportError(e);
      }
      return client as unknown as McpClient;
    })();
    return this.client;
  }

  private transportError(e: unknown): PyroError {
    const msg = e instanceof Error ? e.message : String(e);
    if (/\b401\b|unauthori[sz]ed/i.test(msg)) return unauthorized();
    const cert = certificateProblem(e);
    if (cert)
      return new PyroError(
        "engine_unavailable",
        `cannot reach the pyro server at ${this.base}: its TLS certificate is not trusted here (${cert})`,
        "if it is the server's own (self-signed, `pyro mcp serve --tls-cert FILE`) or signed by your own CA, trust that PEM file for this command: `NODE_EXTRA_CA_CERTS=/path/to/cert.pem pyro --remote URL …` (Node reads it at start-up; an SDK program is started with it set)",
      );
    if (
      /ECONNREFUSED|fetch failed|ENOTFOUND|EAI_AGAIN/.test(msg) ||
      /ECONNREFUSED/.test(String((e as { cause?: unknown })?.cause))
    )
      return new PyroError(
        "engine_unavailable",
        `cannot reach the pyro server at ${this.base}: ${msg}`,
        "is `pyro mcp serve --http` running there, and the URL right?",
      );
    return new PyroError("engine_failure", `remote call failed: ${msg}`);
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c)
      await (
        await c.catch(ignore("closing a connection that never opened: the call that opened it got its error"))
      )?.close();
  }

  /** One operation, through the server's tool of the same name. */
  async call(
    op: Operation,
    input: Record<string, unknown>,
    opts: { signal?: AbortSignal; cwd?: string } = {},
  ): Promise<unknown> {
    if (!op.mcp)
      throw new PyroError(
        "remote_unsupported",
        `${op.name} is not available over a remote connection (it is not an MCP tool; the server offers only its tools)`,
        `run \`pyro ${op.cli.path.join(" ")}\` on the server itself`,
      );
    const args: Record<string, unknown> = { ...input };
    const cwd = opts.cwd ?? process.cwd();
    for (const f of PATH_FIELDS) {
      const v = args[f];
      if (typeof v === "string" && !v.startsWith("upload:"))
        args[f] = `upload:${await this.upload(resolve(cwd, v), f, opts.signal)}`;
    }
    let exportTo: { output: string; force: boolean } | undefined;
    if (
      op.name === "workspace_export" &&
      typeof args.output === "string" &&
      !args.output.startsWith("download:")
    ) {
      exportTo = { output: args.output, force: args.force === true };
      // Checked before the server does any work: an existing target is refused the same way.
      const { checkExportTarget } = await import("../workspaces/export.js");
      await checkExportTarget(exportTo.output, exportTo.force, cwd);
      args.output = "download:";
    }
    const client = await this.connect();
    let r: ToolResult;
    try {
      r = await client.callTool(
        { name: op.name, arguments: args },
        {
          ...(opts.signal ? { signal: opts.signal } : {}),
          timeout: CALL_TIMEOUT_MS,
          resetTimeoutOnProgress: true,
        },
      );
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (/tool .*not found|unknown tool/i.test(msg))
        throw new PyroError(
          "remote_unsupported",
          `the server does not serve ${op.name} (its --profile leaves it out)`,
          "ask its operator to start it with `pyro mcp serve --http … --profile all`",
        );
      if (opts.signal?.aborted) throw new PyroError("cancelled", `${op.name} was cancelled`);
      throw this.transportError(e);
    }
    if (r.isError) {
      const pe = (
        r._meta?.["pyro/error"] as { error?: { code?: string; message?: string; hint?: string } } | undefined
      )?.error;
      const text = (r.content ?? []).map((c) => c.text ?? "").join("\n");
      if (pe?.code && pe.message) throw new PyroError(pe.code as never, pe.message, pe.hint);
      if (/tool .*not found/i.test(text))
        throw new PyroError(
          "remote_unsupported",
          `the server does not serve ${op.name} (its --profile leaves it out)`,
          "ask its operator to start it with `--profile all`",
        );
      throw new PyroError("engine_failure", text || `${op.name} failed on the server`);
    }
    const result = { ...(r.structuredContent ?? {}) };
    if (exportTo) {
      const archive = await this.download(String(result.output), opts.signal);
      const { writeExportArchive } = await import("../workspaces/export.js");
      const w = await writeExportArchive(
        archive,
        exportTo.output,
        exportTo.force,
        cwd,
        String(result.path ?? "."),
      );
      result.output = w.output;
      result.format = w.format;
    }
    return result;
  }

  /** Packs a local directory (or takes a local archive) and uploads it; returns the upload id. */
  async upload(path: string, field: string, signal?: AbortSignal): Promise<string> {
    const st = await stat(path).catch(
      ignore("upload source cannot be stat-ed: the invalid_argument below names it"),
    );
    if (!st)
      throw new PyroError(
        "invalid_argument",
        `${field} does not exist: ${path}`,
        "pass an existing directory or a .tar/.tar.gz/.tgz file",
      );
    let body: Buffer;
    if (st.isDirectory()) {
      const tar = await import("tar");
      const chunks: Buffer[] = [];
      // Modes and mtimes kept (not `portable`), symlinks as links: the server's seed checks decide.
      const stream = tar.c({ cwd: path, gzip: true, portable: false, follow: false }, ["."]);
      for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
      body = Buffer.concat(chunks);
    } else if (st.isFile() && /\.(tar|tar\.gz|tgz)$/i.test(path)) body = await readFile(path);
    else
      throw new PyroError(
        "invalid_argument",
        `${field} ${path} is not a directory or a .tar/.tar.gz/.tgz file`,
        "pass a directory or an archive",
      );
    const res = await fetch(`${this.base}/uploads`, {
      method: "POST",
      headers: { ...this.headers(), "content-type": "application/octet-stream" },
      body,
      ...(signal ? { signal } : {}),
    }).catch((e: unknown) => {
      throw this.transportError(e);
    });
    if (res.status === 401) throw unauthorized();
    const j = (await res.json().catch(() => ({}))) as { upload_id?: string; error?: { message?: string } };
    if (!res.ok || !j.upload_id)
      throw new PyroError(
        res.status === 413 ? "invalid_argument" : "engine_failure",
        `upload of ${field} ${path} failed (${res.status}): ${j.error?.message ?? res.statusText}`,
        res.status === 413
          ? "seed a smaller tree, or ask the operator for a larger --max-upload-mib"
          : undefined,
      );
    return j.upload_id;
  }

  private async download(path: string, signal?: AbortSignal): Promise<Buffer> {
    if (!path.startsWith("/downloads/"))
      throw new PyroError("engine_failure", `the server's export result names no download (${path})`);
    const res = await fetch(`${this.base}${path}`, {
      headers: this.headers(),
      ...(signal ? { signal } : {}),
    }).catch((e: unknown) => {
      throw this.transportError(e);
    });
    if (res.status === 401) throw unauthorized();
    if (!res.ok) throw new PyroError("engine_failure", `fetching the export failed (${res.status})`);
    return Buffer.from(await res.arrayBuffer());
  }
}

/** Node's codes for a certificate it will not trust (OpenSSL's names), anywhere in a cause chain. */
const CERT_CODES =
  /^(DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|CERT_UNTRUSTED|ERR_TLS_CERT_ALTNAME_INVALID)$/;

/**
 * "fetch failed" is all a failed TLS handshake says at the top; the reason (a self-signed
 * certificate, an unknown CA, a wrong name) is in its cause. Returns that reason, or undefined.
 */
export function certificateProblem(e: unknown): string | undefined {
  for (let cur = e, depth = 0; cur && depth < 8; depth++) {
    const x = cur as { code?: unknown; message?: unknown; cause?: unknown };
    if (typeof x.code === "string" && CERT_CODES.test(x.code))
      return typeof x.message === "string" && x.message ? `${x.code}: ${x.message}` : x.code;
    cur = x.cause;
  }
  return undefined;
}
