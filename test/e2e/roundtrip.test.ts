import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { lstat, mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { Pyro } from "../../src/index.js";
import {
  CLI,
  runCli,
  runCliJson,
  runCliJsonGuest,
  type TestState,
  withGvisorState,
  withHostDir,
  withTestState,
} from "../helpers.js";
import { clusterEnv, clusterSkipReason } from "../kubernetes-helpers.js";
import { createToken, startHttpServer } from "../remote-helpers.js";

/**
 * The workspace round trip end to end, once per face (CLI, SDK, MCP through the official
 * client) on gVisor, and once more on QEMU: seed a git repo; edit a file with `file edit`,
 * add one with `file write`, delete one with exec; diff shows exactly those three; export
 * --changed-only yields exactly the changed files and lists the deletion; a real `git diff`
 * applies; a conflicting patch fails and changes nothing.
 */

// biome-ignore lint/suspicious/noExplicitAny: test plumbing over results of many shapes
type Json = Record<string, any>;

interface Face {
  create(seed: string): Promise<string>;
  call(op: string, args: Json): Promise<{ ok: true; r: Json } | { ok: false; message: string }>;
  close(): Promise<void>;
}

const git = (cwd: string, ...args: string[]) =>
  execFileSync("git", ["-c", "user.email=t@example.com", "-c", "user.name=t", ...args], {
    cwd,
    encoding: "utf8",
  });

/** A small git repo, and two patches made against it with git: one that applies, one that conflicts. */
async function makeRepo(host: string): Promise<{ seed: string; good: string; conflicting: string }> {
  const seed = join(host, "repo");
  await mkdir(seed);
  git(seed, "init", "-q");
  await writeFile(join(seed, "a.txt"), "hello\nworld\n");
  await writeFile(join(seed, "b.txt"), "keep\n");
  await writeFile(join(seed, "c.txt"), "gone\n");
  await writeFile(join(seed, "tool.sh"), "#!/bin/sh\necho tool\n", { mode: 0o755 });
  git(seed, "add", ".");
  git(seed, "commit", "-qm", "init");
  // good: b.txt gets a line, d.txt is new (git diff output, as a user would produce it)
  await writeFile(join(seed, "b.txt"), "keep\nmore\n");
  await writeFile(join(seed, "d.txt"), "x\ny\n");
  git(seed, "add", "-N", "d.txt");
  const good = git(seed, "diff");
  git(seed, "reset", "-q");
  git(seed, "checkout", "-q", "--", ".");
  await rmf(join(seed, "d.txt"));
  // conflicting: b.txt would apply, a.txt's context ("world") is gone after the edit below
  await writeFile(join(seed, "b.txt"), "keep\nother\n");
  await writeFile(join(seed, "a.txt"), "hello\nplanet\n");
  const conflicting = git(seed, "diff");
  git(seed, "checkout", "-q", "--", ".");
  return { seed, good, conflicting };
}

async function rmf(p: string): Promise<void> {
  await import("node:fs/promises").then((f) => f.rm(p, { force: true }));
}

async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const n of await readdir(d)) {
      const p = join(d, n);
      const st = await lstat(p);
      if (st.isDirectory()) await walk(p);
      else out.push(relative(dir, p));
    }
  };
  await walk(dir);
  return out.sort();
}

function ok(r: { ok: true; r: Json } | { ok: false; message: string }): Json {
  if (!r.ok) assert.fail(`expected success, got: ${r.message}`);
  return r.r;
}

const paths = (r: Json): string[] => r.files.map((f: Json) => f.path);

/**
 * The workspace's .gitignore keeps what it ignores out of diff, summary and changed-only
 * export; include_ignored brings it back; exclude patterns leave out more (every face).
 */
