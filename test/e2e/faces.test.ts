import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, test } from "node:test";
import { Client as ClientV2 } from "@modelcontextprotocol/client";
import { StdioClientTransport as StdioClientTransportV2 } from "@modelcontextprotocol/client/stdio";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { Pyro, PyroError } from "../../src/index.js";
import { CLI, REPO, runCli, testEnv } from "../helpers.js";

/**
 * How the three faces take input and report errors, through the BUILT CLI and server and
 * the official MCP clients. Nothing here needs a sandbox: every case fails before one starts.
 */

type ToolResult = {
  content?: { type: string; text?: string }[];
  isError?: boolean;
  structuredContent?: unknown;
};
const text = (r: ToolResult) => (r.content ?? []).map((c) => c.text ?? "").join("\n");

function stringEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

/** Env in which no isolated engine exists (every engine binary missing, nothing forced). */
function noEngine(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { PYRO_ENGINE: _pinned, ...rest } = env;
  return {
    ...rest,
    PYRO_RUNSC: "/nonexistent/runsc",
    PYRO_QEMU: "/nonexistent/qemu",
    PYRO_QEMU_IMG: "/nonexistent/qemu-img",
    PYRO_FIRECRACKER: "/nonexistent/firecracker",
  };
}

async function v1(env: NodeJS.ProcessEnv, args: string[] = []): Promise<Client> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, "mcp", "serve", ...args],
    env: stringEnv(env),
    cwd: REPO,
    stderr: "ignore",
  });
  const client = new Client({ name: "pyro-faces-e2e", version: "0" });
  await client.connect(transport);
  return client;
}

