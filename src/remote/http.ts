import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { readFile, rename, rm, stat } from "node:fs/promises";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createMcpHandler, type McpHttpHandler } from "@modelcontextprotocol/server";
import { diskFullFrom, isPyroError, PyroError } from "../core/errors.js";
import { hostAccessPolicy } from "../core/host-paths.js";
import { VERSION } from "../core/version.js";
import type { AskFirstPolicy } from "../mcp/elicit.js";
import { InflightCalls } from "../mcp/inflight.js";
import { createServer } from "../mcp/server.js";
import { parseSelection } from "../operations/tool-sets.js";
import { serverExportPolicy } from "../project/export-policy.js";
import { Runtime } from "../runtime/runtime.js";
import { TenantGate } from "../tenants/tenancy.js";
import { type Tenant, TokenStore } from "../tenants/tokens.js";
import { TransferStore } from "../tenants/transfers.js";
import { ignore } from "../util/best-effort.js";
import { isLoopbackBind, originGuard } from "./origin.js";

/**
 * `pyro mcp serve --http [HOST:]PORT`: the same MCP server as stdio (same profiles, tools
 * and handlers), over the MCP Streamable HTTP transport of the official SDK
 * (`createMcpHandler`: the stateless 2025 transport and the per-request 2026 one), behind
 * bearer-token authentication. Routes:
 *
 * - `POST|GET|DELETE /mcp`: MCP. Each request gets a fresh McpServer for its tenant (the
 *   SDK's factory idiom), whose tool calls go through the tenant's gate.
 * - `POST /uploads`: a tar or tar.gz body → `{ upload_id }`, used as seed_path "upload:ID".
 * - `GET /downloads/ID`: an archive an export with output "download:" wrote.
 * - `GET /healthz`: liveness, without authentication and without details.
 *
 * Every route first passes the Origin/Host check (origin.ts: DNS-rebinding protection, a
 * 403 with a JSON-RPC error body), then everything but /healthz needs `Authorization: Bearer
 * <token>` of a live token; anything else is a 401 before any body is read or any tool runs.
 */
export interface HttpServeOptions {
  /** `[HOST:]PORT`; HOST defaults to 127.0.0.1, PORT 0 picks a free one. */
  listen: string;
  /** Origins (scheme://host[:port]) whose browser pages may call; others get 403 (default: none). */
  allowOrigins?: readonly string[];
  /** On a loopback bind, Host names accepted besides loopback ones (a reverse proxy's public name). */
  allowHosts?: readonly string[];
  /** Server directories remote tools may name as host paths (default: none). */
  allowPaths?: readonly string[];
  allowHostCompat?: boolean;
  /** workspace_create may take seed_path "git:https://…", cloned by the server. */
  allowRepoSeeds?: boolean;
  /**
   * Server directory exports may write into (`--export-dir`), one subdirectory per token;
   * default none: clients export with output "download:". Same rules as on stdio
   * (src/project/export-policy.ts), with `allowExportOverwrite` / `allowExportExec`.
   */
  exportDir?: string;
  allowExportOverwrite?: boolean;
  allowExportExec?: boolean;
  profile?: string;
  /** `--mode`: a job's tools instead of a profile. */
  mode?: string;
  tlsCert?: string;
  tlsKey?: string;
  /** Requests served at once; more get 503 (default 64). */
  maxConcurrent?: number;
  /** Largest MCP request body (default 4 MiB). */
  maxBodyBytes?: number;
  /** Largest upload (default 512 MiB, the export limit). */
  maxUploadBytes?: number;
  runtime?: Runtime;
  log?: (line: string) => void;
  /**
   * `--no-auth`, for local development and conformance suites that cannot send a token:
   * requests need no bearer token and all act as one tenant, LOCAL_TENANT. Refused unless
   * the bind is loopback (the Host/Origin checks still apply, so a web page cannot use it).
   */
  noAuth?: boolean;
  /** `--ask-first`: over HTTP a client cannot be asked, so the policy's fallback decides. */
  askFirst?: AskFirstPolicy;
}