async function ignoredFiles(face: Face, ws: string, host: string): Promise<void> {
  for (const [path, content] of [
    [".gitignore", "build/\n*.log\n"],
    ["build/out.o", "obj\n"],
    ["new/run.log", "log\n"],
    ["new/keep.txt", "keep\n"],
  ] as const)
    ok(await face.call("workspace_file_write", { workspace_id: ws, path, content }));
  const changed = [".gitignore", "a.txt", "b.txt", "c.txt", "d.txt", "new/keep.txt", "new/n.txt"];
  const byDefault = ok(await face.call("workspace_diff", { workspace_id: ws, name_only: true }));
  assert.deepEqual(paths(byDefault), changed);
  const all = ok(
    await face.call("workspace_diff", { workspace_id: ws, name_only: true, include_ignored: true }),
  );
  assert.deepEqual(paths(all), [...changed, "build/out.o", "new/run.log"].sort());
  const excluded = ok(
    await face.call("workspace_diff", { workspace_id: ws, name_only: true, exclude: ["/new/", "*.txt"] }),
  );
  assert.deepEqual(paths(excluded), [".gitignore"]);
  const summary = ok(await face.call("workspace_summary", { workspace_id: ws, include_ignored: true }));
  assert.equal(summary.changes.files, changed.length + 2);
  const out = join(host, "out-ignored");
  const ex = ok(
    await face.call("workspace_export", {
      workspace_id: ws,
      output: out,
      changed_only: true,
      exclude: ["b.txt", "d.txt"],
    }),
  );
  assert.deepEqual(await tree(out), [".gitignore", "a.txt", "new/keep.txt", "new/n.txt"]);
  assert.deepEqual(ex.deleted, ["c.txt"]);
}

