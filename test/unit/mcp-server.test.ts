import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { after, test } from "node:test";
import { Client } from "@modelcontextprotocol/client";
import { InMemoryTransport, type ServerContext } from "@modelcontextprotocol/server";
import * as z from "zod";
import { PyroError } from "../../src/core/errors.js";
import { progressReporter } from "../../src/mcp/progress.js";
import { renderContent, renderError, renderExec, renderResult } from "../../src/mcp/render.js";
import {
  cachedToolJsonSchemaCount,
  callOperation,
  createServer,
  mcpOperations,
} from "../../src/mcp/server.js";
import type { Operation } from "../../src/operations/table.js";
import { toolInputJsonSchema } from "../../src/operations/tool-schema.js";
import { Runtime } from "../../src/runtime/runtime.js";
import { tempDir } from "../helpers.js";

/** In-process checks of the MCP layer: no engine, no child process. */

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function runtime(): Promise<Runtime> {
  const home = await tempDir("pyro-mcp-unit-");
  dirs.push(home);
  return new Runtime({ env: { ...process.env, PYRO_HOME: home, PYRO_CACHE_DIR: "", PYRO_STATE_DIR: "" } });
}

function fakeCtx(meta?: Record<string, unknown>, sent: unknown[] = []): ServerContext {
  return {
    mcpReq: {
      id: 1,
      method: "tools/call",
      _meta: meta,
      signal: new AbortController().signal,
      notify: async (n: unknown) => {
        sent.push(n);
      },
    },
  } as unknown as ServerContext;
}

const exec = {
  environment: "debian:12",
  exit_code: 124,
  stdout: "partial",
  stderr: "",
  stdout_truncated: true,
  stderr_truncated: false,
  timed_out: true,
  duration_ms: 5012,
  execution_mode: "gvisor",
};

test("renderExec leads with the exit code and flags truncation and timeouts", () => {
  const out = renderExec(exec);
  assert.match(out, /^exit_code: 124 TIMED OUT/);
  assert.match(out, /stdout \(truncated\):\npartial\n/);
  assert.match(out, /stderr: \(empty\)/);
  assert.match(
    renderExec({ ...exec, workspace_id: "ws_0123456789abcdef", sequence: 4 }),
    /workspace ws_0123456789abcdef #4/,
  );
});

test("renderResult gives a summary line and compact JSON for small non-exec results", () => {
  const out = renderResult("workspace_delete", { workspace_id: "ws_0123456789abcdef", deleted: true });
  assert.equal(out.split("\n")[0], "ws_0123456789abcdef deleted");
  assert.deepEqual(JSON.parse(out.slice(out.indexOf("\n") + 1)), {
    workspace_id: "ws_0123456789abcdef",
    deleted: true,
  });
  const big = renderResult("vm_list_environments", {
    environments: Array(200).fill({ name: "x".repeat(50) }),
  });
  assert.equal(big, "200 environment(s) (details in structuredContent)");
});

test("the text of a result leaves out nulls; structuredContent keeps them", async () => {
  const created = {
    workspace_id: "ws_0123456789abcdef",
    state: "running",
    environment: "debian:12",
    expires_at: "2026-12-07T11:00:00.000Z",
    name: null,
    reason: null,
    network_info: null,
    last_command: null,
    command_count: 0,
  };
  const out = renderResult("workspace_create", created);
  assert.doesNotMatch(out, /null/);
  assert.deepEqual(JSON.parse(out.slice(out.indexOf("\n") + 1)), {
    workspace_id: "ws_0123456789abcdef",
    state: "running",
    environment: "debian:12",
    expires_at: "2026-12-07T11:00:00.000Z",
    command_count: 0,
  });
  // Through callOperation: the text drops them, structuredContent has every field.
  const rt = await runtime();
  const base = mcpOperations()[0] as Operation;
  const op: Operation = {
    ...base,
    name: "fake",
    input: z.object({}),
    result: z.object({ a: z.number(), b: z.string().nullable() }),
    handler: async () => ({ a: 1, b: null }),
  };
  const r = await callOperation(rt, op, {}, fakeCtx());
  assert.deepEqual(r.structuredContent, { a: 1, b: null });
  assert.doesNotMatch(JSON.stringify(r.content), /null/);
});

