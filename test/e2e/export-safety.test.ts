import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { lstat, mkdir, readdir, readFile, realpath, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CLI, runCli, runCliJson, runCliJsonGuest, withGvisorState, withHostDir } from "../helpers.js";
import { createToken, startHttpServer } from "../remote-helpers.js";

/**
 * workspace_export as a boundary, through the faces the problems were found in:
 * 1. over MCP (stdio with default settings, started in a git checkout as a client would
 *    start it; and HTTP with an operator root), a model cannot plant a git hook, replace a
 *    tracked file, wipe the root, or leave an executable behind; the operator's flags open
 *    exactly overwrite and exec bits;
 * 2. `pyro workspace export --force` killed with SIGKILL at random moments never leaves the
 *    target missing or partial (after recovery), nor anything beside it.
 */

// biome-ignore lint/suspicious/noExplicitAny: test plumbing over results of many shapes
type Json = Record<string, any>;
type Result = { ok: true; r: Json } | { ok: false; text: string; code?: string };

const git = (cwd: string, ...args: string[]) =>
  execFileSync("git", ["-c", "user.email=t@example.com", "-c", "user.name=t", ...args], {
    cwd,
    encoding: "utf8",
  });

function stringEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

async function toolCaller(client: Client) {
  return async (name: string, args: Json): Promise<Result> => {
    const r = (await client.callTool({ name, arguments: args }, undefined, { timeout: 300_000 })) as Json;
    if (r.isError)
      return {
        ok: false,
        text: (r.content ?? []).map((c: Json) => c.text ?? "").join("\n"),
        code: r._meta?.["pyro/error"]?.error?.code,
      };
    return { ok: true, r: r.structuredContent };
  };
}

async function stdioServer(env: NodeJS.ProcessEnv, cwd: string, flags: string[] = []) {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, "mcp", "serve", ...flags],
    env: stringEnv(env),
    cwd,
    stderr: "pipe",
  });
  const client = new Client({ name: "pyro-export-safety", version: "0.0.0" });
  await client.connect(transport);
  return { call: await toolCaller(client), close: () => client.close() };
}

function ok(x: Result, what: string): Json {
  if (!x.ok) assert.fail(`${what}: expected success, got: ${x.text}`);
  return x.r;
}

function refused(x: Result, re: RegExp, what: string): void {
  assert.equal(x.ok, false, `${what} must be refused`);
  if (!x.ok) {
    assert.equal(x.code, "host_path_denied", `${what}: ${x.text}`);
    // Message and hint are on separate lines; the patterns may span both.
    assert.match(x.text.replace(/\n/g, " "), re, what);
  }
}

/** A git checkout with one committed file, as an MCP client would start the server in. */
async function makeRepo(host: string): Promise<string> {
  const repo = join(host, "repo");
  await mkdir(repo);
  git(repo, "init", "-q");
  await writeFile(join(repo, "src.txt"), "tracked source\n");
  git(repo, "add", ".");
  git(repo, "commit", "-qm", "init");
  return realpath(repo);
}

/** In the guest: an executable script that would leave `marker` on the host if it ever ran there. */
async function plantScript(call: (n: string, a: Json) => Promise<Result>, ws: string, marker: string) {
  ok(
    await call("workspace_file_write", {
      workspace_id: ws,
      path: "evil/pre-commit",
      content: `#!/bin/sh\necho ran > ${marker}\n`,
    }),
    "write the script",
  );
  ok(await call("workspace_exec", { workspace_id: ws, command: "chmod 755 evil/pre-commit" }), "chmod");
}