/** The scenario every face must pass. */
async function scenario(face: Face, host: string): Promise<void> {
  const { seed, good, conflicting } = await makeRepo(host);
  const ws = await face.create(seed);
  try {
    const clean = ok(await face.call("workspace_diff", { workspace_id: ws }));
    assert.equal(clean.changed, false, `a fresh workspace has no changes: ${JSON.stringify(clean.files)}`);

    ok(
      await face.call("workspace_file_edit", {
        workspace_id: ws,
        path: "a.txt",
        old_string: "world",
        new_string: "there",
      }),
    );
    ok(
      await face.call("workspace_file_write", { workspace_id: ws, path: "new/n.txt", content: "new file\n" }),
    );
    ok(await face.call("workspace_exec", { workspace_id: ws, command: "rm c.txt" }));

    const names = ok(await face.call("workspace_diff", { workspace_id: ws, name_only: true }));
    assert.deepEqual(
      names.files.map((f: Json) => [f.path, f.status]),
      [
        ["a.txt", "modified"],
        ["c.txt", "deleted"],
        ["new/n.txt", "added"],
      ],
    );
    assert.deepEqual(
      {
        files: names.counts.files,
        added: names.counts.added,
        modified: names.counts.modified,
        deleted: names.counts.deleted,
      },
      { files: 3, added: 1, modified: 1, deleted: 1 },
    );
    const full = ok(await face.call("workspace_diff", { workspace_id: ws }));
    assert.match(full.patch, /^-world$/m);
    assert.match(full.patch, /^\+there$/m);
    assert.match(full.patch, /^deleted file mode 100644$/m);
    assert.match(full.patch, /^\+\+\+ b\/new\/n\.txt$/m);
    assert.equal(full.counts.lines_added, 2);
    assert.equal(full.counts.lines_removed, 2);

    const out = join(host, "out");
    const ex = ok(await face.call("workspace_export", { workspace_id: ws, output: out, changed_only: true }));
    assert.deepEqual(await tree(out), ["a.txt", "new/n.txt"]);
    assert.deepEqual(ex.deleted, ["c.txt"]);
    assert.equal(ex.files, 2);
    assert.equal(ex.bytes, "hello\nthere\n".length + "new file\n".length);
    assert.equal(ex.verified, true);
    assert.equal(await readFile(join(out, "a.txt"), "utf8"), "hello\nthere\n");
    assert.equal(
      (await lstat(out)).mode & 0o777,
      0o777 & ~process.umask(),
      "the export root is a normal directory",
    );
    const again = await face.call("workspace_export", { workspace_id: ws, output: out, changed_only: true });
    assert.equal(again.ok, false, "an existing non-empty target is refused");
    // CLI/SDK: "exists and is not empty"; MCP: "already exists, and this server never replaces…".
    if (!again.ok) assert.match(again.message, /exists and is not empty|already exists/);

    const applied = ok(await face.call("workspace_patch_apply", { workspace_id: ws, patch: good }));
    assert.deepEqual(
      applied.files.map((f: Json) => [f.path, f.status]),
      [
        ["b.txt", "modified"],
        ["d.txt", "added"],
      ],
    );
    const b = ok(await face.call("workspace_file_read", { workspace_id: ws, path: "b.txt" }));
    assert.equal(b.content, "keep\nmore\n");

    const before = ok(await face.call("workspace_diff", { workspace_id: ws }));
    const bad = await face.call("workspace_patch_apply", { workspace_id: ws, patch: conflicting });
    assert.equal(bad.ok, false, "a conflicting patch fails");
    if (!bad.ok) assert.match(bad.message, /hunk #1 .* of a\.txt does not apply.*nothing was changed/s);
    const after = ok(await face.call("workspace_diff", { workspace_id: ws }));
    assert.equal(after.patch, before.patch, "the failed patch left the tree untouched (b.txt too)");

    const summary = ok(await face.call("workspace_summary", { workspace_id: ws }));
    assert.equal(summary.commands.count, 1);
    assert.equal(summary.changes.files, 5);
    assert.equal(summary.exports.count, 1);

    await ignoredFiles(face, ws, host);
  } finally {
    await face.call("workspace_delete", { workspace_id: ws });
  }
}

const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

function sdkFace(env: NodeJS.ProcessEnv, pyro = new Pyro({ env }), close = async () => undefined): Face {
  return {
    create: async (seed) => (await pyro.createWorkspace({ seedPath: seed })).workspace_id,
    call: async (op, args) => {
      try {
        const { workspace_id, ...rest } = args;
        const ws = await pyro.workspace(workspace_id as string);
        const o = Object.fromEntries(Object.entries(rest).map(([k, v]) => [camel(k), v])) as Json;
        let r: unknown;
        // Through the handle where it has a member, to test those too.
        if (op === "workspace_diff") r = await ws.diff(o);
        else if (op === "workspace_export") r = await ws.export(o.output, o);
        else if (op === "workspace_file_read") r = await ws.files.read(o.path, o);
        else if (op === "workspace_file_write") r = await ws.files.write(o.path, o.content, o);
        else if (op === "workspace_file_edit") r = await ws.files.edit(o.path, o.oldString, o.newString);
        else if (op === "workspace_patch_apply") r = await ws.applyPatch(o.patch);
        else if (op === "workspace_summary") r = await ws.summary(o);
        else if (op === "workspace_exec") r = await ws.exec(o.command);
        else if (op === "workspace_delete") r = await ws.delete();
        else r = await pyro.call(op, args);
        return { ok: true, r: r as Json };
      } catch (e) {
        return { ok: false, message: (e as Error).message };
      }
    },
    close,
  };
}

function cliFace(env: NodeJS.ProcessEnv): Face {
  const flag = (k: string) => `--${k.replace(/_/g, "-")}`;
  const positional: Record<string, string[]> = {
    workspace_diff: ["workspace", "diff"],
    workspace_export: ["workspace", "export"],
    workspace_file_read: ["workspace", "file", "read"],
    workspace_file_write: ["workspace", "file", "write"],
    workspace_file_edit: ["workspace", "file", "edit"],
    workspace_patch_apply: ["workspace", "patch", "apply"],
    workspace_summary: ["workspace", "summary"],
    workspace_delete: ["workspace", "delete"],
  };
  return {
    create: async (seed) => {
      const r = await runCliJson<Json>(["workspace", "create", "debian:12", "--seed-path", seed], { env });
      assert.equal(r.code, 0, r.stderr);
      return r.json.workspace_id;
    },
    call: async (op, args) => {
      const { workspace_id, path, command, ...rest } = args;
      if (op === "workspace_exec") {
        const r = await runCliJsonGuest<Json>(
          ["workspace", "exec", workspace_id, "--", "sh", "-c", command],
          { env },
        );
        return r.code === 0 ? { ok: true, r: r.json } : { ok: false, message: JSON.stringify(r.json) };
      }
      const argv = [...positional[op]!, workspace_id, ...(path !== undefined ? [path] : [])];
      for (const [k, v] of Object.entries(rest)) {
        if (v === true) argv.push(flag(k));
        else if (Array.isArray(v)) for (const x of v) argv.push(flag(k), String(x));
        else if (v !== false) argv.push(flag(k), String(v));
      }
      const r = await runCliJson<Json>(argv, { env });
      if (r.code === 0) return { ok: true, r: r.json };
      return { ok: false, message: `${r.json.error?.message} (exit ${r.code})` };
    },
    close: async () => undefined,
  };
}

async function mcpFace(env: NodeJS.ProcessEnv, root: string): Promise<Face> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    // Exports land in the test's host dir (strictly below it), as the scenario expects.
    args: [CLI, "mcp", "serve", "--profile", "all", "--allow-path", root, "--export-dir", root],
    env: Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined)),
    cwd: root,
    stderr: "pipe",
  });
  const client = new Client({ name: "pyro-roundtrip", version: "0.0.0" });
  await client.connect(transport);
  const call: Face["call"] = async (name, args) => {
    const r = (await client.callTool({ name, arguments: args }, undefined, { timeout: 300_000 })) as {
      content?: { text?: string }[];
      structuredContent?: Json;
      isError?: boolean;
    };
    if (r.isError) return { ok: false, message: (r.content ?? []).map((c) => c.text ?? "").join("\n") };
    return { ok: true, r: r.structuredContent! };
  };
  return {
    create: async (seed) => ok(await call("workspace_create", { seed_path: seed })).workspace_id,
    call,
    close: () => client.close(),
  };
}