test("workspace_file_read's text is the file itself, not a JSON string of it", () => {
  const file = {
    workspace_id: "ws_0123456789abcdef",
    path: "src/calc.py",
    encoding: "utf-8",
    content: 'def add(a, b):\n    return a - b  # "bug"\n',
    bytes: 42,
    binary: false,
    offset: 1,
    lines: 2,
    truncated: false,
    next_offset: null,
  };
  assert.deepEqual(renderContent("workspace_file_read", file), [file.content]);
  // A part of a file says where it stopped and how to read on, in a block of its own.
  const part = renderContent("workspace_file_read", { ...file, lines: 1, truncated: true, next_offset: 2 });
  assert.equal(part[0], file.content);
  assert.equal(part[1], "[pyro: src/calc.py, lines 1-1; read on with offset=2]");
  const bin = renderContent("workspace_file_read", {
    ...file,
    encoding: "base64",
    content: "AAEC",
    binary: true,
  });
  assert.equal(bin.length, 1);
  assert.match(bin[0]!, /^src\/calc\.py: 42 bytes, not text; base64:\nAAEC$/);
  // Other tools: one block, as renderResult gives it.
  assert.deepEqual(
    renderContent("workspace_delete", { workspace_id: "ws_0123456789abcdef", deleted: true }),
    [renderResult("workspace_delete", { workspace_id: "ws_0123456789abcdef", deleted: true })],
  );
});

test("renderExec shows a missing command's hint, and no other notes", () => {
  const out = renderExec({
    ...exec,
    exit_code: 127,
    timed_out: false,
    stderr: "sh: 1: python3: not found\n",
    notes: [
      "gVisor shows the guest at least 2 CPUs (nproc); vcpu_count=1 is enforced as a CPU-time quota",
      "command not found: python3 is not in debian:12; catalog environments that have it: debian:12-build",
    ],
  });
  assert.match(out, /\nhint: command not found: python3 is not in debian:12; .*debian:12-build/);
  assert.doesNotMatch(out, /gVisor shows/);
});

