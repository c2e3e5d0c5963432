import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import * as tar from "tar";
import { Pyro } from "../../src/index.js";
import { parseTar } from "../../src/workspaces/diff.js";
import { runCli, runscList, type TestState, withGvisorState, withHostDir } from "../helpers.js";
import { createToken, type Json, mcpClient, ok, startHttpServer } from "../remote-helpers.js";

/**
 * Issue 19: pyro over MCP Streamable HTTP. A server started by the test on 127.0.0.1 (port
 * picked by the kernel), driven by the official MCP client (v1 SDK, what desktop clients
 * ship) and by the SDK's remote mode: tokens, 401s, the upload → workspace → download flow,
 * tenants apart, limits, a bounded load, graceful shutdown.
 */

async function upload(url: string, token: string, dir: string): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of tar.c({ cwd: dir, gzip: true }, ["."]) as AsyncIterable<Buffer>) chunks.push(c);
  const res = await fetch(`${url}/uploads`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}` },
    body: Buffer.concat(chunks),
  });
  assert.equal(res.status, 201);
  return ((await res.json()) as { upload_id: string }).upload_id;
}

const initialize = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "0" } },
});
const postMcp = (url: string, headers: Record<string, string> = {}) =>
  fetch(`${url}/mcp`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      ...headers,
    },
    body: initialize,
  });

test("MCP over Streamable HTTP: tokens, upload → workspace → download, tenants apart, limits, shutdown", async (t) => {
  await withGvisorState(t, async (c: TestState) =>
    withHostDir("pyro-remote-", async (host) => {
      const a = await createToken(c.env, "tenant-a");
      const b = await createToken(c.env, "tenant-b", ["--max-sandboxes", "1"]);
      const gone = await createToken(c.env, "revoked");
      const server = await startHttpServer(c.env, ["--profile", "all"]);
      const clients: Client[] = [];
      try {
        // Health needs no token; everything else does.
        assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
        const anon = await postMcp(server.url);
        assert.equal(anon.status, 401);
        assert.match(anon.headers.get("www-authenticate") ?? "", /^Bearer/);
        assert.equal(
          (await postMcp(server.url, { Authorization: "Bearer pyro_tok_0123456789abcdef_x" })).status,
          401,
        );
        await assert.rejects(mcpClient(server.url), "the official client without a token is refused");
        assert.equal((await fetch(`${server.url}/uploads`, { method: "POST", body: "x" })).status, 401);

        // A revoked token: accepted before, refused from the next request on (no restart).
        const rv = await mcpClient(server.url, gone.token);
        clients.push(rv.client);
        ok(await rv.call("vm_list_environments"));
        const rev = await runCli(["token", "revoke", "revoked"], { env: c.env });
        assert.equal(rev.code, 0, rev.stderr);
        assert.equal((await postMcp(server.url, { Authorization: `Bearer ${gone.token}` })).status, 401);
        await assert.rejects(rv.call("workspace_list"), /401|nauthori/);

        // Tenant A: the workspace flow, seeded from an upload, exported as a download.
        const A = await mcpClient(server.url, a.token);
        clients.push(A.client);
        const tools = (await A.client.listTools()).tools.map((x) => x.name);
        assert.ok(tools.includes("workspace_export") && tools.includes("vm_run"));
        const seed = join(host, "seed");
        await mkdir(seed);
        await writeFile(join(seed, "a.txt"), "hello\n");
        const uploadId = await upload(server.url, a.token, seed);
        assert.match(uploadId, /^upl_[0-9a-f]{16}$/);
        const denied = await A.call("workspace_create", { seed_path: seed });
        assert.equal(denied.ok, false, "a server path is refused over HTTP without --allow-path");
        if (!denied.ok) assert.equal(denied.code, "host_path_denied");
        const created = ok(await A.call("workspace_create", { seed_path: `upload:${uploadId}` }));
        assert.equal(
          created.workspace_seed.seed_path,
          `upload:${uploadId}`,
          "the server's own path is not shown",
        );
        const ws = created.workspace_id as string;
        const listed = ok(await A.call("workspace_list")).workspaces;
        assert.equal(listed[0].workspace_seed?.seed_path ?? `upload:${uploadId}`, `upload:${uploadId}`);
        const ex = ok(
          await A.call("workspace_exec", { workspace_id: ws, command: "cat a.txt && echo new > b.txt" }),
        );
        assert.equal(ex.stdout, "hello\n");
        const diff = ok(await A.call("workspace_diff", { workspace_id: ws, name_only: true }));
        assert.deepEqual(
          diff.files.map((f: Json) => [f.path, f.status]),
          [["b.txt", "added"]],
        );
        const exp = ok(await A.call("workspace_export", { workspace_id: ws, output: "download:" }));
        assert.match(exp.output, /^\/downloads\/dl_[0-9a-f]{16}$/);
        assert.equal(exp.files, 2);
        // Another tenant cannot fetch it; its owner can, once.
        assert.equal(
          (await fetch(`${server.url}${exp.output}`, { headers: { Authorization: `Bearer ${b.token}` } }))
            .status,
          404,
        );
        const dl = await fetch(`${server.url}${exp.output}`, {
          headers: { Authorization: `Bearer ${a.token}` },
        });
        assert.equal(dl.status, 200);
        const items = await parseTar(Buffer.from(await dl.arrayBuffer()));
        const names = items
          .filter((i) => i.type === "File")
          .map((i) => i.path.replace(/^\.\//, ""))
          .sort();
        assert.deepEqual(names, ["a.txt", "b.txt"]);
        assert.equal(
          (await fetch(`${server.url}${exp.output}`, { headers: { Authorization: `Bearer ${a.token}` } }))
            .status,
          404,
        );
        const out = await A.call("workspace_export", { workspace_id: ws, output: "/tmp/pyro-remote-denied" });
        assert.equal(out.ok, false, "export to a server path is refused");

        // Tenant B sees none of it: not in its list, and its id answers "not found".
        const B = await mcpClient(server.url, b.token);
        clients.push(B.client);
        assert.deepEqual(ok(await B.call("workspace_list")).workspaces, []);
        assert.equal(ok(await A.call("workspace_list")).workspaces.length, 1);
        for (const [tool, args] of [
          ["workspace_exec", { workspace_id: ws, command: "true" }],
          ["workspace_status", { workspace_id: ws }],
          ["workspace_delete", { workspace_id: ws }],
          ["workspace_file_read", { workspace_id: ws, path: "a.txt" }],
          ["output_read", { output_id: `${ws}:1` }],
        ] as const) {
          const r = await B.call(tool, args);
          assert.equal(r.ok, false, `${tool} on another tenant's workspace`);
          if (!r.ok) {
            assert.equal(r.code, "not_found", `${tool}: ${r.text}`);
            assert.match(r.text, new RegExp(`no workspace with id ${ws}`));
          }
        }
        const stolen = await B.call("workspace_create", { seed_path: `upload:${uploadId}` });
        assert.equal(stolen.ok, false, "another tenant's upload id is unknown");
        if (!stolen.ok) assert.equal(stolen.code, "not_found");
        ok(await A.call("workspace_status", { workspace_id: ws }));

        // VMs too, and id lists in results (vm_reap_expired) carry only the caller's ids.
        const vm = ok(await A.call("vm_create", {})).vm_id as string;
        for (const tool of ["vm_status", "vm_start", "vm_delete"]) {
          const r = await B.call(tool, { vm_id: vm });
          assert.equal(r.ok, false, `${tool} on another tenant's VM`);
          if (!r.ok) assert.equal(r.code, "not_found", `${tool}: ${r.text}`);
        }
        assert.deepEqual(ok(await B.call("vm_reap_expired")), { reaped_vms: [], reaped_workspaces: [] });
        ok(await A.call("vm_delete", { vm_id: vm }));

        // B's limit: one sandbox at a time.
        const wsB = ok(await B.call("workspace_create", {})).workspace_id as string;
        const over = await B.call("workspace_create", {});
        assert.equal(over.ok, false);
        if (!over.ok) {
          assert.equal(over.code, "limit_exceeded");
          assert.match(over.text, /at most 1 sandboxes/);
        }
        ok(await B.call("workspace_delete", { workspace_id: wsB }));
        ok(await A.call("workspace_delete", { workspace_id: ws }));

        // A small bounded load: 4 clients x 3 vm_run at once (npm run bench:remote does 20 x 10).
        const many = await Promise.all([0, 1, 2, 3].map(() => mcpClient(server.url, a.token)));
        clients.push(...many.map((m) => m.client));
        const runs = await Promise.all(
          many.flatMap((m, i) =>
            [0, 1, 2].map(async (j) => ok(await m.call("vm_run", { command: ["echo", `r${i}-${j}`] }))),
          ),
        );
        assert.deepEqual(
          runs.map((r) => r.stdout).sort(),
          [0, 1, 2, 3].flatMap((i) => [0, 1, 2].map((j) => `r${i}-${j}\n`)).sort(),
        );
      } finally {
        for (const cl of clients) await cl.close().catch(() => undefined);
        const code = await server.stop();
        assert.equal(code, 0, `graceful exit on SIGTERM: ${server.log().slice(-2000)}`);
      }
      const log = server.log();
      assert.match(
        log,
        /POST \/mcp 200 \d+ms tenant=tenant-a\(tok_[0-9a-f]{16}\) tools\/call:workspace_create/,
      );
      assert.match(log, /POST \/mcp 401 /);
      for (const secret of [a.token, b.token, gone.token])
        assert.ok(!log.includes(secret), "no token in the log");
      assert.ok(!log.includes("hello"), "no tool arguments or output in the log");
      assert.deepEqual(await runscList(c.stateDir), []);
    }),
  );
});

