import assert from "node:assert/strict";
import { readFile, rm, stat } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { after, test } from "node:test";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { Pyro, type PyroError } from "../../src/index.js";
import { parseListen, startHttpServer } from "../../src/remote/http.js";
import { originGuard, parseAllowedHost, parseAllowedOrigin } from "../../src/remote/origin.js";
import { Runtime } from "../../src/runtime/runtime.js";
import { TokenStore } from "../../src/tenants/tokens.js";
import { selfSignedCert, tempDir } from "../helpers.js";

/** In-process checks of the HTTP layer and the token store: no engine, no sandbox. */

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function runtime(): Promise<Runtime> {
  const home = await tempDir("pyro-remote-unit-");
  dirs.push(home);
  return new Runtime({ env: { ...process.env, PYRO_HOME: home, PYRO_CACHE_DIR: "", PYRO_STATE_DIR: "" } });
}

test("tokens: shown once, stored as a hash only, verified, revoked by name; a damaged file is an error", async () => {
  const rt = await runtime();
  const store = new TokenStore(rt.paths.stateDir);
  const t = await store.create({ name: "laptop", limits: { max_sandboxes: 2 } });
  assert.match(t.token, /^pyro_tok_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
  const file = await readFile(store.file, "utf8");
  assert.ok(!file.includes(t.token.split("_").pop()!), "the secret is not in the file");
  assert.equal((await stat(store.file)).mode & 0o077, 0, "the token file is private");
  assert.deepEqual(await store.verify(t.token), {
    id: t.token_id,
    name: "laptop",
    limits: { max_sandboxes: 2, max_mem_mib: null },
  });
  // Same id, wrong secret; malformed; missing.
  assert.equal(await store.verify(`pyro_${t.token_id}_${"A".repeat(43)}`), undefined);
  assert.equal(await store.verify("Bearer x"), undefined);
  assert.equal(await store.verify(undefined), undefined);
  await assert.rejects(store.create({ name: "laptop" }), /a token named laptop exists/);
  await assert.rejects(store.create({ name: "bad name!" }), /is not allowed/);
  const r = await store.revoke("laptop");
  assert.equal(r.revoked, true);
  assert.equal(await store.verify(t.token), undefined, "a revoked token is refused at once");
  await assert.rejects(store.revoke("nope"), (e: PyroError) => e.code === "not_found");
  assert.deepEqual(
    (await store.list()).map((x) => [x.name, x.revoked]),
    [["laptop", true]],
  );
  const { writeFile } = await import("node:fs/promises");
  await writeFile(store.file, '{"tokens": [{"token_id": "x"}]}');
  await assert.rejects(
    store.list(),
    (e: PyroError) => e.code === "invalid_state" && /is damaged/.test(e.message),
  );
  // The HTTP layer turns this into a logged 401: a damaged file lets nobody in.
  await assert.rejects(new TokenStore(rt.paths.stateDir).verify(t.token), /is damaged/);
});

test("parseListen: PORT, HOST:PORT, [v6]:PORT; garbage is a clear error", () => {
  assert.deepEqual(parseListen("8080"), { host: "127.0.0.1", port: 8080 });
  assert.deepEqual(parseListen("0.0.0.0:0"), { host: "0.0.0.0", port: 0 });
  assert.deepEqual(parseListen("[::1]:9"), { host: "::1", port: 9 });
  assert.throws(() => parseListen("http://x:1"), /is not \[HOST:\]PORT/);
  assert.throws(() => parseListen("70000"), /is not \[HOST:\]PORT/);
});

test("HTTP: /healthz open, 401 without a live token, 413 over the body and upload limits, 503 past the concurrency limit", async () => {
  const rt = await runtime();
  const store = new TokenStore(rt.paths.stateDir);
  const a = await store.create({ name: "a" });
  const lines: string[] = [];
  const h = await startHttpServer({
    listen: "127.0.0.1:0",
    runtime: rt,
    log: (l) => lines.push(l),
    maxUploadBytes: 1024,
    maxBodyBytes: 64 * 1024,
    maxConcurrent: 1,
  });
  const auth = { authorization: `Bearer ${a.token}` };
  try {
    const hz = await fetch(`${h.url}/healthz`);
    assert.equal(hz.status, 200);
    assert.equal(((await hz.json()) as { ok: boolean }).ok, true);
    const bad: Record<string, string>[] = [
      {},
      { authorization: "Bearer nope" },
      { authorization: `Basic ${a.token}` },
    ];
    for (const headers of bad) {
      const r = await fetch(`${h.url}/mcp`, { method: "POST", headers, body: "{}" });
      assert.equal(r.status, 401);
    }
    assert.equal((await fetch(`${h.url}/nothing`, { headers: auth })).status, 404);
    const big = await fetch(`${h.url}/mcp`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: "x".repeat(65 * 1024),
    });
    assert.equal(big.status, 413);
    const up = await fetch(`${h.url}/uploads`, { method: "POST", headers: auth, body: Buffer.alloc(2048) });
    assert.equal(up.status, 413);
    const ok = await fetch(`${h.url}/uploads`, { method: "POST", headers: auth, body: Buffer.alloc(512) });
    assert.equal(ok.status, 201);
    assert.match(((await ok.json()) as { upload_id: string }).upload_id, /^upl_[0-9a-f]{16}$/);
    assert.equal((await fetch(`${h.url}/downloads/dl_0123456789abcdef`, { headers: auth })).status, 404);

    // One request at a time: a second one while an upload is still streaming gets 503.
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const slowBody = new ReadableStream({
      async start(c) {
        c.enqueue(new Uint8Array(10));
        await gate;
        c.close();
      },
    });
    const slow = fetch(`${h.url}/uploads`, {
      method: "POST",
      headers: auth,
      body: slowBody,
      duplex: "half",
    } as RequestInit);
    await new Promise((r) => setTimeout(r, 200));
    const busy = await fetch(`${h.url}/uploads`, { method: "POST", headers: auth, body: "x" });
    assert.equal(busy.status, 503);
    assert.equal(busy.headers.get("retry-after"), "1");
    release();
    assert.equal((await slow).status, 201);

    // The official client works over the same endpoint; a non-tool operation is refused by the SDK.
    const c = new Client({ name: "unit", version: "0" });
    await c.connect(
      new StreamableHTTPClientTransport(new URL(`${h.url}/mcp`), { requestInit: { headers: auth } }),
    );
    assert.ok((await c.listTools()).tools.some((t) => t.name === "vm_run"));
    await c.close();
    const pyro = new Pyro({ url: h.url, token: a.token });
    await assert.rejects(pyro.doctor(), (e: PyroError) => e.code === "remote_unsupported");
    const wrong = new Pyro({ url: h.url, token: "pyro_tok_0123456789abcdef_x" });
    await assert.rejects(wrong.listWorkspaces(), (e: PyroError) => e.code === "unauthorized");
    await pyro.close();
  } finally {
    await h.close(1000);
  }
  assert.equal((await fetch(`${h.url}/healthz`).catch(() => undefined))?.status ?? 0, 0, "closed");
  const log = lines.join("\n");
  assert.match(log, /POST \/mcp 401 \d+ms tenant=-/);
  assert.match(log, /POST \/uploads 201 \d+ms tenant=a\(tok_[0-9a-f]{16}\)/);
  assert.ok(!log.includes(a.token), "the token is never logged");
});