test("renderExec names omitted bytes, base64 streams and how to page the full output", () => {
  const out = renderExec({
    ...exec,
    stdout: "aaa\n[pyro: 10 bytes omitted]\nzzz",
    stdout_bytes: 16,
    stdout_omitted_bytes: 10,
    stderr: "//4=",
    stderr_encoding: "base64",
    stderr_bytes: 2,
    output_id: "vm_0123456789abcdef",
  });
  assert.match(out, /stdout \(16 bytes, 10 omitted in the middle\):/);
  assert.match(out, /stderr \(not valid UTF-8, base64\):\n\/\/4=/);
  assert.match(out, /output_read \{"output_id":"vm_0123456789abcdef"/);
});

test("renderError carries code, message and hint", () => {
  assert.equal(
    renderError(new PyroError("not_found", "no such workspace", "list them")),
    "Error (not_found): no such workspace\nHint: list them",
  );
  assert.equal(renderError(new PyroError("timeout", "too slow")), "Error (timeout): too slow");
});

test("progress is reported only when the client sent a token, with increasing counters", async () => {
  assert.equal(
    progressReporter(fakeCtx(), () => undefined),
    undefined,
  );
  const sent: { params: { progressToken: unknown; progress: number; message: string } }[] = [];
  const rep = progressReporter(fakeCtx({ progressToken: "t1" }, sent), () => undefined, 40);
  assert.ok(rep);
  try {
    rep.callbacks.onProgress?.({ message: "building" });
    rep.callbacks.onProgress?.({ message: "seeding" });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(
      sent.map((n) => [n.params.progressToken, n.params.progress, n.params.message]),
      [
        ["t1", 1, "building"],
        ["t1", 2, "seeding"],
      ],
    );
    // The heartbeat: elapsed time and the latest output line, while the call runs.
    rep.callbacks.onStdout?.(Buffer.from("step 1\nstep 2\n"));
    await new Promise((r) => setTimeout(r, 100));
    const beats = sent.slice(2);
    assert.ok(beats.length >= 1, "a heartbeat was sent");
    assert.match(beats[beats.length - 1]!.params.message, /^\d+ s elapsed; last output: step 2$/);
    const counters = sent.map((n) => n.params.progress);
    assert.deepEqual(
      counters,
      [...counters].sort((a, b) => a - b),
    );
  } finally {
    rep.stop();
  }
  const n = sent.length;
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(sent.length, n, "no heartbeat after stop");
});

test("callOperation strips fields outside the result schema and turns throws into isError", async () => {
  const rt = await runtime();
  const base = mcpOperations()[0] as Operation;
  const extra: Operation = {
    ...base,
    name: "fake",
    input: z.object({}),
    result: z.object({ a: z.number() }),
    handler: async () => ({ a: 1, internal: "x" }),
  };
  const ok = await callOperation(rt, extra, {}, fakeCtx());
  assert.deepEqual(ok.structuredContent, { a: 1 });
  const logged: string[] = [];
  const boom: Operation = { ...extra, handler: async () => Promise.reject(new Error("kaput")) };
  const bad = await callOperation(rt, boom, {}, fakeCtx(), (l) => logged.push(l));
  assert.equal(bad.isError, true);
  assert.match(JSON.stringify(bad.content), /engine_failure.*kaput/);
  assert.equal(logged.length, 1, "unexpected failures are logged for the operator");
});

test("createServer: one tool per mcp operation; errors come back as isError with the hint", async () => {
  const server = createServer({ runtime: await runtime(), log: () => undefined });
  const [a, b] = InMemoryTransport.createLinkedPair();
  await server.connect(a);
  const client = new Client({ name: "unit", version: "0" });
  await client.connect(b);
  try {
    const { tools } = await client.listTools();
    assert.deepEqual(
      tools.map((t) => t.name),
      mcpOperations().map((o) => o.name),
    );
    const r = await client.callTool({ name: "workspace_status", arguments: { workspace_id: "../x" } });
    assert.equal(r.isError, true);
    assert.match(JSON.stringify(r.content), /invalid_argument.*malformed workspace id.*Hint:/);
  } finally {
    await client.close();
    await server.close();
  }
});

test("createServer per request (the HTTP server's idiom) converts each tool schema once per process, and lists the same schemas", async () => {
  const rt = await runtime();
  const list = async (opts: { allowHostCompat?: boolean }) => {
    const server = createServer({ runtime: rt, log: () => undefined, profile: "workspace-full", ...opts });
    const [a, b] = InMemoryTransport.createLinkedPair();
    await server.connect(a);
    const client = new Client({ name: "unit", version: "0" });
    await client.connect(b);
    try {
      return (await client.listTools()).tools;
    } finally {
      await client.close();
      await server.close();
    }
  };
  // Other tests of this file served other profiles (other views of the same tools) already.
  const before = cachedToolJsonSchemaCount();
  const first = await list({});
  // A client that changes what it was given changes nothing the next server publishes.
  (first[0]!.inputSchema as Record<string, unknown>).properties = { tampered: {} };
  for (let i = 0; i < 20; i++) await list({ allowHostCompat: i % 2 === 0 });
  const again = await list({});
  const ops = mcpOperations("workspace-full");
  for (const [i, op] of ops.entries())
    assert.deepEqual(again[i]!.inputSchema, toolInputJsonSchema(op), `${op.name}'s listed schema`);
  // Bounded by tools x option combinations, not by how many servers (requests) there were.
  const added = cachedToolJsonSchemaCount() - before;
  assert.ok(added <= 2 * ops.length, `${added} cached schemas for ${ops.length} tools and 2 option sets`);
});
