import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { Pyro } from "../../src/index.js";
import {
  CLI,
  REPO,
  runCli,
  runCliJson,
  runCliJsonGuest,
  runscBinary,
  runscList,
  type TestState,
  withGvisorState,
  withHostDir,
} from "../helpers.js";

/**
 * Snapshots, reset and fork end to end, once per face (CLI, SDK, MCP through the official
 * client) on gVisor: seed; change files; snapshot `a`; change more (and plant a symlink to a
 * host path); reset to `a` gives the files as at `a`; reset to baseline gives the seed; fork
 * `a` into 3, change each: all differ and the original is unchanged. Then the faults: an
 * unknown snapshot, reset while an exec runs, the host disk full while snapshotting, a fork
 * that fails, and pyro SIGKILLed in the middle of a snapshot and of a reset.
 */

// biome-ignore lint/suspicious/noExplicitAny: test plumbing over results of many shapes
type Json = Record<string, any>;
type Result = { ok: true; r: Json } | { ok: false; message: string };

interface Face {
  create(seed: string): Promise<string>;
  call(op: string, args: Json): Promise<Result>;
  close(): Promise<void>;
}

function ok(r: Result): Json {
  if (!r.ok) assert.fail(r.message);
  return r.r;
}

/** stdout of a shell script run in /workspace. */
async function sh(face: Face, ws: string, script: string): Promise<string> {
  const r = ok(await face.call("workspace_exec", { workspace_id: ws, command: script }));
  assert.equal(r.exit_code, 0, `${script}: ${r.stderr}`);
  return r.stdout as string;
}

const LISTING = "find . -mindepth 1 | LC_ALL=C sort | tr '\\n' ' '; echo; cat a.txt";

async function makeSeed(host: string): Promise<string> {
  const seed = join(host, "seed");
  await mkdir(join(seed, "dir"), { recursive: true });
  await writeFile(join(seed, "a.txt"), "seed-a\n");
  await writeFile(join(seed, "dir", "b.txt"), "seed-b\n");
  await writeFile(join(seed, "tool.sh"), "#!/bin/sh\necho tool\n", { mode: 0o755 });
  return seed;
}

