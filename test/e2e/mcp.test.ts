import assert from "node:assert/strict";
import { execFile, spawn, spawnSync } from "node:child_process";
import { mkdir, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { Client as ClientV2 } from "@modelcontextprotocol/client";
import { StdioClientTransport as StdioClientTransportV2 } from "@modelcontextprotocol/client/stdio";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { assertNoSandboxes, CLI, gvisorSkipReason, REPO, skipped, tempDir, testEnv } from "../helpers.js";

/**
 * Drives the BUILT server (`node dist/cli/main.js mcp serve`) the way real hosts do: the
 * official v1 SDK client (what Claude Desktop-era hosts embed), the v2 client, raw stdio,
 * and the MCP Inspector CLI, which nobody on this project wrote. Servers here serve the
 * `all` profile (every tool); profiles themselves are tested in profiles.test.ts.
 */

const TOOLS = [
  "vm_run",
  "vm_list_environments",
  "vm_create",
  "vm_start",
  "vm_exec",
  "vm_stop",
  "vm_delete",
  "vm_status",
  "vm_network_info",
  "vm_reap_expired",
  "vm_list",
  "workspace_create",
  "workspace_sync_push",
  "workspace_exec",
  "workspace_status",
  "workspace_logs",
  "output_read",
  "workspace_delete",
  "workspace_update",
  "workspace_list",
  "workspace_diff",
  "workspace_export",
  "workspace_file_list",
  "workspace_file_read",
  "workspace_file_write",
  "workspace_file_edit",
  "workspace_patch_apply",
  "workspace_summary",
  // Shells and services (session-ops.ts).
  "shell_open",
  "shell_write",
  "shell_read",
  "shell_signal",
  "shell_close",
  "service_start",
  "service_list",
  "service_status",
  "service_logs",
  "service_stop",
  // stop/start, pause/resume (lifecycle.ts).
  "workspace_stop",
  "workspace_start",
  "workspace_pause",
  "workspace_resume",
  // Snapshots, reset and fork (snapshots.ts).
  "workspace_snapshot_create",
  "workspace_snapshot_list",
  "workspace_snapshot_delete",
  "workspace_reset",
  "workspace_fork",
  // A stopped workspace's disk image, offline (disk.ts).
  "workspace_disk_list",
  "workspace_disk_read",
  "workspace_disk_export",
];

type ToolResult = {
  content?: { type: string; text?: string }[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
};

function stringEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

function text(r: ToolResult): string {
  return (r.content ?? []).map((c) => c.text ?? "").join("\n");
}

/** A v1 client connected to a fresh server; `stderr()` is the server's log so far. */
async function connect(
  env: NodeJS.ProcessEnv,
  serveArgs: string[] = [],
  cwd: string = REPO,
): Promise<{ client: Client; stderr: () => string; close: () => Promise<void> }> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, "mcp", "serve", "--profile", "all", ...serveArgs],
    env: stringEnv(env),
    cwd,
    stderr: "pipe",
  });
  let log = "";
  transport.stderr?.on("data", (c) => {
    log += c;
  });
  const client = new Client({ name: "pyro-e2e", version: "0.0.0" });
  await client.connect(transport);
  return { client, stderr: () => log, close: () => client.close() };
}

async function call(
  client: Client,
  name: string,
  args: Record<string, unknown>,
  opts: Parameters<Client["callTool"]>[2] = {},
): Promise<ToolResult> {
  return (await client.callTool({ name, arguments: args }, undefined, opts)) as ToolResult;
}

function expectOk(r: ToolResult, what: string): Record<string, unknown> {
  assert.notEqual(r.isError, true, `${what} failed: ${text(r)}`);
  assert.ok(r.structuredContent, `${what}: no structuredContent`);
  return r.structuredContent;
}

function expectToolError(r: ToolResult, pattern: RegExp): void {
  assert.equal(r.isError, true, `expected isError, got ${JSON.stringify(r)}`);
  assert.match(text(r), pattern);
}