describe("CLI: usage errors", { timeout: 60_000 }, () => {
  test("a group without its subcommand exits 2 with its help on stderr", async () => {
    const r = await runCli(["workspace"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Usage: pyro workspace/);
    assert.match(r.stderr, /list/);
    assert.equal(r.stdout, "");
    const help = await runCli(["workspace", "--help"]);
    assert.equal(help.code, 0, "asking for help is not an error");
  });

  test("an unknown flag names the nearest one and the valid ones; --json makes it one JSON document", async () => {
    const r = await runCli(["run", "debian:12", "--timeout", "5", "--", "true"]);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /^pyro: error: unknown option `--timeout`; did you mean `--timeout-seconds`\? valid: .*`--mem-mib`/m,
    );
    assert.match(r.stderr, /fix: see `pyro run --help`/);
    assert.equal(r.stdout, "");

    const j = await runCli(["run", "debian:12", "--json", "--timeout", "5", "--", "true"]);
    assert.equal(j.code, 2);
    const doc = JSON.parse(j.stdout) as { error: { code: string; message: string; hint: string } };
    assert.equal(doc.error.code, "invalid_argument");
    assert.match(doc.error.message, /did you mean `--timeout-seconds`/);
    assert.match(doc.error.hint, /pyro run --help/);
    assert.equal(j.stderr, "", "with --json nothing but the document is printed");
  });

  test("every kind of usage error is JSON with --json, exit 2", async () => {
    const cases = [
      ["workspace", "frob", "--json"],
      ["workspace", "exec", "--json"],
      ["run", "--json", "--vcpu-count", "two", "--", "true"],
      ["workspace", "status", "a", "b", "--json"],
      ["run", "--json"],
    ];
    for (const args of cases) {
      const r = await runCli(args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      const doc = JSON.parse(r.stdout) as { error: { code: string; message: string } };
      assert.equal(doc.error.code, "invalid_argument", args.join(" "));
      assert.ok(doc.error.message.length > 5);
    }
  });

  test("runtime errors: hints name CLI commands", async () => {
    const { env, cleanup } = await testEnv();
    try {
      const r = await runCli(["workspace", "status", "ws_0000000000000000", "--json"], { env });
      assert.equal(r.code, 1);
      const doc = JSON.parse(r.stdout) as { error: { code: string; hint: string } };
      assert.equal(doc.error.code, "not_found");
      assert.match(doc.error.hint, /`pyro workspace list`/);
    } finally {
      await cleanup();
    }
  });
});

describe("SDK: every error is a PyroError with a code", { timeout: 60_000 }, () => {
  test("unknown operation, unknown parameter, missing field, SDK-worded hints", async () => {
    const { env, cleanup } = await testEnv();
    const pyro = new Pyro({ env });
    const fails = async (p: Promise<unknown>, code: string, re: RegExp) => {
      const e = await p.then(
        () => assert.fail("expected a PyroError"),
        (x: unknown) => x,
      );
      assert.ok(e instanceof PyroError, `not a PyroError: ${String(e)}`);
      assert.equal(e.code, code);
      assert.match(`${e.message} ${e.hint ?? ""}`, re);
    };
    try {
      await fails(pyro.call("nope"), "unknown_operation", /unknown operation "nope"/);
      await fails(pyro.call("vm_rnu"), "unknown_operation", /did you mean `vm_run`/);
      await fails(
        pyro.call("vm_run", { command: "true", timeout: 1 }),
        "invalid_argument",
        /unknown parameter `timeout`; did you mean `timeout_seconds`\? valid: /,
      );
      await fails(
        // biome-ignore lint/suspicious/noExplicitAny: a caller without types makes this mistake
        pyro.runInVm({ command: "true", timeout: 1 } as any),
        "invalid_argument",
        /unknown parameter `timeout`; did you mean `timeoutSeconds`\?/,
      );
      // biome-ignore lint/suspicious/noExplicitAny: as above
      await fails(pyro.runInVm({} as any), "invalid_argument", /`command` is required/);
      await fails(pyro.statusWorkspace("ws_0000000000000000"), "not_found", /`pyro\.listWorkspaces\(\)`/);
      // A model's call through the SDK is held to the tool schema.
      await fails(
        pyro.callTool("vm_run", { command: "true", allow_host_compat: true }),
        "invalid_argument",
        /unknown parameter `allow_host_compat`/,
      );
      assert.deepEqual(await pyro.listWorkspaces(), []);
    } finally {
      await cleanup();
    }
  });
});

describe("MCP: model-facing input through the official clients", { timeout: 60_000 }, () => {
  test("tools are strict and hide allow_host_compat; unknown and missing parameters are explained", async () => {
    const { env, cleanup } = await testEnv();
    const client = await v1(env);
    try {
      const { tools } = await client.listTools();
      assert.ok(
        tools.some((t) => t.name === "workspace_list"),
        "workspace_list is a tool",
      );
      for (const t of tools) {
        assert.equal(t.inputSchema.additionalProperties, false, `${t.name} is strict`);
        assert.ok(
          !("allow_host_compat" in (t.inputSchema.properties ?? {})),
          `${t.name} offers allow_host_compat`,
        );
        assert.doesNotMatch(
          `${t.description ?? ""} ${JSON.stringify(t.inputSchema)}`,
          /`pyro |--[a-z]/,
          `${t.name} points a model at the CLI`,
        );
      }
      const call = async (name: string, args: Record<string, unknown>) =>
        (await client.callTool({ name, arguments: args })) as ToolResult;
      const smuggled = await call("vm_run", { command: "true", allow_host_compat: true });
      assert.equal(smuggled.isError, true);
      assert.match(text(smuggled), /unknown parameter `allow_host_compat`/);
      const typo = await call("vm_run", { command: "true", timeout: 1 });
      assert.equal(typo.isError, true);
      assert.match(
        text(typo),
        /invalid_argument.*unknown parameter `timeout`; did you mean `timeout_seconds`\? valid: `environment`, `command`/,
      );
      assert.doesNotMatch(text(typo), /Input validation error/, "the SDK's own validation pre-empted ours");
      const missing = await call("workspace_exec", { workspace_id: "ws_0000000000000000" });
      assert.match(text(missing), /`command` is required/);
      const gone = await call("workspace_status", { workspace_id: "ws_0000000000000000" });
      assert.match(text(gone), /Hint: list workspaces with the `workspace_list` tool/);
      assert.doesNotMatch(text(gone), /pyro workspace/);
      const list = await call("workspace_list", {});
      assert.deepEqual(list.structuredContent, { workspaces: [] });
    } finally {
      await client.close();
      await cleanup();
    }
  });

  test("--allow-host-compat brings the field back; without it, no hint offers to turn isolation off", async () => {
    const { env, cleanup } = await testEnv();
    const strict = await v1(noEngine(env));
    const open = await v1(noEngine(env), ["--allow-host-compat", "--profile", "all"]);
    try {
      const refused = (await strict.callTool({
        name: "vm_run",
        arguments: { command: "true" },
      })) as ToolResult;
      assert.equal(refused.isError, true);
      assert.match(text(refused), /no_engine/);
      assert.match(text(refused), /setup-host\.sh/);
      assert.doesNotMatch(text(refused), /allow.host.compat|WITHOUT isolation/i);
      const { tools } = await open.listTools();
      for (const name of ["vm_run", "vm_create", "workspace_create"]) {
        const t = tools.find((x) => x.name === name)!;
        assert.ok(
          "allow_host_compat" in (t.inputSchema.properties ?? {}),
          `${name} offers allow_host_compat`,
        );
        assert.equal(t.inputSchema.additionalProperties, false);
      }
      const args = { command: "echo via-host", allow_host_compat: true };
      const ran = (await open.callTool({ name: "vm_run", arguments: args })) as ToolResult;
      assert.notEqual(ran.isError, true, text(ran));
      assert.equal((ran.structuredContent as { execution_mode: string }).execution_mode, "host_compat");
    } finally {
      await strict.close();
      await open.close();
      await cleanup();
    }
  });

  test("the v2 client works through the line filter", async () => {
    const { env, cleanup } = await testEnv();
    const client = new ClientV2({ name: "pyro-faces-e2e-v2", version: "0" });
    await client.connect(
      new StdioClientTransportV2({
        command: process.execPath,
        args: [CLI, "mcp", "serve"],
        env: stringEnv(env),
        cwd: REPO,
      }),
    );
    try {
      const { tools } = await client.listTools();
      assert.ok(tools.some((t) => t.name === "workspace_list"));
      const r = (await client.callTool({ name: "vm_run", arguments: { comand: "true" } })) as ToolResult;
      assert.equal(r.isError, true);
      assert.match(text(r), /unknown parameter `comand`; did you mean `command`\?/);
    } finally {
      await client.close();
      await cleanup();
    }
  });

  test("raw stdio: malformed lines are answered -32700 / -32600, then normal traffic flows", async () => {
    const { env, cleanup } = await testEnv();
    const child = spawn(process.execPath, [CLI, "mcp", "serve", "--profile", "all"], {
      env,
      cwd: REPO,
      stdio: ["pipe", "pipe", "ignore"],
    });
    let out = "";
    child.stdout.on("data", (c) => {
      out += c;
    });
    const lines = () =>
      out
        .split("\n")
        .filter(Boolean)
        .map(
          (l) => JSON.parse(l) as { id?: unknown; error?: { code: number }; result?: { tools?: unknown[] } },
        );
    const waitFor = async (n: number) => {
      const deadline = Date.now() + 10_000;
      while (lines().length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    };
    try {
      const send = (l: string) => child.stdin.write(`${l}\n`);
      send("this is not json");
      send('{"jsonrpc":"2.0","id":1,"method":"tools/list"'); // cut short by a newline
      send('{"hello":"world"}');
      send('{"jsonrpc":"2.0","id":9}');
      send("[]");
      await waitFor(5);
      assert.deepEqual(
        lines().map((m) => [m.id, m.error?.code]),
        [
          [null, -32700],
          [null, -32700],
          [null, -32600],
          [9, -32600],
          [null, -32600],
        ],
      );
      send(
        JSON.stringify({
          jsonrpc: "2.0",
          id: 2,
          method: "initialize",
          params: {
            protocolVersion: "2025-06-18",
            capabilities: {},
            clientInfo: { name: "raw", version: "0" },
          },
        }),
      );
      send(JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }));
      send(JSON.stringify({ jsonrpc: "2.0", id: 3, method: "tools/list" }));
      await waitFor(7);
      assert.ok((lines().find((m) => m.id === 3)?.result?.tools?.length ?? 0) > 10);
    } finally {
      child.stdin.end();
      await new Promise((r) => child.once("exit", r));
      await cleanup();
    }
  });
});
