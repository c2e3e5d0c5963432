import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { Pyro } from "../../src/index.js";
import { CLI, REPO, withGvisorState } from "../helpers.js";

/**
 * The output pipeline end to end: live streaming on the CLI and in the SDK, byte-exact
 * binary output, the bounded view over MCP with the full output paged back, and progress
 * that keeps a 60 s client timeout from firing on a longer command.
 */

type ToolResult = {
  content?: { type: string; text?: string }[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
};

/** Runs the CLI, keeping stdout as raw chunks with their arrival times. */
function runCliChunks(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; chunks: { at: number; data: Buffer }[]; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env,
      cwd: REPO,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const chunks: { at: number; data: Buffer }[] = [];
    let stderr = "";
    child.stdout.on("data", (data: Buffer) => chunks.push({ at: performance.now(), data }));
    child.stderr.on("data", (c) => {
      stderr += c;
    });
    child.on("close", (code) => resolve({ code, chunks, stderr }));
  });
}

async function mcpClient(env: NodeJS.ProcessEnv): Promise<Client> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    // workspace_logs is a workspace-full tool.
    args: [CLI, "mcp", "serve", "--profile", "workspace-full"],
    env: Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined)),
    cwd: REPO,
    stderr: "pipe",
  });
  const client = new Client({ name: "pyro-output-e2e", version: "0.0.0" });
  await client.connect(transport);
  return client;
}