async function scenario(face: Face, host: string): Promise<void> {
  const ws = await face.create(await makeSeed(host));
  const seeded = await sh(face, ws, LISTING);
  await sh(face, ws, "echo v1 > a.txt; echo n > n.txt");
  const snap = ok(await face.call("workspace_snapshot_create", { workspace_id: ws, name: "a" }));
  assert.equal(snap.name, "a");
  assert.equal(snap.files, 4);
  const atA = await sh(face, ws, LISTING);
  assert.match(atA, /v1\n$/);
  // Change more: edit, delete, add, a directory replaced by a symlink to a host path.
  await sh(face, ws, "echo v2 > a.txt; echo m > m.txt; rm tool.sh; rm -r dir; ln -s /etc dir");
  assert.notEqual(await sh(face, ws, LISTING), atA);
  const shell = ok(await face.call("shell_open", { workspace_id: ws }));

  const toA = ok(await face.call("workspace_reset", { workspace_id: ws, snapshot: "a" }));
  assert.equal(toA.snapshot, "a");
  assert.equal(toA.sandbox_restarted, true);
  assert.deepEqual(toA.shells_ended, [shell.shell_id]);
  assert.ok(toA.files_written >= 3 && toA.files_written <= 5, JSON.stringify(toA));
  assert.equal(await sh(face, ws, LISTING), atA, "files as at a");
  assert.equal((await sh(face, ws, "cat dir/b.txt; stat -c %a tool.sh")).trim(), "seed-b\n755");
  const gone = await face.call("shell_read", { workspace_id: ws, shell_id: shell.shell_id });
  assert.equal(gone.ok, false, "the shell ended with the old sandbox");

  const toBase = ok(await face.call("workspace_reset", { workspace_id: ws }));
  assert.equal(toBase.snapshot, "baseline");
  assert.equal(await sh(face, ws, LISTING), seeded, "files as seeded");
  const diff = ok(await face.call("workspace_diff", { workspace_id: ws, name_only: true }));
  assert.equal(diff.changed, false, "the baseline is kept: nothing differs after reset to it");

  const unknown = await face.call("workspace_reset", { workspace_id: ws, snapshot: "nope" });
  assert.equal(unknown.ok, false);
  assert.match((unknown as { message: string }).message, /no snapshot named "nope".*snapshots are: a/s);

  const listed = ok(await face.call("workspace_snapshot_list", { workspace_id: ws }));
  assert.deepEqual(
    listed.snapshots.map((s: Json) => s.name),
    ["a"],
  );

  const fork = ok(await face.call("workspace_fork", { workspace_id: ws, snapshot: "a", count: 3 }));
  const ids: string[] = fork.workspaces.map((w: Json) => w.workspace_id);
  assert.equal(new Set([ws, ...ids]).size, 4, "each fork has its own id");
  try {
    await Promise.all(ids.map(async (id, i) => sh(face, id, `echo fork-${i} >> a.txt`)));
    const states = await Promise.all(ids.map((id) => sh(face, id, LISTING)));
    assert.equal(new Set(states).size, 3, "the forks differ");
    for (const [i, s] of states.entries()) assert.match(s, new RegExp(`v1\\nfork-${i}\\n$`));
    assert.equal(await sh(face, ws, LISTING), seeded, "the original is unchanged");
    const summary = ok(await face.call("workspace_summary", { workspace_id: ws }));
    assert.deepEqual(
      summary.snapshot_activity.recent.map((e: Json) => `${e.event} ${e.name}`),
      ["snapshot_create a", "reset a", "reset baseline", "fork a"],
    );
    // A fork's baseline is its parent's: its diff shows the snapshot's and its own changes.
    const fd = ok(await face.call("workspace_diff", { workspace_id: ids[0], name_only: true }));
    assert.deepEqual(fd.files.map((f: Json) => `${f.status} ${f.path}`).sort(), [
      "added n.txt",
      "modified a.txt",
    ]);
  } finally {
    await Promise.all([ws, ...ids].map((id) => face.call("workspace_delete", { workspace_id: id })));
  }
}

const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

function sdkFace(env: NodeJS.ProcessEnv): Face {
  const pyro = new Pyro({ env });
  return {
    create: async (seed) => (await pyro.createWorkspace({ seedPath: seed })).workspace_id,
    call: async (op, args) => {
      try {
        const { workspace_id, ...rest } = args;
        const ws = await pyro.workspace(workspace_id as string);
        const o = Object.fromEntries(Object.entries(rest).map(([k, v]) => [camel(k), v])) as Json;
        let r: unknown;
        // Through the handle's members, to test those too.
        if (op === "workspace_snapshot_create") r = await ws.snapshots.create(o.name);
        else if (op === "workspace_snapshot_list") r = { snapshots: await ws.snapshots.list() };
        else if (op === "workspace_reset") r = await ws.reset(o.snapshot);
        else if (op === "workspace_fork") {
          const forks = await ws.fork(o);
          r = { workspaces: forks.map((f) => f.status) };
        } else if (op === "workspace_exec") r = await ws.exec(o.command);
        else if (op === "workspace_delete") r = await ws.delete();
        else r = await pyro.call(op, args);
        return { ok: true, r: r as Json };
      } catch (e) {
        return { ok: false, message: (e as Error).message };
      }
    },
    close: async () => undefined,
  };
}

