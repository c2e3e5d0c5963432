import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { after, test } from "node:test";
import { Client } from "@modelcontextprotocol/client";
import { InMemoryTransport, type ServerContext } from "@modelcontextprotocol/server";
import * as z from "zod";
import { InflightCalls } from "../../src/mcp/inflight.js";
import { callOperation, createServer, mcpOperations } from "../../src/mcp/server.js";
import type { Operation } from "../../src/operations/table.js";
import { Runtime } from "../../src/runtime/runtime.js";
import { tempDir } from "../helpers.js";

/**
 * The registry `notifications/cancelled` goes through (src/mcp/inflight.ts): over HTTP the
 * cancel reaches another McpServer instance than the one running the call.
 */

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

test("a cancel ends the call of its scope and id only; an id two calls of a scope share is ambiguous", () => {
  const calls = new InflightCalls();
  const a = calls.register("tok_a/s1", 3);
  const b = calls.register("tok_a/s2", 3);
  const c = calls.register("tok_b/s1", 3);
  assert.equal(calls.cancel("tok_a/s1", 4), 0, "another id");
  assert.equal(calls.cancel("tok_a/s1", "3"), 0, 'ids compare as sent: 3 is not "3"');
  assert.equal(calls.cancel("tok_a/s1", 3, "user stop"), 1);
  assert.equal(a.signal.aborted, true);
  assert.equal(a.signal.reason, "user stop");
  assert.equal(b.signal.aborted || c.signal.aborted, false, "other sessions and tenants untouched");
  assert.equal(calls.cancel("tok_a/s1", 3), 0, "a call is cancelled once");

  // Two clients without a session id in one tenant, both with a request 7: neither is ended.
  const d = calls.register("tok_a/", 7);
  const e = calls.register("tok_a/", 7);
  assert.equal(calls.cancel("tok_a/", 7), 0);
  assert.equal(d.signal.aborted || e.signal.aborted, false);
  e.done();
  assert.equal(calls.cancel("tok_a/", 7), 1, "once only one is left, it is the one");
  assert.equal(d.signal.aborted, true);
});

test("the call's signal follows the SDK's (a disconnect), and done() unregisters it", () => {
  const calls = new InflightCalls();
  const sdk = new AbortController();
  const r = calls.register("connection", 1, sdk.signal);
  assert.equal(calls.size, 1);
  sdk.abort(new Error("Connection closed"));
  assert.equal(r.signal.aborted, true);
  r.done();
  assert.equal(calls.size, 0);
  const already = new AbortController();
  already.abort();
  assert.equal(calls.register("connection", 2, already.signal).signal.aborted, true);
});

test("the SDK still has the cancel handling routeCancels chains to (so stdio sends no response for a cancelled call)", async () => {
  const home = await tempDir("pyro-inflight-unit-");
  dirs.push(home);
  const rt = new Runtime({
    env: { ...process.env, PYRO_HOME: home, PYRO_CACHE_DIR: "", PYRO_STATE_DIR: "" },
  });
  const server = createServer({ runtime: rt, log: () => undefined });
  assert.equal(typeof (server.server as unknown as { _oncancel?: unknown })._oncancel, "function");
});

test("notifications/cancelled received by one server instance ends a call another instance runs (HTTP's per-request servers)", async () => {
  const home = await tempDir("pyro-inflight-unit-");
  dirs.push(home);
  const rt = new Runtime({
    env: { ...process.env, PYRO_HOME: home, PYRO_CACHE_DIR: "", PYRO_STATE_DIR: "" },
  });
  const calls = new InflightCalls();
  let seen: AbortSignal | undefined;
  const waits: Operation = {
    ...(mcpOperations()[0] as Operation),
    name: "fake_wait",
    input: z.object({}),
    result: z.object({}),
    handler: async (_rt, _i, ctx) => {
      seen = ctx.signal;
      await new Promise((_, reject) =>
        ctx.signal?.addEventListener("abort", () => reject(new Error("stopped")), { once: true }),
      );
      return {};
    },
  };
  const sdkSignal = new AbortController().signal;
  const ctx = { mcpReq: { id: 5, method: "tools/call", signal: sdkSignal, notify: async () => undefined } };
  const served = { inflight: { calls, scope: "tok_a/s1" } };
  const running = callOperation(
    rt,
    waits,
    {},
    ctx as unknown as ServerContext,
    () => undefined,
    {},
    undefined,
    served,
  );
  // invoke validates and reaps before the handler runs: wait (bounded) until it does.
  for (const deadline = Date.now() + 10_000; !seen && Date.now() < deadline; )
    await new Promise((r) => setTimeout(r, 10));
  assert.ok(seen && !seen.aborted, "the call is running");

  // Another instance, as the next POST gets, of another client session: the cancel does not reach.
  const cancelFrom = async (scope: string) => {
    const other = createServer({ runtime: rt, log: () => undefined, inflight: { calls, scope } });
    const [a, b] = InMemoryTransport.createLinkedPair();
    await other.connect(a);
    const client = new Client({ name: "unit", version: "0" });
    await client.connect(b);
    await client.notification({
      method: "notifications/cancelled",
      params: { requestId: 5, reason: "stop" },
    });
    await new Promise((r) => setTimeout(r, 50));
    await client.close();
  };
  await cancelFrom("tok_a/s2");
  assert.equal(seen.aborted, false, "another session's cancel of its own request 5");
  await cancelFrom("tok_a/s1");
  assert.equal(seen.aborted, true);
  const r = await running;
  assert.equal(r.isError, true);
  assert.equal(calls.size, 0, "the ended call is unregistered");
});