/** The one tenant of a `--no-auth` server (a token id no real token has: 16 zero digits). */
export const LOCAL_TENANT: Tenant = {
  id: "tok_0000000000000000",
  name: "local (--no-auth)",
  limits: { max_sandboxes: null, max_mem_mib: null },
};

/** Refuses `--no-auth` on a bind a network peer can reach. */
export function checkNoAuth(host: string): void {
  if (!isLoopbackBind(host))
    throw new PyroError(
      "invalid_argument",
      `--no-auth needs a loopback bind, and --http ${host} is reachable from the network`,
      "bind to loopback (--http 127.0.0.1:PORT, the default host) or drop --no-auth and use a token (`pyro token create`)",
    );
}

export interface HttpServerHandle {
  /** Base URL, e.g. http://127.0.0.1:41234 (the MCP endpoint is `${url}/mcp`). */
  url: string;
  port: number;
  /**
   * Graceful shutdown: no new requests; in-flight ones get `graceMs` to finish, then are
   * cancelled (their one-shot sandboxes are cleaned up as on any cancel). Workspaces stay.
   */
  close(graceMs?: number): Promise<void>;
}

export const DEFAULTS = {
  maxConcurrent: 64,
  maxBodyBytes: 4 * 1024 * 1024,
  maxUploadBytes: 512 * 1024 * 1024,
  shutdownGraceMs: 30_000,
};

/**
 * The session id a 2025-era client gets with its `initialize` answer and sends on every
 * later request. The server stays stateless (any instance serves any request, nothing is
 * kept per session, GET and DELETE stay 405): the id only tells one client's request ids
 * from another's, so that a `notifications/cancelled` ends the caller's call and never
 * another client's with the same id (src/mcp/inflight.ts).
 */
const SESSION_HEADER = "mcp-session-id";
const newSessionId = () => `pyro-${randomBytes(16).toString("hex")}`;

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):)?(\d{1,5})$/.exec(listen.trim());
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || port > 65535)
    throw new PyroError(
      "invalid_argument",
      `--http ${JSON.stringify(listen)} is not [HOST:]PORT`,
      "e.g. --http 8080 (127.0.0.1), --http 0.0.0.0:8080 (every interface: use --tls-cert/--tls-key or a TLS proxy)",
    );
  const host = m[1] ? m[1].replace(/^\[|\]$/g, "") : "127.0.0.1";
  return { host, port };
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) return void res.end();
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

async function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  if (declared > max) throw new HttpError(413, "body_too_large", `request body over ${max} bytes`);
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) throw new HttpError(413, "body_too_large", `request body over ${max} bytes`);
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/** What a JSON-RPC body is about, for the log: method and tool name, never arguments. */
function rpcSummary(body: Buffer): string {
  try {
    const m = JSON.parse(body.toString("utf8")) as unknown;
    const one = (x: { method?: unknown; params?: { name?: unknown } }) =>
      typeof x?.method === "string"
        ? `${x.method}${x.method === "tools/call" && typeof x.params?.name === "string" ? `:${x.params.name}` : ""}`
        : "response";
    return Array.isArray(m) ? m.map(one).join(",") : one(m as never);
  } catch {
    return "unparsable";
  }
}