test("MCP over stdio, default settings in a git checkout: no hook, no overwrite, no wipe, no exec bit", async (t) => {
  await withGvisorState(t, async (c) =>
    withHostDir("pyro-export-safety-", async (host) => {
      const repo = await makeRepo(host);
      const marker = join(host, "hook-ran");
      const hook = join(repo, ".git", "hooks", "pre-commit");
      const mcp = await stdioServer(c.env, repo);
      let ws = "";
      try {
        ws = ok(await mcp.call("workspace_create", {}), "create").workspace_id;
        await plantScript(mcp.call, ws, marker);
        const exp = (output: string, extra: Json = {}) =>
          mcp.call("workspace_export", { workspace_id: ws, path: "evil/pre-commit", output, ...extra });

        // The hook: absolute and relative, with and without force.
        refused(await exp(hook), /outside this server's export area .*--export-dir/, "export to .git/hooks");
        refused(await exp(".git/hooks/pre-commit"), /goes through "\.git"/, "relative .git/hooks");
        refused(
          await exp(hook, { force: true }),
          /force is refused.*--allow-export-overwrite/,
          "hook, force",
        );
        assert.equal(existsSync(hook), false, "no hook was written");

        // A tracked file, with force.
        refused(
          await exp(join(repo, "src.txt"), { force: true }),
          /--allow-export-overwrite/,
          "force over src",
        );
        refused(await exp(join(repo, "src.txt")), /outside this server's export area/, "over src");
        assert.equal(await readFile(join(repo, "src.txt"), "utf8"), "tracked source\n");

        // The root itself, absolute and ".", with and without force.
        for (const [out, extra] of [
          [repo, {}],
          [repo, { force: true }],
          [".", {}],
          [".", { force: true }],
        ] as const)
          assert.equal((await exp(out, extra)).ok, false, `output ${out} ${JSON.stringify(extra)}`);
        refused(await exp("."), /the export area itself/, "output .");
        assert.ok((await lstat(join(repo, ".git"))).isDirectory(), ".git is still there");
        assert.equal(await readFile(join(repo, "src.txt"), "utf8"), "tracked source\n");

        // A plain relative name lands in pyro-exports/, without execute bits.
        const landed = ok(await exp("hook-copy"), "export to a relative name");
        const area = join(repo, "pyro-exports");
        assert.equal(landed.output, join(area, "hook-copy"));
        assert.equal(landed.exec_bits_dropped, 1);
        assert.equal((await stat(join(area, "hook-copy"))).mode & 0o7777, 0o644, "x bits dropped");
        assert.equal((await stat(area)).mode & 0o777, 0o700, "the area pyro made is private");
        const tree = ok(
          await mcp.call("workspace_export", { workspace_id: ws, path: "evil", output: "tree" }),
          "a directory export",
        );
        assert.equal(tree.exec_bits_dropped, 1);
        assert.equal((await stat(join(area, "tree", "pre-commit"))).mode & 0o111, 0, "file: no x");
        assert.notEqual((await stat(join(area, "tree"))).mode & 0o100, 0, "directories keep x");
        refused(await exp("hook-copy"), /already exists.*--allow-export-overwrite/, "existing output");
        assert.equal(git(repo, "status", "--porcelain"), "", "the area is ignored by git");
      } finally {
        if (ws) await mcp.call("workspace_delete", { workspace_id: ws });
        await mcp.close();
      }

      // The operator's opt-ins: overwrite and exec bits, and still never the hook.
      const open = await stdioServer(c.env, repo, ["--allow-export-overwrite", "--allow-export-exec"]);
      try {
        ws = ok(await open.call("workspace_create", {}), "create").workspace_id;
        await plantScript(open.call, ws, marker);
        const exp = (output: string, extra: Json = {}) =>
          open.call("workspace_export", { workspace_id: ws, path: "evil/pre-commit", output, ...extra });
        const again = ok(await exp("hook-copy", { force: true }), "overwrite with the opt-in");
        assert.equal(again.exec_bits_dropped, 0);
        assert.equal((await stat(join(repo, "pyro-exports", "hook-copy"))).mode & 0o777, 0o755);
        refused(await exp(hook, { force: true }), /outside this server's export area/, "hook with opt-ins");
        refused(await exp(repo, { force: true }), /outside this server's export area/, "root with opt-ins");
        assert.equal(existsSync(hook), false);
      } finally {
        if (ws) await open.call("workspace_delete", { workspace_id: ws });
        await open.close();
      }

      // The operator's next commit runs no planted hook.
      await writeFile(join(repo, "src.txt"), "changed\n");
      git(repo, "commit", "-qam", "operator commit");
      assert.equal(existsSync(marker), false, "no hook ran on git commit");
    }),
  );
});

test("MCP over HTTP with an operator root: the same export policy", async (t) => {
  await withGvisorState(t, async (c) =>
    withHostDir("pyro-export-safety-http-", async (host) => {
      const repo = await makeRepo(host);
      const hook = join(repo, ".git", "hooks", "pre-commit");
      const { token, token_id } = await createToken(c.env, "exports");
      const server = await startHttpServer(c.env, ["--allow-path", repo, "--export-dir", join(repo, "out")]);
      const transport = new StreamableHTTPClientTransport(new URL(`${server.url}/mcp`), {
        requestInit: { headers: { Authorization: `Bearer ${token}` } },
      });
      const client = new Client({ name: "pyro-export-safety", version: "0.0.0" });
      await client.connect(transport);
      const call = await toolCaller(client);
      let ws = "";
      try {
        ws = ok(await call("workspace_create", {}), "create").workspace_id;
        await plantScript(call, ws, join(host, "hook-ran"));
        const exp = (output: string, extra: Json = {}) =>
          call("workspace_export", { workspace_id: ws, path: "evil/pre-commit", output, ...extra });
        refused(await exp(hook), /outside this server's export area/, "HTTP: .git/hooks");
        refused(await exp(join(repo, "src.txt"), { force: true }), /--allow-export-overwrite/, "HTTP: force");
        refused(await exp(repo), /outside this server's export area/, "HTTP: the root");
        assert.equal(existsSync(hook), false);
        const landed = ok(await exp("copy"), "HTTP: a relative name");
        // One subdirectory per token, so tokens cannot replace each other's exports.
        assert.equal(landed.output, join(repo, "out", token_id, "copy"));
        assert.equal((await stat(landed.output)).mode & 0o111, 0);
        const dl = ok(await exp("download:"), "HTTP: the download route still works");
        assert.match(dl.output, /^\/downloads\/dl_/);
      } finally {
        if (ws) await call("workspace_delete", { workspace_id: ws });
        await client.close();
        assert.equal(await server.stop(), 0);
      }
    }),
  );
});

// ---- 2. kill -9 during `workspace export --force` ----

const DIRS = 30;
const PER_DIR = 100;

/** The target's state: "A" or "B" when it is that tree complete, otherwise a description of what is wrong. */
async function treeState(target: string): Promise<string> {
  if (!existsSync(target)) return "missing";
  let letter: string | undefined;
  let n = 0;
  for (const d of await readdir(target)) {
    for (const f of await readdir(join(target, d))) {
      const text = await readFile(join(target, d, f), "utf8");
      const m = /^([AB]) (\d+) (\d+)\n$/.exec(text);
      if (!m || `d${m[2]}` !== d || `f${m[3]}` !== f) return `bad file ${d}/${f}: ${JSON.stringify(text)}`;
      if (letter && m[1] !== letter) return `mixed trees (${letter} and ${m[1]})`;
      letter = m[1];
      n++;
    }
  }
  return n === DIRS * PER_DIR ? letter! : `partial: ${n} of ${DIRS * PER_DIR} files`;
}

test("kill -9 during `workspace export --force`: the target is always the whole old or new tree, nothing left beside it", async (t) => {
  await withGvisorState(t, async (c) =>
    withHostDir("pyro-export-kill-", async (host) => {
      const env = c.env;
      const created = await runCliJson<Json>(["workspace", "create", "debian:12"], { env });
      assert.equal(created.code, 0, created.stderr);
      const ws = created.json.workspace_id as string;
      try {
        const made = await runCliJsonGuest<Json>(
          [
            "workspace",
            "exec",
            ws,
            "--",
            "sh",
            "-c",
            `for t in A B; do for d in $(seq 1 ${DIRS}); do mkdir -p $t/d$d; for f in $(seq 1 ${PER_DIR}); do echo "$t $d $f" > $t/d$d/f$f; done; done; done`,
          ],
          { env, timeoutMs: 300_000 },
        );
        assert.equal(made.code, 0, made.stderr);
        const parent = join(host, "exports");
        await mkdir(parent);
        const target = join(parent, "out");
        const exportArgs = (tree: string) => ["workspace", "export", ws, tree, "--output", target, "--force"];

        // One uninterrupted export: the old output, and how long an export takes here.
        const t0 = Date.now();
        const first = await runCli([...exportArgs("A"), "--json"], { env, timeoutMs: 300_000 });
        const duration = Date.now() - t0;
        assert.equal(first.code, 0, first.stderr);
        assert.equal(await treeState(target), "A");

        let current = "A";
        let interrupted = 0;
        let repaired = 0;
        const iterations = 20;
        for (let i = 0; i < iterations; i++) {
          const next = current === "A" ? "B" : "A";
          const child = spawn(process.execPath, [CLI, ...exportArgs(next)], { env, stdio: "ignore" });
          const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
          // Spread over the whole export, start-up included (a little past it, too).
          await new Promise((r) => setTimeout(r, Math.random() * duration * 1.1));
          if (child.exitCode === null) {
            child.kill("SIGKILL");
            interrupted++;
          }
          await exited;
          const leftovers = (await readdir(parent)).filter((n) => n !== "out");
          if (leftovers.length) repaired++;
          // The recovery path: the TTL reaper (any later pyro call runs it when due).
          const reap = await runCliJson(["vm", "reap"], { env });
          assert.equal(reap.code, 0, reap.stderr);
          const state = await treeState(target);
          assert.ok(
            state === current || state === next,
            `after kill ${i} (leftovers ${leftovers.join(", ") || "none"}): target is ${state}, not ${current} or ${next}`,
          );
          current = state;
          assert.deepEqual(await readdir(parent), ["out"], `after kill ${i}: nothing beside the target`);
          assert.deepEqual(
            await readdir(join(c.stateDir, "export-intents")).catch(() => []),
            [],
            `after kill ${i}: no intent left`,
          );
        }
        t.diagnostic(
          `export ${duration} ms; ${interrupted}/${iterations} exports killed, ${repaired} left something to repair`,
        );
        assert.ok(interrupted >= 5, `most kills landed before the export finished (${interrupted})`);
        assert.ok(repaired >= 1, "at least one kill landed while the export was writing on the host");

        // The next export also repairs (no reaper involved) and succeeds.
        const next = current === "A" ? "B" : "A";
        const child = spawn(process.execPath, [CLI, ...exportArgs(next)], { env, stdio: "ignore" });
        const exited = new Promise((r) => child.once("exit", r));
        await new Promise((r) => setTimeout(r, duration * 0.8));
        child.kill("SIGKILL");
        await exited;
        const last = await runCli([...exportArgs(next), "--json"], { env, timeoutMs: 300_000 });
        assert.equal(last.code, 0, last.stderr);
        assert.equal(await treeState(target), next);
        assert.deepEqual(await readdir(parent), ["out"], "nothing beside the target");
      } finally {
        await runCli(["workspace", "delete", ws], { env });
      }
    }),
  );
});