test("CLI streams output live: the first line arrives before the command ends", async (t) => {
  await withGvisorState(t, async ({ env }) => {
    const r = await runCliChunks(["run", "debian:12", "--", "sh", "-c", "echo a; sleep 2; echo b"], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(Buffer.concat(r.chunks.map((c) => c.data)).toString(), "a\nb\n");
    const atA = r.chunks.find((c) => c.data.includes("a"))!.at;
    const atB = r.chunks.find((c) => c.data.includes("b"))!.at;
    assert.ok(atB - atA >= 1500, `a arrived ${Math.round(atB - atA)} ms before b; expected about 2 s`);
  });
});

test("binary output: byte-exact on the plain CLI, base64 with its encoding in --json", async (t) => {
  await withGvisorState(t, async ({ env }) => {
    const bytes = Buffer.from([0xff, 0xfe, 0x00, 0x78, 0xc3]);
    const cmd = ["sh", "-c", "printf '\\377\\376\\000x\\303'; printf 'plain' >&2"];
    const plain = await runCliChunks(["run", "debian:12", "--", ...cmd], env);
    assert.equal(plain.code, 0, plain.stderr);
    assert.deepEqual(Buffer.concat(plain.chunks.map((c) => c.data)), bytes);
    const json = await runCliChunks(["run", "debian:12", "--json", "--", ...cmd], env);
    const j = JSON.parse(Buffer.concat(json.chunks.map((c) => c.data)).toString()) as Record<string, unknown>;
    assert.equal(j.stdout_encoding, "base64");
    assert.deepEqual(Buffer.from(String(j.stdout), "base64"), bytes);
    assert.equal(j.stdout_bytes, 5);
    assert.equal(j.stderr_encoding, "utf-8");
    assert.equal(j.stderr, "plain");
  });
});

test("SDK: onStdout/onStderr receive Buffer chunks as they come; the result is the same output", async (t) => {
  await withGvisorState(t, async ({ env }) => {
    const pyro = new Pyro({ env });
    const out: { at: number; chunk: Buffer }[] = [];
    const err: Buffer[] = [];
    const r = await pyro.runInVm(
      { command: "echo one; echo warn >&2; sleep 1; echo two" },
      { onStdout: (chunk) => out.push({ at: performance.now(), chunk }), onStderr: (c) => err.push(c) },
    );
    assert.equal(r.exit_code, 0);
    assert.ok(out.every((c) => Buffer.isBuffer(c.chunk)));
    assert.equal(Buffer.concat(out.map((c) => c.chunk)).toString(), "one\ntwo\n");
    assert.ok(out.length >= 2, "two writes a second apart arrive as separate chunks");
    assert.ok(out[out.length - 1]!.at - out[0]!.at >= 800);
    assert.equal(Buffer.concat(err).toString(), "warn\n");
    assert.equal(r.stdout, "one\ntwo\n");
    assert.equal(r.stdout_omitted_bytes, 0);
  });
});

test("MCP: 5 MB of output gives a result under 64 KiB (head, tail, omitted count); output_read pages all of it", async (t) => {
  await withGvisorState(t, async ({ env }) => {
    const client = await mcpClient(env);
    try {
      const script = "echo START; head -c 5000000 /dev/zero | tr '\\0' a; echo; echo END";
      const expected = `START\n${"a".repeat(5_000_000)}\nEND\n`;
      const r = (await client.callTool({ name: "vm_run", arguments: { command: script } })) as ToolResult;
      assert.notEqual(r.isError, true, JSON.stringify(r.content));
      const size =
        Buffer.byteLength(JSON.stringify(r.content)) + Buffer.byteLength(JSON.stringify(r.structuredContent));
      assert.ok(size < 64 * 1024, `result is ${size} bytes`);
      const sc = r.structuredContent!;
      const stdout = String(sc.stdout);
      assert.ok(stdout.startsWith("START\naaaa"), "head kept");
      assert.ok(stdout.endsWith("aaaa\nEND\n"), "tail kept");
      assert.equal(sc.stdout_bytes, expected.length);
      assert.ok(Number(sc.stdout_omitted_bytes) > 4_900_000);
      assert.match(
        stdout,
        new RegExp(`\\n\\[pyro: ${sc.stdout_omitted_bytes} bytes omitted; read it with output_read`),
      );
      const text = r.content!.map((c) => c.text ?? "").join("\n");
      assert.match(text, /omitted in the middle/);
      assert.ok(!text.includes(JSON.stringify(sc)), "the text is not a copy of structuredContent");

      const pages: string[] = [];
      let offset = 0;
      for (;;) {
        const p = (await client.callTool({
          name: "output_read",
          arguments: { output_id: sc.output_id, offset, limit: 1024 * 1024 },
        })) as ToolResult;
        assert.notEqual(p.isError, true, JSON.stringify(p.content));
        const page = p.structuredContent!;
        assert.equal(page.encoding, "utf-8");
        pages.push(String(page.data));
        offset = Number(page.next_offset);
        if (page.eof) break;
        assert.ok(pages.length < 10, "paging ends");
      }
      assert.equal(pages.length, 5);
      assert.ok(pages.join("") === expected, "the pages join up into the exact output");
    } finally {
      await client.close();
    }
  });
});

test("MCP: a 70 s command completes under a 60 s client timeout that progress resets", async (t) => {
  await withGvisorState(t, async ({ env }) => {
    const client = await mcpClient(env);
    try {
      const progress: { progress: number; message?: string }[] = [];
      const r = (await client.callTool(
        { name: "vm_run", arguments: { command: "echo started; sleep 70; echo done", timeout_seconds: 120 } },
        undefined,
        { timeout: 60_000, resetTimeoutOnProgress: true, onprogress: (p) => progress.push(p) },
      )) as ToolResult;
      assert.notEqual(r.isError, true, JSON.stringify(r.content));
      assert.equal(r.structuredContent!.exit_code, 0);
      assert.equal(r.structuredContent!.stdout, "started\ndone\n");
      assert.ok(progress.length >= 10, `${progress.length} progress notifications in 70 s`);
      assert.ok(progress.some((p) => /^\d+ s elapsed; last output: started$/.test(p.message ?? "")));
    } finally {
      await client.close();
    }
  });
});

test("MCP: workspace_logs after chatty commands stays small; output only on request, bounded; full output pages", async (t) => {
  await withGvisorState(t, async ({ env }) => {
    const client = await mcpClient(env);
    let ws: string | undefined;
    try {
      const created = (await client.callTool({ name: "workspace_create", arguments: {} })) as ToolResult;
      ws = String(created.structuredContent!.workspace_id);
      for (let i = 1; i <= 3; i++) {
        const r = (await client.callTool({
          name: "workspace_exec",
          arguments: {
            workspace_id: ws,
            command: `seq 1 300000; echo done-${i} >&2`,
            max_output_bytes: 2048,
          },
        })) as ToolResult;
        const sc = r.structuredContent!;
        assert.equal(sc.output_id, `${ws}:${i}`);
        assert.ok(Buffer.byteLength(String(sc.stdout)) < 2048 + 200, "max_output_bytes lowers the budget");
        assert.equal(sc.stderr, `done-${i}\n`, "a small stream is whole; the other takes the rest");
      }
      const size = (r: ToolResult) =>
        Buffer.byteLength(JSON.stringify(r.content)) + Buffer.byteLength(JSON.stringify(r.structuredContent));
      const plain = (await client.callTool({
        name: "workspace_logs",
        arguments: { workspace_id: ws },
      })) as ToolResult;
      const entries = plain.structuredContent!.commands as Record<string, unknown>[];
      assert.equal(entries.length, 3);
      assert.ok(
        entries.every((e) => !("stdout" in e)),
        "no output by default",
      );
      assert.equal(entries[0]!.stdout_bytes, 1_988_895);
      assert.ok(size(plain) < 4096, `logs without output: ${size(plain)} bytes`);
      const withOut = (await client.callTool({
        name: "workspace_logs",
        arguments: { workspace_id: ws, include_output: true, limit: 2 },
      })) as ToolResult;
      const two = withOut.structuredContent!.commands as Record<string, unknown>[];
      assert.deepEqual(
        two.map((e) => e.sequence),
        [2, 3],
      );
      assert.ok(two.every((e) => Number(e.stdout_omitted_bytes) > 1_900_000));
      assert.ok(size(withOut) < 64 * 1024, `logs with output: ${size(withOut)} bytes`);
      const page = (await client.callTool({
        name: "output_read",
        arguments: { output_id: `${ws}:2`, offset: 1_988_895 - 7, limit: 100 },
      })) as ToolResult;
      assert.equal(page.structuredContent!.data, "300000\n");
      assert.equal(page.structuredContent!.eof, true);
    } finally {
      if (ws) await client.callTool({ name: "workspace_delete", arguments: { workspace_id: ws } });
      await client.close();
    }
  });
});