test("graceful shutdown: a call in flight finishes, workspaces are kept", async (t) => {
  await withGvisorState(t, async (c: TestState) => {
    const a = await createToken(c.env, "a");
    const server = await startHttpServer(c.env, ["--profile", "all"]);
    const pyro = new Pyro({ url: server.url, token: a.token });
    let ws: string | undefined;
    try {
      ws = (await pyro.createWorkspace()).workspace_id;
      const slow = pyro.execWorkspace(ws, { command: "sleep 2; echo done" });
      await new Promise((r) => setTimeout(r, 700));
      const stopped = server.stop();
      const r = await slow;
      assert.equal(r.stdout, "done\n", "the in-flight call finished before the server exited");
      assert.equal(await stopped, 0);
      assert.match(server.log(), /SIGTERM: finishing in-flight requests/);
    } finally {
      await pyro.close();
      await server.stop();
    }
    // The workspace outlived the server: a local pyro over the same state sees and deletes it.
    const local = new Pyro({ env: c.env });
    const st = await local.statusWorkspace(ws!);
    assert.equal(st.state, "running");
    await local.deleteWorkspace(ws!);
  });
});

test("CLI --remote: operation commands run on the server; host commands say they cannot", async (t) => {
  await withGvisorState(t, async (c: TestState) =>
    withHostDir("pyro-remote-cli-", async (host) => {
      const a = await createToken(c.env, "cli");
      const server = await startHttpServer(c.env, ["--profile", "all"]);
      try {
        const env = { ...c.env, PYRO_TOKEN: a.token };
        await writeFile(join(host, "x.txt"), "from the client\n");
        const cr = await runCli(
          ["--remote", server.url, "workspace", "create", "--seed-path", host, "--id-only"],
          {
            env,
            cwd: host,
          },
        );
        assert.equal(cr.code, 0, cr.stderr);
        const ws = cr.stdout.trim();
        const ex = await runCli(["--remote", server.url, "workspace", "exec", ws, "--", "cat", "x.txt"], {
          env,
        });
        assert.equal(ex.code, 0, ex.stderr);
        assert.equal(ex.stdout, "from the client\n");
        const more = join(host, "more");
        await mkdir(more);
        await writeFile(join(more, "y.txt"), "pushed\n");
        const push = await runCli(["--remote", server.url, "workspace", "sync", "push", ws, more], { env });
        assert.equal(push.code, 0, push.stderr);
        const cat = await runCli(["--remote", server.url, "workspace", "exec", ws, "--", "cat", "y.txt"], {
          env,
        });
        assert.equal(cat.stdout, "pushed\n", cat.stderr);
        const out = join(host, "out");
        const exp = await runCli(["--remote", server.url, "workspace", "export", ws, "--output", out], {
          env,
        });
        assert.equal(exp.code, 0, exp.stderr);
        assert.equal(await readFile(join(out, "x.txt"), "utf8"), "from the client\n");
        assert.equal(await readFile(join(out, "y.txt"), "utf8"), "pushed\n");
        const host1 = await runCli(["--remote", server.url, "token", "list"], { env });
        assert.equal(host1.code, 1);
        assert.match(host1.stderr, /cannot run against the remote server/);
        const envPrune = await runCli(["--remote", server.url, "env", "prune"], { env });
        assert.notEqual(envPrune.code, 0);
        assert.match(envPrune.stderr, /not available over a remote connection/);
        const noTok = await runCli(["--remote", server.url, "workspace", "list"], {
          env: { ...c.env, XDG_CONFIG_HOME: host },
        });
        assert.equal(noTok.code, 1);
        assert.match(noTok.stderr, /no token for the remote server/);
        const del = await runCli(["--remote", server.url, "workspace", "delete", ws], { env });
        assert.equal(del.code, 0, del.stderr);
      } finally {
        await server.stop();
      }
    }),
  );
});
