import assert from "node:assert/strict";
import { readFile, rm, stat } from "node:fs/promises";
import { after, test } from "node:test";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { Pyro, type PyroError } from "../../src/index.js";
import { parseListen, startHttpServer } from "../../src/remote/http.js";
import { TokenStore } from "../../src/remote/tokens.js";
import { Runtime } from "../../src/runtime/runtime.js";
import { tempDir } from "../helpers.js";

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

test("HTTP with --tls-cert/--tls-key: HTTPS with the given certificate; one without the other is refused", async () => {
  const rt = await runtime();
  const dir = await tempDir("pyro-remote-tls-");
  dirs.push(dir);
  const cert = `${dir}/cert.pem`;
  const key = `${dir}/key.pem`;
  const { execFileSync } = await import("node:child_process");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-keyout",
      key,
      "-out",
      cert,
    ],
    { stdio: "ignore" },
  );
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
  const { TenantGate } = await import("../../src/remote/tenancy.js");
  const { TransferStore } = await import("../../src/remote/transfers.js");
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