function withFace(
  make: (c: TestState, host: string) => Promise<Face>,
  extra?: (face: Face, host: string) => Promise<void>,
) {
  return async (c: TestState) =>
    withHostDir("pyro-roundtrip-", async (host) => {
      const face = await make(c, host);
      try {
        await scenario(face, host);
        await extra?.(face, host);
      } finally {
        await face.close();
      }
    });
}

test("round trip through the CLI (gVisor)", async (t) => {
  await withGvisorState(
    t,
    withFace(async (c) => cliFace(c.env)),
  );
});

test("round trip through the SDK and its handle members (gVisor)", async (t) => {
  await withGvisorState(
    t,
    withFace(async (c) => sdkFace(c.env)),
  );
});

test("round trip through the SDK in remote mode (pyro mcp serve --http, gVisor)", async (t) => {
  await withGvisorState(
    t,
    withFace(async (c) => {
      // The same scenario, with the seed packed and uploaded and the export fetched and
      // written locally by the SDK: the caller cannot tell the server is elsewhere.
      const { token } = await createToken(c.env, "roundtrip");
      const server = await startHttpServer(c.env, ["--profile", "all"]);
      const pyro = new Pyro({ url: server.url, token });
      return sdkFace(c.env, pyro, async () => {
        await pyro.close();
        assert.equal(await server.stop(), 0);
      });
    }),
  );
});

test("round trip through MCP with the official client (gVisor)", async (t) => {
  await withGvisorState(
    t,
    withFace(
      async (c, host) => mcpFace(c.env, host),
      async (face, host) => {
        // A model may export only into the operator's export area (--export-dir).
        const seed = join(host, "s2");
        await mkdir(seed);
        const ws = await face.create(seed);
        try {
          const denied = await face.call("workspace_export", {
            workspace_id: ws,
            output: "/tmp/pyro-denied-export",
          });
          assert.equal(denied.ok, false);
          if (!denied.ok) assert.match(denied.message, /host_path_denied|outside the host paths/);
          assert.equal(existsSync("/tmp/pyro-denied-export"), false);
        } finally {
          await face.call("workspace_delete", { workspace_id: ws });
        }
      },
    ),
  );
});

async function qemuSkipReason(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return "qemu tests need root (the environment rootfs is root-owned)";
  if (!existsSync("/usr/bin/qemu-system-x86_64")) return "qemu not installed";
  return undefined;
}

test("round trip on QEMU (SDK): pushes, file tools, diff and export through the guest agent", async (t) => {
  await withTestState(
    t,
    await qemuSkipReason(),
    { PYRO_ENGINE: "qemu", PYRO_QEMU_ACCEL: process.env.PYRO_QEMU_ACCEL ?? "tcg" },
    withFace(async (c) => sdkFace(c.env)),
  );
});

