import assert from "node:assert/strict";
import { lstat, readlink } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import {
  CLI,
  runCli,
  runCliJson,
  runscList,
  sandboxProcesses,
  type TestState,
  withGvisorState,
} from "../helpers.js";
import { createToken, mcpClient, ok, startHttpServer } from "../remote-helpers.js";

/**
 * Issue 31, under load and faults: a lock whose owner was SIGKILLed does not hold up the next
 * delete, and lists keep answering (quickly) while workspaces are deleted under them.
 */

async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, every = 200): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, every));
  }
  return cond();
}

test("the HTTP server SIGKILLed holding a workspace's lock: the next delete takes under 3 s", async (t) => {
  await withGvisorState(t, async (c: TestState) => {
    const { token } = await createToken(c.env, "locks");
    const server = await startHttpServer(c.env, ["--profile", "workspace-full"]);
    let killed = false;
    try {
      const { client, call } = await mcpClient(server.url, token);
      const ws = ok(await call("workspace_create", {})).workspace_id as string;
      // What a delete costs here and now, without any lock in the way (~2.4 s unloaded,
      // mostly runsc waiting for the sandbox to exit): the bar is 3 s, or this plus 1 s on a
      // machine so loaded that a plain delete alone takes longer.
      const plain = ok(await call("workspace_create", {})).workspace_id as string;
      const b0 = performance.now();
      assert.equal((await runCli(["workspace", "delete", plain], { env: c.env })).code, 0);
      const baseline = performance.now() - b0;
      const lock = join(c.stateDir, "workspaces", ws, "workspace.json.lock");
      // The delete takes the record's lock and holds it while the sandbox goes (~2 s):
      // kill the server as soon as the lock appears.
      const deleting = call("workspace_delete", { workspace_id: ws }).catch((e: Error) => e);
      const seen = await waitFor(
        async () => (await lstat(lock).catch(() => undefined)) !== undefined,
        60_000,
        5,
      );
      assert.ok(seen, "the delete never took the workspace's lock");
      server.proc.kill("SIGKILL");
      killed = true;
      await server.stop();
      await deleting;
      await client.close().catch(() => undefined);
      // The server died inside the locked section: its lock is still there.
      assert.ok(await lstat(lock).catch(() => undefined), "the lock outlived its dead owner");
      const owner = await readlink(lock).catch(() => "");
      if (owner) assert.match(owner, new RegExp(`^pyro-lock:${server.proc.pid}:`), "the dead server owns it");

      const t0 = performance.now();
      const del = await runCliJson<{ deleted: boolean }>(["workspace", "delete", ws], { env: c.env });
      const ms = performance.now() - t0;
      t.diagnostic(
        `delete after the kill: ${(ms / 1000).toFixed(2)} s (a plain delete: ${(baseline / 1000).toFixed(2)} s)`,
      );
      assert.equal(del.code, 0, del.stderr);
      assert.equal(del.json.deleted, true);
      const bar = Math.max(3000, baseline + 1000);
      assert.ok(ms < bar, `the delete after the kill took ${(ms / 1000).toFixed(1)} s (bar ${bar / 1000} s)`);
      assert.deepEqual(await runscList(c.stateDir), [], "no runsc container left");
      assert.ok(
        await waitFor(() => sandboxProcesses(c.stateDir).length === 0, 5_000),
        "sandbox processes left",
      );
      const listed = await runCliJson<{ workspaces: unknown[] }>(["workspace", "list"], { env: c.env });
      assert.deepEqual(listed.json.workspaces, []);
    } finally {
      if (!killed) await server.stop();
    }
  });
});

const secs = (ms: number[]) => (Math.max(...ms) / 1000).toFixed(2);

test("lists hold while workspaces are deleted concurrently from other processes", async (t) => {
  await withGvisorState(t, async (c: TestState) => {
    const N = 4;
    const ids: string[] = [];
    for (let i = 0; i < N; i++) {
      const r = await runCliJson<{ workspace_id: string }>(["workspace", "create", "debian:12"], {
        env: c.env,
      });
      assert.equal(r.code, 0, r.stderr);
      ids.push(r.json.workspace_id);
    }
    const keep = ids.shift()!; // one stays, to be listed throughout

    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [CLI, "mcp", "serve"],
      env: Object.fromEntries(
        Object.entries(c.env).filter((e): e is [string, string] => typeof e[1] === "string"),
      ),
      stderr: "pipe",
    });
    const client = new Client({ name: "pyro-locks-test", version: "0.0.0" });
    await client.connect(transport);
    try {
      const failures: string[] = [];
      const cliTimes: number[] = [];
      const mcpTimes: number[] = [];
      let done = false;
      const cliLists = (async () => {
        let n = 0;
        while (!done || n < 3) {
          const t0 = performance.now();
          const r = await runCli(["workspace", "list", "--json"], { env: c.env });
          cliTimes.push(performance.now() - t0);
          n++;
          if (r.code !== 0) failures.push(`cli list (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
          else if (
            !(JSON.parse(r.stdout).workspaces as { workspace_id: string }[]).some(
              (w) => w.workspace_id === keep,
            )
          )
            failures.push("cli list lost the workspace nobody deletes");
        }
        return n;
      })();
      const mcpLists = (async () => {
        let n = 0;
        while (!done || n < 3) {
          const t0 = performance.now();
          const r = (await client.callTool({ name: "workspace_list", arguments: {} })) as {
            isError?: boolean;
            content?: { text?: string }[];
          };
          mcpTimes.push(performance.now() - t0);
          n++;
          if (r.isError) failures.push(`mcp workspace_list: ${r.content?.map((x) => x.text).join(" ")}`);
          await new Promise((res) => setTimeout(res, 50)); // a client's pace, not a busy loop
        }
        return n;
      })();
      // Each delete in its own process, all at once, while the lists run.
      await new Promise((r) => setTimeout(r, 300));
      const dels = await Promise.all(ids.map((id) => runCli(["workspace", "delete", id], { env: c.env })));
      // A few more lists after the deletes (the loops run at least 3 times each).
      await new Promise((r) => setTimeout(r, 500));
      done = true;
      const [nCli, nMcp] = await Promise.all([cliLists, mcpLists]);
      t.diagnostic(
        `${nCli} cli lists (slowest ${secs(cliTimes)} s), ${nMcp} mcp (slowest ${secs(mcpTimes)} s), ${failures.length} failed`,
      );
      for (const d of dels) assert.equal(d.code, 0, d.stderr);
      assert.deepEqual(failures, [], `${failures.length} of ${nCli + nMcp} lists failed`);
      const slowest = Math.max(...cliTimes, ...mcpTimes);
      // Unloaded a list takes ~0.2 s (the CLI's ~0.4 s with node's start-up); four deletes and
      // their runsc processes on two shared cores make that 2-3 s. Waiting on a delete's lock
      // made it 20 s and more.
      assert.ok(slowest < 5000, `the slowest list took ${(slowest / 1000).toFixed(1)} s`);
      const after = await runCliJson<{ workspaces: { workspace_id: string }[] }>(["workspace", "list"], {
        env: c.env,
      });
      assert.deepEqual(
        after.json.workspaces.map((w) => w.workspace_id),
        [keep],
        "the deleted workspaces are gone, the other one listed",
      );
      assert.equal((await runCli(["workspace", "delete", keep], { env: c.env })).code, 0);
    } finally {
      await client.close().catch(() => undefined);
    }
  });
});