function cliFace(env: NodeJS.ProcessEnv): Face {
  const flag = (k: string) => `--${k.replace(/_/g, "-")}`;
  const paths: Record<string, string[]> = {
    workspace_snapshot_create: ["workspace", "snapshot", "create"],
    workspace_snapshot_list: ["workspace", "snapshot", "list"],
    workspace_reset: ["workspace", "reset"],
    workspace_fork: ["workspace", "fork"],
    workspace_diff: ["workspace", "diff"],
    workspace_summary: ["workspace", "summary"],
    workspace_delete: ["workspace", "delete"],
    shell_open: ["workspace", "shell", "open"],
    shell_read: ["workspace", "shell", "read"],
  };
  return {
    create: async (seed) => {
      const r = await runCliJson<Json>(["workspace", "create", "debian:12", "--seed-path", seed], { env });
      assert.equal(r.code, 0, r.stderr);
      return r.json.workspace_id;
    },
    call: async (op, args) => {
      const { workspace_id, command, shell_id, ...rest } = args;
      if (op === "workspace_exec") {
        const r = await runCliJsonGuest<Json>(
          ["workspace", "exec", workspace_id, "--", "sh", "-c", command],
          {
            env,
          },
        );
        return r.code === 0 ? { ok: true, r: r.json } : { ok: false, message: JSON.stringify(r.json) };
      }
      const argv = [...paths[op]!, workspace_id, ...(shell_id ? [shell_id] : [])];
      for (const [k, v] of Object.entries(rest)) {
        if (v === true) argv.push(flag(k));
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
    args: [CLI, "mcp", "serve", "--allow-path", root, "--profile", "workspace-full", "--no-project"],
    env: Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined)),
    cwd: root,
    stderr: "pipe",
  });
  const client = new Client({ name: "pyro-snapshots", version: "0.0.0" });
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

function withFace(make: (c: TestState, host: string) => Promise<Face>) {
  return async (c: TestState) =>
    withHostDir("pyro-snapshots-", async (host) => {
      const face = await make(c, host);
      try {
        await scenario(face, host);
      } finally {
        await face.close();
      }
    });
}

test("snapshots, reset and fork through the CLI (gVisor)", async (t) => {
  await withGvisorState(
    t,
    withFace(async (c) => cliFace(c.env)),
  );
});

test("snapshots, reset and fork through the SDK (gVisor)", async (t) => {
  await withGvisorState(
    t,
    withFace(async (c) => sdkFace(c.env)),
  );
});

test("snapshots, reset and fork through MCP (official client, gVisor)", async (t) => {
  await withGvisorState(
    t,
    withFace(async (c, host) => mcpFace(c.env, host)),
  );
});

test("special files: a snapshot lists the FIFOs it does not keep in skipped, with why (CLI, --json and plain)", async (t) => {
  await withGvisorState(t, async (c) => {
    const face = cliFace(c.env);
    const cr = await runCliJson<Json>(["workspace", "create", "debian:12"], { env: c.env });
    assert.equal(cr.code, 0, cr.stderr);
    const ws = cr.json.workspace_id as string;
    try {
      await sh(face, ws, "echo x > f; mkfifo pipe; mkdir d; mkfifo d/p2");
      const snap = ok(await face.call("workspace_snapshot_create", { workspace_id: ws, name: "a" }));
      assert.equal(snap.files, 1);
      assert.equal(snap.skipped_count, 2);
      assert.deepEqual(
        snap.skipped.map((x: Json) => x.path),
        ["d/p2", "pipe"],
      );
      for (const x of snap.skipped) assert.match(x.reason, /^a FIFO, which snapshots do not keep/);
      const plain = await runCli(["workspace", "snapshot", "create", ws, "--name", "b"], { env: c.env });
      assert.equal(plain.code, 0, plain.stderr);
      assert.match(plain.stdout, /^skipped pipe: a FIFO, which snapshots do not keep/m);
    } finally {
      await runCli(["workspace", "delete", ws], { env: c.env });
    }
  });
});

/* ---------------- faults ---------------- */

const wsDir = (c: TestState, ws: string) => join(c.stateDir, "workspaces", ws);

/**
 * Spawns `pyro ARGS`, waits until `path` exists and holds `marker`, waits `delayMs` more,
 * then SIGKILLs it. Returns whether it was still running then.
 */