test("round trip on Kubernetes (SDK): the same scenario through the API server's exec", async (t) => {
  await withTestState(
    t,
    await clusterSkipReason(),
    clusterEnv(),
    withFace(async (c) => sdkFace(c.env)),
  );
});

test("hostile paths: a guest symlink to /etc is never followed on export; ../ reads are refused", async (t) => {
  await withGvisorState(t, async ({ env }) =>
    withHostDir("pyro-roundtrip-hostile-", async (host) => {
      const seed = join(host, "seed");
      await mkdir(seed);
      await writeFile(join(seed, "ok.txt"), "ok\n");
      const etcBefore = createHash("sha256")
        .update(execFileSync("ls", ["-la", "/etc"]))
        .digest("hex");
      const cr = await runCliJson<Json>(["workspace", "create", "debian:12", "--seed-path", seed], { env });
      assert.equal(cr.code, 0, cr.stderr);
      const ws = cr.json.workspace_id as string;
      try {
        // The guest plants a symlink out of /workspace, and a set-uid file.
        const ex = await runCliJsonGuest<Json>(
          [
            "workspace",
            "exec",
            ws,
            "--",
            "sh",
            "-c",
            "ln -s /etc /workspace/out && printf x > suid && chmod 4755 suid",
          ],
          { env },
        );
        assert.equal(ex.code, 0, JSON.stringify(ex.json));

        // Exporting the link itself: refused, naming the path; nothing written.
        const viaLink = await runCliJson<Json>(
          ["workspace", "export", ws, "out", "--output", join(host, "o1")],
          { env },
        );
        assert.equal(viaLink.code, 2);
        assert.match(viaLink.json.error.message, /"out" leaves \/workspace through a symlink/);
        assert.equal(existsSync(join(host, "o1")), false);

        // Exporting everything: the link is listed as skipped, not created, not followed.
        const all = await runCliJson<Json>(["workspace", "export", ws, "--output", join(host, "o2")], {
          env,
        });
        assert.equal(all.code, 0, JSON.stringify(all.json));
        assert.deepEqual(
          all.json.skipped.map((s: Json) => s.path),
          ["out"],
        );
        assert.deepEqual(await tree(join(host, "o2")), ["ok.txt", "suid"]);
        const st = await lstat(join(host, "o2", "suid"));
        assert.equal(st.mode & 0o7777, 0o755, "set-uid is stripped on export");
        assert.equal(
          createHash("sha256")
            .update(execFileSync("ls", ["-la", "/etc"]))
            .digest("hex"),
          etcBefore,
        );

        // As an archive: the same entries, modes kept (set-id dropped), readable by GNU tar.
        const tgz = await runCliJson<Json>(["workspace", "export", ws, "--output", join(host, "o3.tar.gz")], {
          env,
        });
        assert.equal(tgz.code, 0, JSON.stringify(tgz.json));
        assert.equal(tgz.json.format, "tar.gz");
        const listing = execFileSync("tar", ["-tvzf", join(host, "o3.tar.gz")], { encoding: "utf8" });
        assert.match(listing, /^-rwxr-xr-x .* suid$/m);
        assert.match(listing, /^-rw-r--r-- .* ok\.txt$/m);
        assert.doesNotMatch(listing, / out($| ->)/m);

        // An output that is a symlink is refused even with --force.
        await symlink(join(host, "o2"), join(host, "link"));
        const toLink = await runCliJson<Json>(
          ["workspace", "export", ws, "--output", join(host, "link"), "--force"],
          {
            env,
          },
        );
        assert.equal(toLink.code, 2);
        assert.match(toLink.json.error.message, /is a symlink/);

        // Reads outside /workspace, lexically or through the link.
        for (const p of ["../../etc/shadow", "/etc/shadow", "out/shadow"]) {
          const r = await runCliJson<Json>(["workspace", "file", "read", ws, p], { env });
          assert.equal(r.code, 2, `${p}: ${JSON.stringify(r.json)}`);
          assert.match(r.json.error.message, /outside \/workspace|leaves \/workspace/);
        }
        // Writes through the link are refused and create nothing in the guest's /etc.
        const w = await runCliJson<Json>(
          ["workspace", "file", "write", ws, "out/newdir/x", "--content", "x"],
          { env },
        );
        assert.equal(w.code, 2);
        const probe = await runCliJsonGuest<Json>(
          ["workspace", "exec", ws, "--", "test", "-e", "/etc/newdir"],
          { env },
        );
        assert.equal(probe.code, 1, "mkdir -p did not run through the symlink");

        // sync push into the link (or below it) is refused the same way, and nothing reaches
        // the guest's /etc (it once landed there while the result said /workspace/out).
        const pushSrc = join(host, "push");
        await mkdir(pushSrc);
        await writeFile(join(pushSrc, "pyro-pushed-marker"), "x\n");
        for (const dest of ["/workspace/out", "out/sub"]) {
          const p = await runCliJson<Json>(["workspace", "sync", "push", ws, pushSrc, "--dest", dest], {
            env,
          });
          assert.equal(p.code, 2, `${dest}: ${JSON.stringify(p.json)}`);
          assert.match(
            p.json.error.message,
            /leaves \/workspace through a symlink \(\/workspace\/out resolves to \/etc/,
          );
        }
        const etcProbe = await runCliJsonGuest<Json>(
          ["workspace", "exec", ws, "--", "sh", "-c", "test -e /etc/pyro-pushed-marker || test -e /etc/sub"],
          { env },
        );
        assert.equal(etcProbe.code, 1, "nothing was pushed into the guest's /etc");
        // A dangling link as the destination, or on the way to it: a clear error naming it.
        await runCliJsonGuest<Json>(
          ["workspace", "exec", ws, "--", "ln", "-s", "/nonexistent", "/workspace/d"],
          {
            env,
          },
        );
        for (const dest of ["/workspace/d", "d/deeper"]) {
          const p = await runCliJson<Json>(["workspace", "sync", "push", ws, pushSrc, "--dest", dest], {
            env,
          });
          assert.equal(p.code, 2, `${dest}: ${JSON.stringify(p.json)}`);
          assert.match(
            p.json.error.message,
            /cannot be created: \/workspace\/d is a dangling symlink \(to \/nonexistent\)/,
          );
          assert.doesNotMatch(p.json.error.message, /File exists/);
        }
        // A link that stays inside /workspace is followed: the files land in its target.
        await runCliJsonGuest<Json>(
          ["workspace", "exec", ws, "--", "sh", "-c", "mkdir real && ln -s real inlink"],
          {
            env,
          },
        );
        const inside = await runCliJson<Json>(
          ["workspace", "sync", "push", ws, pushSrc, "--dest", "inlink"],
          { env },
        );
        assert.equal(inside.code, 0, JSON.stringify(inside.json));
        const landed = await runCliJsonGuest<Json>(
          ["workspace", "exec", ws, "--", "test", "-f", "/workspace/real/pyro-pushed-marker"],
          { env },
        );
        assert.equal(landed.code, 0);

        // A file over the read budget: refused whole, readable by lines.
        await runCliJsonGuest<Json>(["workspace", "exec", ws, "--", "sh", "-c", "seq 1 100000 > big.txt"], {
          env,
        });
        const big = await runCliJson<Json>(["workspace", "file", "read", ws, "big.txt"], { env });
        assert.equal(big.code, 2);
        assert.match(
          big.json.error.message,
          /"big.txt" is 588895 bytes, over the read budget of 262144 bytes/,
        );
        assert.match(big.json.error.hint, /--offset/);
        const part = await runCliJson<Json>(
          ["workspace", "file", "read", ws, "big.txt", "--offset", "10", "--limit", "3"],
          {
            env,
          },
        );
        assert.equal(part.json.content, "10\n11\n12\n");
        assert.equal(part.json.next_offset, 13);

        // A missing file and a directory where a file is expected, with the fix.
        const missing = await runCli(["workspace", "file", "read", ws, "nope.txt"], { env });
        assert.match(
          missing.stderr,
          /"nope.txt" does not exist in the workspace\n\s+fix: .*pyro workspace file list/,
        );
        const dir = await runCliJson<Json>(["workspace", "file", "read", ws, "."], { env });
        assert.match(dir.json.error.message, /is a directory/);
      } finally {
        await runCli(["workspace", "delete", ws], { env });
      }
    }),
  );
});

/** sync push and the baseline, and diff paging, through the CLI on one engine. */
async function pushAndPage(env: NodeJS.ProcessEnv, check?: (ws: string) => Promise<void>): Promise<void> {
  await withHostDir("pyro-roundtrip-push-", async (host) => {
    const seed = join(host, "seed");
    await mkdir(seed);
    await writeFile(join(seed, "keep.txt"), "keep\n");
    const cr = await runCliJson<Json>(["workspace", "create", "debian:12", "--seed-path", seed], { env });
    assert.equal(cr.code, 0, cr.stderr);
    const ws = cr.json.workspace_id as string;
    try {
      const a = join(host, "a");
      await mkdir(a);
      for (let i = 0; i < 5; i++) await writeFile(join(a, `f${i}.txt`), `${"line\n".repeat(400)}${i}\n`);
      const p1 = await runCliJson<Json>(["workspace", "sync", "push", ws, a, "--dest", "pushed"], { env });
      assert.equal(p1.json.baseline_updated, false);
      const d1 = await runCliJson<Json>(["workspace", "diff", ws, "--name-only"], { env });
      assert.deepEqual(
        d1.json.files.map((f: Json) => f.path),
        [0, 1, 2, 3, 4].map((i) => `pushed/f${i}.txt`),
        "a plain push is a change against the baseline",
      );
      // Paging: a small budget returns whole files' diffs and a cursor, until done.
      const seen: string[] = [];
      let cursor = 0;
      for (let page = 0; page < 10; page++) {
        const d = await runCliJson<Json>(
          ["workspace", "diff", ws, "--max-bytes", "4096", "--cursor", String(cursor)],
          {
            env,
          },
        );
        assert.ok(Buffer.byteLength(d.json.patch) <= 4096 + 200, `page ${page} stays within the budget`);
        seen.push(...[...d.json.patch.matchAll(/^\+\+\+ b\/(\S+)$/gm)].map((m: RegExpMatchArray) => m[1]!));
        if (d.json.next_cursor === null) break;
        assert.equal(d.json.truncated, true);
        cursor = d.json.next_cursor;
      }
      assert.deepEqual(
        seen,
        [0, 1, 2, 3, 4].map((i) => `pushed/f${i}.txt`),
      );

      // --update-baseline: pushed files are part of the baseline, not changes.
      const b = join(host, "b");
      await mkdir(b);
      await writeFile(join(b, "vendored.txt"), "v\n");
      const p2 = await runCliJson<Json>(
        ["workspace", "sync", "push", ws, b, "--dest", "vendor", "--update-baseline"],
        {
          env,
        },
      );
      assert.equal(p2.json.baseline_updated, true);
      const d2 = await runCliJson<Json>(["workspace", "diff", ws, "--name-only"], { env });
      assert.equal(d2.json.counts.files, 5, "vendor/ is not a change");
      const r = await runCliJson<Json>(["workspace", "file", "read", ws, "vendor/vendored.txt"], { env });
      assert.equal(r.json.content, "v\n");
      await check?.(ws);
    } finally {
      await runCli(["workspace", "delete", ws], { env });
    }
  });
}

test("sync push and the baseline; diff pages with a cursor (gVisor)", async (t) => {
  await withGvisorState(t, async ({ env }) => pushAndPage(env));
});

test("sync push and the baseline on QEMU: the host's record stays consistent", async (t) => {
  await withTestState(
    t,
    await qemuSkipReason(),
    { PYRO_ENGINE: "qemu", PYRO_QEMU_ACCEL: process.env.PYRO_QEMU_ACCEL ?? "tcg" },
    async ({ env, stateDir }) =>
      pushAndPage(env, async (ws) => {
        // The guest disk is the only copy of /workspace: the host keeps no stale one to be
        // mistaken for it, and the baseline moved with --update-baseline.
        const dir = join(stateDir, "workspaces", ws);
        assert.deepEqual(await readdir(join(dir, "files")), []);
        assert.deepEqual((await tree(join(dir, "baseline"))).sort(), ["keep.txt", "vendor/vendored.txt"]);
      }),
  );
});
