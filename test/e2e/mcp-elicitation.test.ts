import assert from "node:assert/strict";
import { test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { CLI, type TestState, tempDir, withGvisorState } from "../helpers.js";
import type { Json } from "../remote-helpers.js";

/**
 * Issue 27: operations the operator marked "ask first" (`--ask-first delete`) are confirmed
 * by the human through MCP elicitation where the client offers it (a "no" runs nothing, a
 * "yes" runs the call), and fall back to the operator's policy (`deny` by default) where the
 * client cannot ask.
 */

function stringEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

async function connect(env: NodeJS.ProcessEnv, answers?: boolean[]) {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, "mcp", "serve", "--profile", "workspace-full", "--no-project", "--ask-first", "delete"],
    env: stringEnv(env),
    cwd: await tempDir("pyro-ask-"),
    stderr: "pipe",
  });
  const client = new Client(
    { name: "pyro-ask", version: "0.0.0" },
    answers ? { capabilities: { elicitation: {} } } : {},
  );
  const asked: string[] = [];
  if (answers)
    client.setRequestHandler(ElicitRequestSchema, async (req) => {
      asked.push(req.params.message);
      const yes = answers.shift() === true;
      return { action: "accept", content: { confirm: yes } };
    });
  await client.connect(transport);
  const call = async (name: string, args: Json) =>
    (await client.callTool({ name, arguments: args }, undefined, { timeout: 300_000 })) as Json;
  return { client, call, asked };
}

test("--ask-first delete: a client without elicitation is refused (fallback deny); one with it asks, and only a yes deletes", async (t) => {
  await withGvisorState(t, async (c: TestState) => {
    const plain = await connect(c.env);
    let ws: string | undefined;
    try {
      const created = await plain.call("workspace_create", { environment: "debian:12" });
      assert.ok(!created.isError, JSON.stringify(created.content));
      ws = String(created.structuredContent.workspace_id);
      const refused = await plain.call("workspace_delete", { workspace_id: ws });
      assert.equal(refused.isError, true);
      assert.equal(refused._meta?.["pyro/error"]?.error?.code, "cancelled");
      assert.match(String(refused.content[0].text), /this client cannot ask/);
      const still = await plain.call("workspace_status", { workspace_id: ws });
      assert.ok(!still.isError, "the workspace is still there");
    } finally {
      await plain.client.close();
    }

    const asking = await connect(c.env, [false, true]);
    try {
      const no = await asking.call("workspace_delete", { workspace_id: ws });
      assert.equal(no.isError, true);
      assert.match(String(no.content[0].text), /did not confirm/);
      assert.equal(asking.asked.length, 1);
      assert.match(asking.asked[0]!, new RegExp(`workspace_delete ${ws}`));
      assert.ok(
        !(await asking.call("workspace_status", { workspace_id: ws })).isError,
        "a no deletes nothing",
      );
      const yes = await asking.call("workspace_delete", { workspace_id: ws });
      assert.ok(!yes.isError, JSON.stringify(yes.content));
      assert.equal(asking.asked.length, 2);
      ws = undefined;
      // Calls that are not ask-first are not asked about.
      assert.ok(!(await asking.call("workspace_list", {})).isError);
      assert.equal(asking.asked.length, 2);
    } finally {
      if (ws) await asking.call("workspace_delete", { workspace_id: ws }).catch(() => undefined);
      await asking.client.close();
    }
  });
});