async function killWhen(
  c: TestState,
  args: string[],
  path: string,
  marker: string,
  delayMs = 0,
): Promise<boolean> {
  const child = spawn(process.execPath, [CLI, ...args], { env: c.env, cwd: REPO, stdio: "ignore" });
  const exited = new Promise<void>((res) => child.on("exit", () => res()));
  let done = false;
  void exited.then(() => {
    done = true;
  });
  const t0 = Date.now();
  const seen = () =>
    readFile(path, "utf8").then(
      (t) => t.includes(marker),
      () => false,
    );
  while (!(await seen()) && !done && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 2));
  if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
  const wasRunning = !done;
  child.kill("SIGKILL");
  await exited;
  return wasRunning;
}

test("faults: unknown snapshot, busy reset, disk full, failed fork, SIGKILL mid snapshot and mid reset", async (t) => {
  await withGvisorState(t, async (c) =>
    withHostDir("pyro-snapfault-", async (host) => {
      const face = cliFace(c.env);
      // 600 files, ~6 MB: enough that a snapshot's scan takes a moment.
      const seed = await makeSeed(host);
      await mkdir(join(seed, "many"));
      for (let i = 0; i < 600; i++)
        await writeFile(join(seed, "many", `f${i}`), Buffer.alloc(10_000, i % 251));
      const ws = await face.create(seed);
      const dir = wsDir(c, ws);
      try {
        // Unknown snapshot: named, with the known ones (none yet).
        const r0 = await runCliJson<Json>(["workspace", "snapshot", "delete", ws, "ghost"], { env: c.env });
        assert.equal(r0.code, 1);
        assert.equal(r0.json.error.code, "not_found");
        assert.match(r0.json.error.message, /no snapshot named "ghost".*no snapshots yet/);

        // Reset while an exec runs: refused, the exec finishes, nothing changed.
        await sh(face, ws, "echo before > a.txt");
        const slow = runCliJsonGuest<Json>(
          ["workspace", "exec", ws, "--", "sh", "-c", "sleep 3; echo done > a.txt"],
          {
            env: c.env,
          },
        );
        const commands = join(dir, "commands");
        const t0 = Date.now();
        while (
          !(await readdir(commands).catch(() => [] as string[])).some((n) => n.startsWith("running-")) &&
          Date.now() - t0 < 10_000
        )
          await new Promise((r) => setTimeout(r, 20));
        const busy = await runCliJson<Json>(["workspace", "reset", ws], { env: c.env });
        assert.equal(busy.code, 1);
        assert.equal(busy.json.error.code, "invalid_state");
        assert.match(busy.json.error.message, /command\(s\) running/);
        assert.equal((await slow).json.exit_code, 0);
        assert.equal((await sh(face, ws, "cat a.txt")).trim(), "done");

        // Disk full on the host while snapshotting: error, no snapshot listed, workspace intact.
        const snaps = join(dir, "snapshots");
        await mkdir(snaps, { recursive: true });
        execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", snaps]);
        try {
          const full = await runCliJson<Json>(["workspace", "snapshot", "create", ws, "--name", "big"], {
            env: c.env,
          });
          assert.equal(full.code, 1, JSON.stringify(full.json));
          assert.equal(full.json.error.code, "disk_full");
          const l = await runCliJson<Json>(["workspace", "snapshot", "list", ws], { env: c.env });
          assert.deepEqual(l.json.snapshots, []);
          const objects = await readdir(join(snaps, "objects")).catch(() => [] as string[]);
          const leftover = (
            await Promise.all(objects.map((d) => readdir(join(snaps, "objects", d)).catch(() => [d])))
          ).flat();
          assert.deepEqual(leftover, [], "what the failed snapshot stored is removed");
          assert.equal((await sh(face, ws, "cat a.txt; ls many | wc -l")).trim(), "done\n600");
        } finally {
          execFileSync("umount", [snaps]);
        }
        ok(await face.call("workspace_snapshot_create", { workspace_id: ws, name: "good" }));

        // A fork that fails (the parent's baseline on another file system: the hardlink copy
        // fails while the forks' sandboxes start): no fork is left, not even half made.
        const base = join(dir, "baseline");
        execFileSync("mount", ["--bind", host, base]);
        try {
          const f = await runCliJson<Json>(["workspace", "fork", ws, "--count", "2"], { env: c.env });
          assert.equal(f.code, 1, JSON.stringify(f.json));
        } finally {
          execFileSync("umount", [base]);
        }
        const all = await runCliJson<Json>(["workspace", "list"], { env: c.env });
        assert.deepEqual(
          all.json.workspaces.map((w: Json) => w.workspace_id),
          [ws],
        );
        assert.equal((await runscList(c.stateDir)).length, 1, "no fork's sandbox is left");

        // SIGKILL in the middle of a snapshot (the sandbox is paused while files are read):
        // the next call thaws it, no half snapshot is listed, files are intact.
        await sh(face, ws, "echo x > many/f1");
        const op = join(dir, "snapshots", "op.json");
        // Killed once the sandbox is (being) paused: the runsc pause it started still completes.
        assert.ok(
          await killWhen(
            c,
            ["workspace", "snapshot", "create", ws, "--name", "killed"],
            op,
            '"paused": true',
          ),
        );
        assert.equal((await sh(face, ws, "cat a.txt; cat many/f1")).trim(), "done\nx");
        assert.equal(existsSync(op), false, "the interrupted operation was finished");
        const names = ok(await face.call("workspace_snapshot_list", { workspace_id: ws })).snapshots.map(
          (s: Json) => s.name,
        );
        assert.ok(
          JSON.stringify(names) === '["good"]' || JSON.stringify(names) === '["good","killed"]',
          JSON.stringify(names),
        );

        // SIGKILL in the middle of a reset, at three points (early; while the old sandbox is
        // killed and removed and the files restored; while the new one starts): the next
        // call finishes it (files as at the snapshot, one running sandbox), and it works.
        for (const delayMs of [20, 400, 1300]) {
          await sh(face, ws, "echo changed > a.txt; rm -r many; echo extra > extra.txt");
          await killWhen(c, ["workspace", "reset", ws, "--snapshot", "good"], op, "reset", delayMs);
          const status = await runCliJson<Json>(["workspace", "status", ws], { env: c.env });
          assert.equal(
            status.json.state,
            "running",
            `killed after ${delayMs} ms: ${JSON.stringify(status.json)}`,
          );
          assert.equal(
            (
              await sh(
                face,
                ws,
                "cat a.txt; ls many | wc -l; ls extra.txt 2>&1 || true; ls -a | grep -c pyro-restore || true",
              )
            ).trim(),
            "done\n600\nls: cannot access 'extra.txt': No such file or directory\n0",
            `killed after ${delayMs} ms`,
          );
          // The old sandbox's delete runs detached (the engine's retire): gone within seconds.
          let left = await runscList(c.stateDir);
          for (let i = 0; i < 100 && left.length > 1; i++) {
            await new Promise((r) => setTimeout(r, 100));
            left = await runscList(c.stateDir);
          }
          assert.equal(left.length, 1, `one sandbox: the old one is gone (${JSON.stringify(left)})`);
        }

        // A workspace whose sandbox died (killed from outside) is revived by a reset.
        const runsc = (await runscBinary())!;
        execFileSync(runsc, [
          `--root=${join(c.stateDir, "runsc")}`,
          "--network=none",
          "--overlay2=root:memory",
          "kill",
          `pyro-${ws}`,
          "KILL",
        ]);
        await new Promise((r) => setTimeout(r, 500));
        const dead = await runCliJson<Json>(["workspace", "status", ws], { env: c.env });
        assert.equal(dead.json.state, "failed");
        ok(await face.call("workspace_reset", { workspace_id: ws, snapshot: "good" }));
        assert.equal((await sh(face, ws, "cat a.txt")).trim(), "done");
      } finally {
        await face.call("workspace_delete", { workspace_id: ws });
      }
    }),
  );
});