export async function startHttpServer(opts: HttpServeOptions): Promise<HttpServerHandle> {
  const { host, port } = parseListen(opts.listen);
  if (opts.noAuth) checkNoAuth(host);
  const guard = originGuard({
    bindHost: host,
    ...(opts.allowOrigins ? { allowOrigins: opts.allowOrigins } : {}),
    ...(opts.allowHosts ? { allowHosts: opts.allowHosts } : {}),
  });
  const log = opts.log ?? ((l: string) => process.stderr.write(`pyro mcp: ${l}\n`));
  const runtime = opts.runtime ?? new Runtime();
  const tokens = new TokenStore(runtime.paths.stateDir);
  const transfers = new TransferStore(join(runtime.paths.stateDir, "remote"));
  // Over HTTP the caller is a program elsewhere: no server directory unless the operator maps it.
  const roots = opts.allowPaths?.length ? hostAccessPolicy(opts.allowPaths).roots : [];
  const gate = new TenantGate(runtime, transfers, roots, opts.allowRepoSeeds === true);
  // Checked at startup (a bad --export-dir is an error before serving).
  const exportPolicy = serverExportPolicy({
    ...(opts.exportDir !== undefined ? { exportDir: opts.exportDir } : {}),
    allowOverwrite: opts.allowExportOverwrite === true,
    allowExec: opts.allowExportExec === true,
    roots,
    http: true,
  });
  const tools = parseSelection(opts);
  const maxConcurrent = opts.maxConcurrent ?? DEFAULTS.maxConcurrent;
  const maxBody = opts.maxBodyBytes ?? DEFAULTS.maxBodyBytes;
  const maxUpload = opts.maxUploadBytes ?? DEFAULTS.maxUploadBytes;

  // Every request gets its own McpServer, so a `notifications/cancelled` POST reaches an
  // instance that never saw the call it names: the calls of all of them are registered here
  // (src/mcp/inflight.ts), per tenant and client session.
  const calls = new InflightCalls();
  const mcp: McpHttpHandler = createMcpHandler(
    (ctx) => {
      const tenant = ctx.authInfo?.extra?.tenant as Tenant | undefined;
      // The HTTP layer authenticates before the SDK sees a request; this cannot happen.
      if (!tenant) throw new Error("unauthenticated MCP request reached the server factory");
      const session = ctx.requestInfo?.headers.get(SESSION_HEADER) ?? "";
      return createServer({
        inflight: { calls, scope: `${tenant.id}/${session}` },
        runtime,
        log,
        hostAccess: hostAccessPolicy(roots),
        exportPolicy,
        ...(opts.allowHostCompat ? { allowHostCompat: true } : {}),
        ...tools,
        gate: gate.for(tenant),
        // A request's server ends with its response: no subscription to poll, no client to ask.
        liveConnection: false,
        ...(opts.askFirst ? { askFirst: opts.askFirst } : {}),
      });
    },
    { maxRequestBodySize: maxBody, onerror: (e) => log(`mcp: ${e.message}`) },
  );

  let inflight = 0;
  let closing = false;
  const controllers = new Set<AbortController>();
  const idle: (() => void)[] = [];

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = performance.now();
    const url = new URL(req.url ?? "/", "http://pyro.invalid");
    let who = "-";
    let what = "";
    res.once("close", () => {
      const ms = Math.round(performance.now() - started);
      log(`${req.method} ${url.pathname} ${res.statusCode} ${ms}ms tenant=${who}${what ? ` ${what}` : ""}`);
    });
    // Before anything else, /healthz included: a page in the user's browser gets nothing.
    const refused = guard.refuse({ origin: req.headers.origin, host: req.headers.host });
    if (refused)
      return sendJson(
        res,
        403,
        { jsonrpc: "2.0", error: { code: -32000, message: refused }, id: null },
        { connection: "close" },
      );
    if (url.pathname === "/healthz" && req.method === "GET")
      return sendJson(res, closing ? 503 : 200, { ok: !closing, version: VERSION });
    if (closing)
      return sendJson(
        res,
        503,
        { error: { code: "shutting_down", message: "the server is shutting down" } },
        { connection: "close" },
      );

    const auth = req.headers.authorization;
    const secret = auth?.startsWith("Bearer ") ? auth.slice(7).trim() : undefined;
    const tenant = opts.noAuth
      ? LOCAL_TENANT
      : await tokens.verify(secret).catch((e: unknown) => {
          log(`token check failed: ${e instanceof Error ? e.message : String(e)}`);
          return undefined;
        });
    if (!tenant)
      return sendJson(
        res,
        401,
        {
          error: {
            code: "unauthorized",
            message: secret ? "unknown or revoked token" : "a bearer token is required",
          },
        },
        { "www-authenticate": 'Bearer realm="pyro"', connection: "close" },
      );
    who = `${tenant.name}(${tenant.id})`;
    if (inflight >= maxConcurrent)
      return sendJson(
        res,
        503,
        { error: { code: "busy", message: `more than ${maxConcurrent} requests at once` } },
        { "retry-after": "1" },
      );

    inflight++;
    const ac = new AbortController();
    controllers.add(ac);
    res.once("close", () => {
      if (!res.writableFinished) ac.abort();
    });
    try {
      if (url.pathname === "/mcp") {
        const body = req.method === "POST" ? await readBody(req, maxBody) : undefined;
        if (body) what = rpcSummary(body);
        const headers = new Headers();
        for (const [k, v] of Object.entries(req.headers))
          if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(", ") : v);
        const request = new Request(`http://${req.headers.host ?? "localhost"}${req.url}`, {
          method: req.method ?? "GET",
          headers,
          ...(body ? { body } : {}),
          signal: ac.signal,
        });
        const response = await mcp.fetch(request, {
          authInfo: { token: tenant.id, clientId: tenant.id, scopes: [], extra: { tenant } },
        });
        const answer = Object.fromEntries(response.headers.entries());
        if (what === "initialize" && response.ok && !req.headers[SESSION_HEADER])
          answer[SESSION_HEADER] = newSessionId();
        res.writeHead(response.status, answer);
        if (response.body) {
          for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
            if (ac.signal.aborted) break;
            res.write(chunk);
          }
        }
        res.end();
      } else if (url.pathname === "/uploads" && req.method === "POST") {
        const declared = Number(req.headers["content-length"]);
        if (declared > maxUpload)
          throw new HttpError(413, "body_too_large", `upload over ${maxUpload} bytes`);
        const r = await transfers.saveUpload(tenant.id, req, maxUpload);
        what = `${r.upload_id} ${r.bytes}B`;
        sendJson(res, 201, r);
      } else if (url.pathname.startsWith("/downloads/") && req.method === "GET") {
        const id = url.pathname.slice("/downloads/".length);
        const path = await transfers.downloadPath(tenant.id, id);
        const missing = () =>
          new HttpError(404, "not_found", `no download ${JSON.stringify(id.slice(0, 40))}`);
        if (!path) throw missing();
        // Fetchable once: taken by a rename before it is sent, so a second request (even one
        // arriving while this body is still streaming) finds nothing.
        const taken = `${path}.sending-${randomBytes(4).toString("hex")}`;
        if (
          !(await rename(path, taken).then(
            () => true,
            () => false,
          ))
        )
          throw missing();
        try {
          const { size } = await stat(taken);
          res.writeHead(200, {
            "content-type": path.endsWith(".gz") ? "application/gzip" : "application/x-tar",
            "content-length": size,
          });
          await pipeline(createReadStream(taken), res);
        } finally {
          await rm(taken, { force: true });
        }
      } else throw new HttpError(404, "not_found", `no route ${req.method} ${url.pathname}`);
    } catch (e) {
      // A full host disk (an upload or download being written) is said as disk_full, 507.
      const pe = e instanceof HttpError ? undefined : isPyroError(e) ? e : diskFullFrom(e);
      if (e instanceof HttpError) sendJson(res, e.status, { error: { code: e.code, message: e.message } });
      else if (pe) {
        const status =
          pe.code === "not_found"
            ? 404
            : pe.code === "disk_full"
              ? 507
              : /too large|limit of/.test(pe.message)
                ? 413
                : 400;
        sendJson(res, status, pe.toJSON());
      } else {
        log(
          `${req.method} ${url.pathname} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
        );
        sendJson(res, 500, { error: { code: "internal", message: "internal error (see the server log)" } });
      }
    } finally {
      controllers.delete(ac);
      inflight--;
      if (inflight === 0) for (const f of idle.splice(0)) f();
    }
  };

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((e: unknown) => {
      log(`request failed: ${e instanceof Error ? e.message : String(e)}`);
      if (!res.headersSent) sendJson(res, 500, { error: { code: "internal", message: "internal error" } });
      else res.destroy();
    });
  };
  let server: Server;
  if (opts.tlsCert || opts.tlsKey) {
    if (!opts.tlsCert || !opts.tlsKey)
      throw new PyroError(
        "invalid_argument",
        "--tls-cert and --tls-key go together",
        "pass both PEM files, or neither",
      );
    const [cert, key] = await Promise.all([readFile(opts.tlsCert), readFile(opts.tlsKey)]).catch(
      (e: Error) => {
        throw new PyroError("invalid_argument", `cannot read the TLS certificate or key: ${e.message}`);
      },
    );
    server = createHttpsServer({ cert, key }, listener);
  } else server = createHttpServer(listener);
  // Long tool calls (an environment build, a long command) must not be cut by Node's defaults.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) =>
      reject(
        new PyroError(
          "invalid_argument",
          `cannot listen on ${host}:${port}: ${e.code === "EADDRINUSE" ? "the port is in use" : e.message}`,
          "pick another --http port",
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const shown = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  const base = `${opts.tlsCert ? "https" : "http"}://${shown}:${addr.port}`;

  let closed: Promise<void> | undefined;
  return {
    url: base,
    port: addr.port,
    close(graceMs = DEFAULTS.shutdownGraceMs) {
      closed ??= (async () => {
        closing = true;
        server.close();
        server.closeIdleConnections();
        const drained = new Promise<void>((r) => (inflight === 0 ? r() : idle.push(r)));
        const timer = new Promise<"late">((r) => setTimeout(() => r("late"), graceMs).unref());
        if ((await Promise.race([drained, timer])) === "late") {
          log(`${inflight} request(s) still running after ${graceMs} ms: cancelling them`);
          for (const c of controllers) c.abort();
          await mcp
            .close()
            .catch(ignore("closing the MCP server after cancelling late requests: shutdown goes on"));
          await Promise.race([drained, new Promise((r) => setTimeout(r, 10_000).unref())]);
        }
        await mcp
          .close()
          .catch(ignore("closing the MCP server at shutdown: the HTTP server stops either way"));
        server.closeAllConnections();
      })();
      return closed;
    },
  };
}

/** The CLI's `pyro mcp serve --http`: serve until SIGTERM/SIGINT, then shut down gracefully. */
export async function serveHttp(opts: HttpServeOptions & { shutdownGraceMs?: number }): Promise<void> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`pyro mcp: ${l}\n`));
  const runtime = opts.runtime ?? new Runtime();
  const tokens = await new TokenStore(runtime.paths.stateDir).list();
  const h = await startHttpServer({ ...opts, runtime, log });
  log(`serving MCP on ${h.url}/mcp (uploads ${h.url}/uploads, health ${h.url}/healthz)`);
  if (opts.noAuth)
    log(
      "WARNING: --no-auth: no token is checked; every local process (every user of this host) can run sandboxes as this server's user. For development and test suites only.",
    );
  else if (!tokens.some((t) => !t.revoked))
    log("no live token: every request will get 401; create one with `pyro token create --name NAME`");
  const { host } = parseListen(opts.listen);
  if (!opts.tlsCert && !["127.0.0.1", "localhost", "::1"].includes(host))
    log(
      `listening on ${host} without TLS: tokens cross the network in clear text; use --tls-cert/--tls-key or a TLS proxy`,
    );
  if (opts.allowPaths?.length)
    log(`remote calls may name these server directories: ${opts.allowPaths.join(", ")}`);
  if (opts.exportDir !== undefined)
    log(`remote exports may write below ${opts.exportDir}/<token id>/ (--export-dir)`);
  if (opts.allowOrigins?.length)
    log(`browser pages of these origins may call (with a token): ${opts.allowOrigins.join(", ")}`);
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log(
        `${sig}: finishing in-flight requests (up to ${(opts.shutdownGraceMs ?? DEFAULTS.shutdownGraceMs) / 1000} s), workspaces are kept`,
      );
      h.close(opts.shutdownGraceMs).then(resolve, resolve);
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  log("stopped");
}