/** Cancellation cleans up asynchronously after the client stops waiting; give it a moment. */
async function eventuallyNoSandboxes(stateDir: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await assertNoSandboxes(stateDir);
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

describe("mcp server (stdio)", { timeout: 60_000 }, () => {
  test("tools/list: every mcp operation, with schemas and usage guidance", async () => {
    const { env, cleanup } = await testEnv();
    const { client, close } = await connect(env);
    try {
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t) => t.name).sort(), [...TOOLS].sort());
      for (const t of tools) {
        assert.equal(t.inputSchema.type, "object", `${t.name} inputSchema`);
        assert.equal(t.outputSchema?.type, "object", `${t.name} outputSchema`);
        assert.ok((t.description ?? "").length > 30, `${t.name} description too short`);
        assert.equal(t.annotations?.openWorldHint, false, `${t.name} openWorldHint`);
      }
      const byName = new Map(tools.map((t) => [t.name, t]));
      assert.match(byName.get("vm_run")?.description ?? "", /prefer vm_run for one-shot/);
      assert.match(byName.get("workspace_create")?.description ?? "", /only for repeated commands/);
      // Defaults make fields optional for the caller: only the command is required.
      assert.deepEqual(byName.get("vm_run")?.inputSchema.required, ["command"]);
      assert.equal(byName.get("vm_status")?.annotations?.readOnlyHint, true);
      assert.equal(byName.get("workspace_delete")?.annotations?.destructiveHint, true);
      assert.match(client.getInstructions() ?? "", /vm_run/);
    } finally {
      await close();
      await cleanup();
    }
  });

  test("vm_run in debian:12 (v1 client), text and structured results agree", async (t) => {
    const why = await gvisorSkipReason();
    if (why) return skipped(t, why);
    const { env, cleanup } = await testEnv();
    const { client, close, stderr } = await connect(env);
    try {
      const r = await call(client, "vm_run", {
        environment: "debian:12",
        command: "cat /etc/debian_version; echo oops >&2; exit 3",
      });
      const s = expectOk(r, "vm_run");
      assert.ok(String(s.stdout).startsWith("12"), `stdout: ${String(s.stdout)}`);
      assert.equal(s.exit_code, 3);
      assert.equal(s.stderr, "oops\n");
      assert.equal(s.cleaned_up, true);
      assert.equal(s.timed_out, false);
      assert.match(text(r), /^exit_code: 3 /);
      assert.match(text(r), /stdout:\n12/);
      assert.match(text(r), /stderr:\noops/);
      assert.equal(stderr().includes("failed"), false, stderr());
    } finally {
      await close();
      await cleanup();
    }
  });

  test("v2 client: list tools and vm_run", async (t) => {
    const why = await gvisorSkipReason();
    if (why) return skipped(t, why);
    const { env, cleanup } = await testEnv();
    const transport = new StdioClientTransportV2({
      command: process.execPath,
      args: [CLI, "mcp", "serve", "--profile", "all"],
      env: stringEnv(env),
      stderr: "pipe",
    });
    const client = new ClientV2({ name: "pyro-e2e-v2", version: "0.0.0" });
    try {
      await client.connect(transport);
      const { tools } = await client.listTools();
      assert.equal(tools.length, TOOLS.length);
      const r = (await client.callTool({
        name: "vm_run",
        arguments: { command: ["echo", "from v2"] },
      })) as ToolResult;
      assert.equal(expectOk(r, "vm_run").stdout, "from v2\n");
    } finally {
      await client.close();
      await cleanup();
    }
  });

  test("workspace flow: create (seeded, with progress) → sync push → exec → logs → status → list → delete", async (t) => {
    const why = await gvisorSkipReason();
    if (why) return skipped(t, why);
    const { env, cleanup } = await testEnv();
    const seed = await tempDir("pyro-seed-");
    await writeFile(join(seed, "hello.txt"), "hello from the seed\n");
    const more = await tempDir("pyro-push-");
    await mkdir(join(more, "sub"));
    await writeFile(join(more, "sub", "more.txt"), "pushed later\n");
    // The seed and the pushed files live outside the server's start directory: allow them.
    const { client, close } = await connect(env, ["--allow-path", seed, "--allow-path", more]);
    const progress: string[] = [];
    try {
      const created = expectOk(
        await call(
          client,
          "workspace_create",
          { environment: "debian:12", seed_path: seed },
          { onprogress: (p) => progress.push(String(p.message)) },
        ),
        "workspace_create",
      );
      const ws = String(created.workspace_id);
      assert.match(ws, /^ws_[0-9a-f]{16}$/);
      assert.equal(created.state, "running");
      assert.equal((created.workspace_seed as { mode: string }).mode, "directory");
      assert.ok(
        progress.some((m) => m.includes("seeding")),
        `progress: ${JSON.stringify(progress)}`,
      );

      const pushed = expectOk(
        await call(client, "workspace_sync_push", { workspace_id: ws, source_path: more, dest: "extra" }),
        "sync push",
      );
      assert.equal(pushed.destination, "/workspace/extra");

      const ran = expectOk(
        await call(client, "workspace_exec", {
          workspace_id: ws,
          command: "cat hello.txt extra/sub/more.txt",
        }),
        "exec",
      );
      assert.equal(ran.stdout, "hello from the seed\npushed later\n");
      assert.equal(ran.sequence, 1);

      const logs = expectOk(await call(client, "workspace_logs", { workspace_id: ws }), "logs");
      assert.equal((logs.commands as unknown[]).length, 1);

      const status = expectOk(await call(client, "workspace_status", { workspace_id: ws }), "status");
      assert.equal(status.command_count, 1);
      assert.equal(status.state, "running");

      // An agent that lost the id finds it again.
      const listed = expectOk(await call(client, "workspace_list", {}), "workspace_list");
      const [entry] = listed.workspaces as Record<string, unknown>[];
      assert.deepEqual(Object.keys(entry!).sort(), [
        "command_count",
        "created_at",
        "environment",
        "expires_at",
        "labels",
        "last_activity_at",
        "last_command_at",
        "name",
        "reason",
        "state",
        "workspace_id",
      ]);
      assert.equal(entry!.workspace_id, ws);
      assert.equal(entry!.state, "running");
      assert.equal(entry!.environment, "debian:12");
      assert.equal(entry!.created_at, status.created_at);
      assert.equal(entry!.last_command_at, (status.last_command as { started_at: string }).started_at);

      const deleted = expectOk(await call(client, "workspace_delete", { workspace_id: ws }), "delete");
      assert.equal(deleted.deleted, true);
      expectToolError(await call(client, "workspace_status", { workspace_id: ws }), /not_found|not found/);
    } finally {
      await close();
      await cleanup();
    }
  });

  test("host paths: only the allowed roots, absolute, symlinks resolved; --allow-path widens", async (t) => {
    const why = await gvisorSkipReason();
    if (why) return skipped(t, why);
    const { env, cleanup } = await testEnv();
    // The server starts in `start`, which is what it allows by default.
    const start = await realpath(await tempDir("pyro-mcp-start-"));
    await mkdir(join(start, "seed"));
    await writeFile(join(start, "seed", "hello.txt"), "inside the root\n");
    await symlink("/etc", join(start, "escape"));
    const other = await realpath(await tempDir("pyro-mcp-other-"));
    await writeFile(join(other, "other.txt"), "from the widened root\n");
    const create = (client: Client, seed_path: string) =>
      call(client, "workspace_create", { environment: "debian:12", seed_path });
    const hello = async (client: Client, ws: string, file: string) =>
      expectOk(await call(client, "workspace_exec", { workspace_id: ws, command: ["cat", file] }), "exec")
        .stdout;
    let conn = await connect(env, [], start);
    try {
      const denied = await create(conn.client, "/etc");
      expectToolError(denied, /host_path_denied/);
      expectToolError(
        denied,
        new RegExp(`seed_path /etc is outside the host paths this server may use: ${start}`),
      );
      expectToolError(denied, /--allow-path/);
      expectToolError(await create(conn.client, join(start, "escape")), /resolves to \/etc\) is outside/);
      expectToolError(await create(conn.client, `${start}/seed/../escape/..`), /host_path_denied/);
      expectToolError(
        await create(conn.client, "seed"),
        /invalid_argument.*seed_path "seed" is a relative path; use an absolute path/,
      );
      const ws = String(expectOk(await create(conn.client, join(start, "seed")), "create").workspace_id);
      try {
        assert.equal(await hello(conn.client, ws, "hello.txt"), "inside the root\n");
        expectToolError(
          await call(conn.client, "workspace_sync_push", { workspace_id: ws, source_path: "/etc" }),
          /source_path \/etc is outside the host paths/,
        );
        expectToolError(
          await call(conn.client, "workspace_sync_push", { workspace_id: ws, source_path: other }),
          /host_path_denied/,
        );
      } finally {
        expectOk(await call(conn.client, "workspace_delete", { workspace_id: ws }), "delete");
      }
      await conn.close();

      // --allow-path replaces the default: `other` is allowed, the start directory no longer.
      conn = await connect(env, ["--allow-path", other], start);
      expectToolError(await create(conn.client, join(start, "seed")), new RegExp(`may use: ${other}`));
      const ws2 = String(expectOk(await create(conn.client, other), "create from --allow-path").workspace_id);
      try {
        assert.equal(await hello(conn.client, ws2, "other.txt"), "from the widened root\n");
      } finally {
        expectOk(await call(conn.client, "workspace_delete", { workspace_id: ws2 }), "delete");
      }
    } finally {
      await conn.close();
      await rm(start, { recursive: true, force: true });
      await rm(other, { recursive: true, force: true });
      await cleanup();
    }
    // A directory that is not there is an error at startup, not at the first call.
    const bad = spawnSync(
      process.execPath,
      [CLI, "mcp", "serve", "--profile", "all", "--allow-path", "/no/such/dir"],
      {
        env,
        input: "",
        encoding: "utf8",
        timeout: 15_000,
      },
    );
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /allowed path "\/no\/such\/dir" does not exist/);
  });

  test("bad requests give isError or JSON-RPC errors and the server keeps serving", async (t) => {
    const { env, cleanup } = await testEnv();
    const { client, close } = await connect(env);
    try {
      expectToolError(await call(client, "vm_run", { command: 5 }), /command/);
      expectToolError(
        await call(client, "vm_run", { command: "true", timeout_seconds: "soon" }),
        /timeout_seconds/,
      );
      expectToolError(
        await call(client, "workspace_exec", { workspace_id: "../x", command: "true" }),
        /malformed workspace id/,
      );
      expectToolError(
        await call(client, "workspace_status", { workspace_id: "ws_0000000000000000" }),
        /not_found/,
      );
      expectToolError(
        await call(client, "vm_run", { environment: "nope:1", command: "true" }),
        /unknown_environment[\s\S]*Hint:/,
      );
      // An unknown tool is a protocol error (-32602), not a tool result.
      await assert.rejects(call(client, "vm_explode", {}), /vm_explode/);
      const envs = expectOk(await call(client, "vm_list_environments", {}), "list after errors");
      assert.ok((envs.environments as { name: string }[]).some((e) => e.name === "debian:12"));
      const why = await gvisorSkipReason();
      if (why) return skipped(t, `the final vm_run: ${why}`);
      assert.equal(
        expectOk(await call(client, "vm_run", { command: "echo still here" }), "vm_run after errors").stdout,
        "still here\n",
      );
    } finally {
      await close();
      await cleanup();
    }
  });

  test("cancelling a call stops and removes its sandbox", async (t) => {
    const why = await gvisorSkipReason();
    if (why) return skipped(t, why);
    const { env, stateDir, cleanup } = await testEnv();
    const { client, close } = await connect(env);
    try {
      const abort = new AbortController();
      const started = Date.now();
      const pending = call(client, "vm_run", { command: "sleep 30" }, { signal: abort.signal });
      setTimeout(() => abort.abort(), 1_500);
      await assert.rejects(pending);
      await eventuallyNoSandboxes(stateDir);
      assert.ok(Date.now() - started < 20_000);
      // The cancelled call must not have wedged the server.
      expectOk(await call(client, "vm_list_environments", {}), "list after cancel");
    } finally {
      await close();
      await cleanup();
    }
  });

  test("raw stdio: stdout is protocol only, garbage is survived, exits cleanly when stdin closes", async () => {
    const { env, cleanup } = await testEnv();
    const child = spawn(process.execPath, [CLI, "mcp", "serve", "--profile", "all"], {
      env,
      cwd: REPO,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (c) => {
      out += c;
    });
    const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
    const send = (m: unknown) => child.stdin.write(`${typeof m === "string" ? m : JSON.stringify(m)}\n`);
    try {
      send("this is not json");
      send({
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: {
          protocolVersion: "2025-06-18",
          capabilities: {},
          clientInfo: { name: "raw", version: "0" },
        },
      });
      send({ jsonrpc: "2.0", method: "notifications/initialized" });
      send({ jsonrpc: "2.0", id: 2, method: "no/such/method" });
      send({ jsonrpc: "2.0", id: 3, method: "tools/list" });
      const deadline = Date.now() + 10_000;
      while (!out.includes('"id":3') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      child.stdin.end();
      const code = await Promise.race([
        exited,
        new Promise<"hung">((r) => setTimeout(() => r("hung"), 10_000)),
      ]);
      assert.equal(code, 0, "server did not exit cleanly after stdin closed");
      const msgs = out
        .split("\n")
        .filter(Boolean)
        .map(
          (l) =>
            JSON.parse(l) as { id?: number | null; error?: { code: number }; result?: { tools?: unknown[] } },
        );
      assert.ok(msgs.every((m) => "jsonrpc" in m));
      // The garbage line is answered, not dropped (JSON-RPC: parse error, id null).
      assert.deepEqual(
        msgs.filter((m) => m.id === null).map((m) => m.error?.code),
        [-32700],
      );
      assert.equal(msgs.find((m) => m.id === 2)?.error?.code, -32601);
      assert.equal(msgs.find((m) => m.id === 3)?.result?.tools?.length, TOOLS.length);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      await cleanup();
    }
  });

  test("MCP Inspector CLI: tools/list (--strict) and tools/call vm_run", async (t) => {
    const inspector = join(REPO, "node_modules", ".bin", "mcp-inspector");
    const run = (args: string[], env: NodeJS.ProcessEnv) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((res) => {
        execFile(
          inspector,
          [
            "--cli",
            "-q",
            "--format",
            "json",
            ...args,
            "--",
            process.execPath,
            CLI,
            "mcp",
            "serve",
            "--profile",
            "all",
          ],
          { env, cwd: REPO, timeout: 30_000 },
          (err, stdout, stderr) =>
            res({ code: err ? (typeof err.code === "number" ? err.code : null) : 0, stdout, stderr }),
        );
      });
    const { env, cleanup } = await testEnv();
    try {
      const list = await run(["--strict", "--method", "tools/list"], env);
      if (list.code !== 0 && /ENOENT|Cannot find|ERR_/.test(list.stderr))
        return skipped(t, `inspector cannot start here: ${list.stderr.slice(0, 200)}`);
      assert.equal(list.code, 0, list.stderr);
      const names = (JSON.parse(list.stdout) as { result: { tools: { name: string }[] } }).result.tools.map(
        (x) => x.name,
      );
      assert.deepEqual(names.sort(), [...TOOLS].sort());

      const bad = await run(
        [
          "--method",
          "tools/call",
          "--tool-name",
          "workspace_status",
          "--tool-args-json",
          '{"workspace_id":"../x"}',
        ],
        env,
      );
      assert.equal(bad.code, 5, "an isError result makes the inspector exit 5");
      assert.match(bad.stderr, /tool_is_error/);

      const why = await gvisorSkipReason();
      if (why) return skipped(t, `tools/call vm_run: ${why}`);
      const ran = await run(
        [
          "--method",
          "tools/call",
          "--tool-name",
          "vm_run",
          "--tool-args-json",
          '{"environment":"debian:12","command":"cat /etc/debian_version"}',
        ],
        env,
      );
      assert.equal(ran.code, 0, ran.stderr);
      const s = (JSON.parse(ran.stdout) as { result: ToolResult }).result.structuredContent;
      assert.ok(String(s?.stdout).startsWith("12"));
    } finally {
      await cleanup();
    }
  });
});