test("HTTP Origin/Host checks (DNS rebinding): a foreign Origin or, on loopback, a foreign Host gets 403 before auth; programs and allowed origins pass", async () => {
  const rt = await runtime();
  const a = await new TokenStore(rt.paths.stateDir).create({ name: "a" });
  await assert.rejects(
    startHttpServer({ listen: "127.0.0.1:0", runtime: rt, allowOrigins: ["https://app.example.com/x"] }),
    (e: PyroError) => e.code === "invalid_argument" && /is not an origin/.test(e.message),
  );
  for (const bad of ["*", "app.example.com", "file:///x"])
    assert.throws(() => parseAllowedOrigin(bad), /is not an origin/);
  assert.equal(parseAllowedOrigin("HTTPS://App.Example.com:443/"), "https://app.example.com");
  for (const bad of ["proxy.example:8080", "https://proxy.example", "a/b", ""])
    assert.throws(() => parseAllowedHost(bad), /is not a host name/);
  const lines: string[] = [];
  const h = await startHttpServer({
    listen: "127.0.0.1:0",
    runtime: rt,
    log: (l) => lines.push(l),
    allowOrigins: ["http://localhost:6274"],
    allowHosts: ["proxy.example"],
  });
  // node:http, because fetch sets Host itself.
  const raw = (path: string, headers: Record<string, string>, body?: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(
        `${h.url}${path}`,
        { method: body === undefined ? "GET" : "POST", headers },
        (res) => {
          let text = "";
          res.on("data", (d: Buffer) => {
            text += d.toString();
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  const auth = { authorization: `Bearer ${a.token}` };
  const init = {
    ...auth,
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
  };
  const initialize = JSON.stringify({
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "u", version: "0" } },
  });
  try {
    const refused = async (path: string, headers: Record<string, string>, why: RegExp, body?: string) => {
      const r = await raw(path, headers, body);
      assert.equal(r.status, 403, `${JSON.stringify(headers)} on ${path}: ${r.body}`);
      const j = JSON.parse(r.body) as { jsonrpc: string; id: null; error: { code: number; message: string } };
      assert.equal(j.jsonrpc, "2.0");
      assert.equal(j.id, null);
      assert.equal(j.error.code, -32000);
      assert.match(j.error.message, why);
    };
    // A foreign Origin: refused with or without a token (before auth), on every route.
    await refused(
      "/mcp",
      { ...init, origin: "http://evil.example" },
      /Origin "http:\/\/evil.example" is not allowed/,
      initialize,
    );
    await refused("/mcp", { origin: "http://evil.example" }, /is not allowed/, initialize);
    await refused("/healthz", { origin: "http://localhost:9999" }, /is not allowed/);
    await refused("/uploads", { ...auth, origin: "null" }, /is not allowed/, "x");
    // On a loopback bind, a Host that is not a loopback name (DNS rebinding) is refused too.
    const port = new URL(h.url).port;
    await refused(
      "/mcp",
      { ...init, host: `evil.example:${port}` },
      /Host "evil.example:\d+" is not a loopback name/,
      initialize,
    );
    await refused("/healthz", { host: `127.0.0.1.evil.example:${port}` }, /not a loopback name/);
    await refused("/healthz", { host: `localhost@evil.example:${port}` }, /not a loopback name/);
    // Programs (no Origin), loopback names at any port, the allowed origin and host: served.
    assert.equal((await raw("/mcp", init, initialize)).status, 200);
    assert.equal((await raw("/mcp", { ...init, origin: "http://localhost:6274" }, initialize)).status, 200);
    assert.equal((await raw("/mcp", { ...init, origin: "" }, initialize)).status, 200);
    for (const host of [
      `localhost:${port}`,
      "localhost:9000",
      `[::1]:${port}`,
      "proxy.example",
      `proxy.example:${port}`,
    ])
      assert.equal((await raw("/healthz", { host })).status, 200, host);
    assert.equal(
      (await raw("/mcp", { origin: "http://localhost:6274" }, initialize)).status,
      401,
      "then auth",
    );
    const c = new Client({ name: "unit", version: "0" });
    await c.connect(
      new StreamableHTTPClientTransport(new URL(`${h.url}/mcp`), { requestInit: { headers: auth } }),
    );
    assert.ok((await c.listTools()).tools.length > 0, "the official client sends no Origin and passes");
    await c.close();
  } finally {
    await h.close(1000);
  }
  assert.match(lines.join("\n"), /POST \/mcp 403 \d+ms tenant=-/);
  // Bound beyond loopback, any Host name is the network's business; Origin is still checked.
  const wide = originGuard({ bindHost: "0.0.0.0" });
  assert.equal(wide.refuse({ host: "pyro.example.com:8443" }), undefined);
  assert.match(
    wide.refuse({ host: "pyro.example.com", origin: "https://evil.example" }) ?? "",
    /not allowed/,
  );
  assert.equal(originGuard({ bindHost: "::1" }).refuse({ host: "[::1]:1" }), undefined);
  assert.match(originGuard({ bindHost: "localhost" }).refuse({ host: undefined }) ?? "", /not a loopback/);
});

test("HTTP with --tls-cert/--tls-key: HTTPS with the given certificate; one without the other is refused", async () => {
  const rt = await runtime();
  const dir = await tempDir("pyro-remote-tls-");
  dirs.push(dir);
  const { cert, key } = selfSignedCert(dir);
  await assert.rejects(
    startHttpServer({ listen: "127.0.0.1:0", runtime: rt, tlsCert: cert, log: () => undefined }),
    /--tls-cert and --tls-key go together/,
  );
  const h = await startHttpServer({
    listen: "127.0.0.1:0",
    runtime: rt,
    tlsCert: cert,
    tlsKey: key,
    log: () => undefined,
  });
  try {
    assert.match(h.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const https = await import("node:https");
    const ca = await readFile(cert);
    const status = await new Promise<number>((resolve, reject) =>
      https
        .get(`${h.url}/healthz`, { ca }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
        .on("error", reject),
    );
    assert.equal(status, 200);
  } finally {
    await h.close(1000);
  }
});

test("git seeds over HTTP: off unless --allow-repo-seeds, then https only (no file://, no credentials)", async () => {
  const rt = await runtime();
  const { TenantGate } = await import("../../src/tenants/tenancy.js");
  const { TransferStore } = await import("../../src/tenants/transfers.js");
  const { getOperation } = await import("../../src/operations/table.js");
  const transfers = new TransferStore(`${rt.paths.stateDir}/remote`);
  const tenant = {
    id: "tok_0123456789abcdef",
    name: "t",
    limits: { max_sandboxes: null, max_mem_mib: null },
  };
  const op = getOperation("workspace_create");
  const never = async () => assert.fail("the operation must not run");
  const off = new TenantGate(rt, transfers, [], false).for(tenant);
  await assert.rejects(
    off.run(op, { seed_path: "git:https://example.com/r.git" }, {}, never),
    /does not seed from git URLs/,
  );
  const on = new TenantGate(rt, transfers, [], true).for(tenant);
  for (const bad of [
    "git:file:///etc",
    "git:http://example.com/r.git",
    "git:https://u:p@example.com/r.git",
    "git:https://x/r.git#a b",
  ])
    await assert.rejects(
      on.run(op, { seed_path: bad }, {}, never),
      /is not git:https:\/\/HOST\/PATH\[#REF\]/,
      bad,
    );
});
