import assert from "node:assert/strict";
import { test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import {
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { CLI, type TestState, tempDir, withGvisorState } from "../helpers.js";
import { createToken, type Json, mcpClient, ok, startHttpServer } from "../remote-helpers.js";

/**
 * Issue 27: the MCP capabilities beside tools. Workspace files are resources
 * (`pyro://workspace/{workspace}/file/{+path}`): listed, read as text, and subscribed to, a
 * host hearing `notifications/resources/updated` when the file changes; completions offer
 * workspace names and ids, environments and paths; `logging/setLevel` filters the log
 * messages a tool call sends. Over HTTP, each tenant's resources and completions show only
 * its own workspaces.
 */

function stringEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

async function until<T>(what: string, f: () => T | undefined, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("stdio: workspace files as resources (list, read, subscribe → updated on edit), completions, logging levels", async (t) => {
  await withGvisorState(
    t,
    async (c: TestState) => {
      const cwd = await tempDir("pyro-res-cwd-");
      const transport = new StdioClientTransport({
        command: process.execPath,
        args: [CLI, "mcp", "serve", "--profile", "workspace-full", "--no-project"],
        env: stringEnv(c.env),
        cwd,
        stderr: "pipe",
      });
      const client = new Client({ name: "pyro-res", version: "0.0.0" });
      const updates: string[] = [];
      const logs: Json[] = [];
      client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
        updates.push(n.params.uri);
      });
      client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
        logs.push(n.params);
      });
      await client.connect(transport);
      const call = async (name: string, args: Json) => {
        const r = (await client.callTool({ name, arguments: args }, undefined, { timeout: 300_000 })) as Json;
        assert.ok(!r.isError, `${name}: ${JSON.stringify(r.content)}`);
        return r.structuredContent as Json;
      };
      let ws: string | undefined;
      try {
        const caps = client.getServerCapabilities();
        assert.deepEqual(caps?.resources, { subscribe: true, listChanged: false });
        assert.ok(caps?.completions && caps.logging, "completions and logging are declared");

        const created = await call("workspace_create", { environment: "debian:12", name: "resdemo" });
        ws = String(created.workspace_id);
        await call("workspace_file_write", {
          workspace_id: ws,
          path: "src/app.py",
          content: "print('v1')\n",
        });

        const templates = await client.listResourceTemplates();
        assert.equal(
          templates.resourceTemplates[0]?.uriTemplate,
          "pyro://workspace/{workspace}/file/{+path}",
        );
        const listed = await client.listResources();
        const uri = `pyro://workspace/${ws}/file/src/app.py`;
        const entry = listed.resources.find((r) => r.uri === uri);
        assert.ok(entry, `resources/list has ${uri}: ${JSON.stringify(listed.resources)}`);
        assert.equal(entry.name, "resdemo:src/app.py");

        // By name too: the name resolves as in any tool.
        const read = await client.readResource({ uri: "pyro://workspace/resdemo/file/src/app.py" });
        assert.deepEqual(read.contents[0], {
          uri: "pyro://workspace/resdemo/file/src/app.py",
          mimeType: "text/x-python",
          text: "print('v1')\n",
        });

        // Completions: workspace name and id, environments, paths below what was typed.
        const ref = { type: "ref/resource" as const, uri: "pyro://workspace/{workspace}/file/{+path}" };
        const wsc = await client.complete({ ref, argument: { name: "workspace", value: "res" } });
        assert.deepEqual(wsc.completion.values, ["resdemo"]);
        const idc = await client.complete({ ref, argument: { name: "workspace", value: ws.slice(0, 6) } });
        assert.ok(idc.completion.values.includes(ws), JSON.stringify(idc));
        const envc = await client.complete({ ref, argument: { name: "environment", value: "debian" } });
        assert.ok(envc.completion.values.includes("debian:12"), JSON.stringify(envc));
        const pathc = await client.complete({
          ref,
          argument: { name: "path", value: "src/a" },
          context: { arguments: { workspace: "resdemo" } },
        });
        assert.deepEqual(pathc.completion.values, ["src/app.py"]);

        // Subscribe, edit through a tool, and hear about it (polled every 200 ms here).
        await client.subscribeResource({ uri });
        await new Promise((r) => setTimeout(r, 600));
        assert.equal(updates.length, 0, "no update before the file changes");
        await call("workspace_file_write", {
          workspace_id: ws,
          path: "src/app.py",
          content: "print('v2 longer')\n",
        });
        await until("notifications/resources/updated", () => (updates.includes(uri) ? true : undefined));
        await client.unsubscribeResource({ uri });

        // Logging: a failing call logs an error; at level "critical" it does not.
        await client.setLoggingLevel("error");
        await client.callTool({ name: "workspace_status", arguments: { workspace_id: "no-such-ws" } });
        await until("an error log", () => (logs.some((l) => l.level === "error") ? true : undefined));
        const n = logs.length;
        await client.setLoggingLevel("critical");
        await client.callTool({ name: "workspace_status", arguments: { workspace_id: "no-such-ws" } });
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(logs.length, n, "below the level set, nothing is logged");
      } finally {
        if (ws) await call("workspace_delete", { workspace_id: ws }).catch(() => undefined);
        await client.close();
      }
    },
    { PYRO_MCP_RESOURCE_POLL_MS: "200" },
  );
});

test("HTTP: a tenant's resources and completions show only its own workspaces", async (t) => {
  await withGvisorState(t, async (c: TestState) => {
    const a = await createToken(c.env, "res-a");
    const b = await createToken(c.env, "res-b");
    const server = await startHttpServer(c.env, ["--profile", "workspace-full"]);
    const A = await mcpClient(server.url, a.token);
    const B = await mcpClient(server.url, b.token);
    let ws: string | undefined;
    try {
      ws = String(
        ok(await A.call("workspace_create", { environment: "debian:12", name: "secret" })).workspace_id,
      );
      ok(await A.call("workspace_file_write", { workspace_id: ws, path: "key.txt", content: "A's\n" }));
      const uri = `pyro://workspace/${ws}/file/key.txt`;
      assert.ok((await A.client.listResources()).resources.some((r) => r.uri === uri));
      assert.equal((await B.client.listResources()).resources.length, 0, "B lists none of A's files");
      await assert.rejects(B.client.readResource({ uri }), /no workspace with id/);
      await assert.rejects(
        B.client.readResource({ uri: "pyro://workspace/secret/file/key.txt" }),
        /no workspace named/,
      );
      const ref = { type: "ref/resource" as const, uri: "pyro://workspace/{workspace}/file/{+path}" };
      assert.deepEqual(
        (
          await A.client.complete({ ref, argument: { name: "workspace", value: "" } })
        ).completion.values.sort(),
        ["secret", ws].sort(),
      );
      assert.deepEqual(
        (await B.client.complete({ ref, argument: { name: "workspace", value: "" } })).completion.values,
        [],
      );
      assert.deepEqual(
        (
          await B.client.complete({
            ref,
            argument: { name: "path", value: "" },
            context: { arguments: { workspace: ws } },
          })
        ).completion.values,
        [],
      );
    } finally {
      if (ws) await A.call("workspace_delete", { workspace_id: ws });
      await A.client.close();
      await B.client.close();
      await server.stop();
    }
  });
});
