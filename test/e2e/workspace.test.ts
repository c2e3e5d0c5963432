import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { Pyro, PyroError } from "../../src/index.js";
import {
  CLI,
  REPO,
  runCli,
  runCliJson,
  runscBinary,
  runscList,
  type Skippable,
  type TestState,
  withGvisorState,
  withHostDir,
} from "../helpers.js";
import { makeTar, type TarEntry } from "../tar-fixtures.js";

/**
 * Issue 3: persistent workspaces through the built CLI (and the SDK where a second process
 * matters), against the real gVisor engine.
 */

type Ctx = TestState & { pyro: Pyro; host: string };
type Status = {
  workspace_id: string;
  environment: string;
  state: string;
  reason: string | null;
  created_at: string;
  expires_at: string;
  vcpu_count: number;
  mem_mib: number;
  network: boolean;
  execution_mode: string;
  command_count: number;
  last_command: {
    sequence: number;
    command: string;
    exit_code: number;
    started_at: string;
    duration_ms: number;
  } | null;
  workspace_seed: {
    mode: string;
    seed_path: string | null;
    destination: string;
    entry_count: number;
    bytes_written: number;
  };
};
/** workspace_seed's origin for a seed the caller named (no project involved). */
const FROM_SEED_PATH = { origin_kind: "seed_path", origin_ref: null, origin_commit: null, origin_url: null };
type ExecJson = {
  timed_out: boolean;
  workspace_id: string;
  sequence: number;
  exit_code: number;
  stdout: string;
  stderr: string;
  execution_mode: string;
  command: string;
};
type LogsJson = {
  workspace_id: string;
  commands: {
    sequence: number;
    command: string;
    exit_code: number;
    stdout: string;
    stderr: string;
    started_at: string;
    duration_ms: number;
    timed_out: boolean;
  }[];
};

/** A fresh state dir, an SDK on it, and a scratch dir for host-side files. */
function withWs(t: Skippable, fn: (c: Ctx) => Promise<void>): Promise<void> {
  return withGvisorState(t, (c) =>
    withHostDir("pyro-ws-host-", (host) => fn({ ...c, pyro: new Pyro({ env: c.env }), host })),
  );
}

/** `pyro workspace exec ID --json -- ARGV...` */
async function wsExec(env: NodeJS.ProcessEnv, id: string, argv: string[], extra: string[] = []) {
  const r = await runCli(["workspace", "exec", id, "--json", ...extra, "--", ...argv], { env });
  let json: ExecJson | undefined;
  try {
    json = JSON.parse(r.stdout) as ExecJson;
  } catch {
    json = undefined;
  }
  return { ...r, json };
}

/** Lists a guest directory tree as "path content" lines (files) and "path/" (dirs). */
async function guestTree(env: NodeJS.ProcessEnv, id: string, dir = "/workspace"): Promise<string> {
  const r = await wsExec(env, id, [
    "sh",
    "-c",
    `cd ${dir} && find . -mindepth 1 | sort | while read -r p; do if [ -d "$p" ]; then echo "$p/"; else echo "$p $(cat "$p")"; fi; done`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  return r.json!.stdout;
}

async function seedDir(host: string): Promise<string> {
  const seed = join(host, "seed");
  await mkdir(join(seed, "src", "deep"), { recursive: true });
  await writeFile(join(seed, "README"), "seeded readme\n");
  await writeFile(join(seed, "src", "main.c"), "int main(){}\n");
  await writeFile(join(seed, "src", "deep", "x.txt"), "x\n");
  return seed;
}

test("create seeds /workspace from a directory, .tar, .tar.gz and .tgz before it returns", async (t) => {
  await withWs(t, async ({ env, host, pyro }) => {
    const seed = await seedDir(host);
    const entries: TarEntry[] = [
      { name: "proj", type: "directory" },
      { name: "proj/a.txt", body: "archive a\n" },
      { name: "proj/link", type: "symlink", linkname: "a.txt" },
      { name: "top.txt", body: "top\n" },
    ];
    const tar = await makeTar(join(host, "seed.tar"), entries, false);
    const targz = await makeTar(join(host, "seed.tar.gz"), entries, true);
    const tgz = await makeTar(join(host, "seed.tgz"), entries, true);

    const [dirWs, tarIdOnly, gzWs, tgzWs] = await Promise.all([
      runCliJson<Status>(["workspace", "create", "debian:12", "--seed-path", seed], { env }),
      // A relative seed path is resolved against the caller's working directory.
      runCli(["workspace", "create", "debian:12", "--seed-path", "seed.tar", "--id-only"], {
        env,
        cwd: host,
      }),
      pyro.createWorkspace({ environment: "debian:12", seedPath: targz }),
      pyro.createWorkspace({ seedPath: tgz }),
    ]);
    assert.equal(dirWs.code, 0, dirWs.stderr);
    assert.equal(tarIdOnly.code, 0, tarIdOnly.stderr);
    assert.match(tarIdOnly.stdout, /^ws_[0-9a-f]{16}\n$/, "--id-only prints only the id");
    const tarId = tarIdOnly.stdout.trim();
    try {
      const d = dirWs.json;
      assert.equal(d.state, "running");
      assert.equal(d.environment, "debian:12");
      assert.equal(d.execution_mode, "gvisor");
      assert.deepEqual(d.workspace_seed, {
        mode: "directory",
        seed_path: seed,
        destination: "/workspace",
        entry_count: 5,
        bytes_written: 14 + 13 + 2,
        ...FROM_SEED_PATH,
      });
      assert.equal(d.command_count, 0);
      assert.equal(d.last_command, null);
      assert.equal(
        await guestTree(env, d.workspace_id),
        "./README seeded readme\n./src/\n./src/deep/\n./src/deep/x.txt x\n./src/main.c int main(){}\n",
      );

      const tarStatus = await runCliJson<Status>(["workspace", "status", tarId], { env });
      assert.deepEqual(tarStatus.json.workspace_seed, {
        mode: "tar_archive",
        seed_path: tar,
        destination: "/workspace",
        entry_count: 4,
        bytes_written: 14,
        ...FROM_SEED_PATH,
      });
      const expected = "./proj/\n./proj/a.txt archive a\n./proj/link archive a\n./top.txt top\n";
      assert.equal(await guestTree(env, tarId), expected);
      for (const [ws, path] of [
        [gzWs, targz],
        [tgzWs, tgz],
      ] as const) {
        assert.equal(ws.status.workspace_seed.mode, "tar_archive");
        assert.equal(ws.status.workspace_seed.seed_path, path);
        assert.equal(ws.status.workspace_seed.entry_count, 4);
        assert.equal(await guestTree(env, ws.id), expected);
      }
      const link = await wsExec(env, tarId, ["readlink", "proj/link"]);
      assert.equal(link.json?.stdout, "a.txt\n", "symlinks inside the archive stay symlinks");
    } finally {
      await Promise.all(
        [dirWs.json.workspace_id, tarId, gzWs.id, tgzWs.id].map((id) =>
          runCli(["workspace", "delete", id], { env }),
        ),
      );
    }
  });
});

test("a workspace session: sync push, exec, persistence, status, logs, list, delete", async (t) => {
  await withWs(t, async ({ env, host, stateDir }) => {
    const seed = await seedDir(host);
    const created = await runCliJson<Status>(
      ["workspace", "create", "debian:12", "--seed-path", seed, "--ttl-seconds", "600", "--mem-mib", "512"],
      { env },
    );
    assert.equal(created.code, 0, created.stderr);
    const id = created.json.workspace_id;
    assert.equal(created.json.mem_mib, 512);
    assert.equal(created.json.vcpu_count, 1);
    assert.equal(created.json.network, false);
    const wsDir = join(stateDir, "workspaces", id);

    // exec runs in /workspace; the exit code passes through; state persists between execs.
    const first = await wsExec(env, id, [
      "sh",
      "-c",
      "pwd; echo one > made.txt; echo root > /root/r.txt; echo tmp > /tmp/t.txt; export GONE=1; echo to-stderr >&2; exit 3",
    ]);
    assert.equal(first.code, 3, first.stderr);
    assert.equal(first.json?.exit_code, 3);
    assert.equal(first.json?.stdout, "/workspace\n");
    assert.equal(first.json?.stderr, "to-stderr\n");
    assert.equal(first.json?.sequence, 1);
    assert.equal(first.json?.execution_mode, "gvisor");
    const second = await wsExec(env, id, [
      "sh",
      "-c",
      "cat made.txt /root/r.txt /tmp/t.txt; echo GONE=$GONE",
    ]);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.json?.stdout, "one\nroot\ntmp\nGONE=\n");
    assert.equal(second.json?.sequence, 2);
    // The host side of /workspace is the workspace's files directory.
    assert.equal(await readFile(join(wsDir, "files", "made.txt"), "utf8"), "one\n");
    const missing = await wsExec(env, id, ["no-such-tool-xyz"]);
    assert.equal(missing.code, 127);
    assert.match(missing.json?.stderr ?? "", /no-such-tool-xyz: not found/);
    const human = await runCli(["workspace", "exec", id, "--", "sh", "-c", "echo human; exit 5"], { env });
    assert.equal(human.code, 5);
    assert.equal(human.stdout, "human\n");
    // A job left in the background keeps running, and does not hold the exec open.
    const t0 = performance.now();
    const bg = await wsExec(
      env,
      id,
      ["sh", "-c", "sleep 300 > /dev/null 2>&1 & sleep 299 & echo started"],
      ["--timeout-seconds", "20"],
    );
    assert.equal(bg.code, 0, bg.stderr);
    assert.equal(bg.json?.timed_out, false);
    assert.equal(bg.json?.stdout, "started\n");
    assert.ok(performance.now() - t0 < 8_000, "exec waited for a background job");
    const procs = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done";
    const alive = await wsExec(env, id, ["sh", "-c", procs]);
    assert.match(alive.json?.stdout ?? "", /sleep 300/);
    // A timeout kills the command and everything it started, and the workspace lives on.
    const slow = await wsExec(
      env,
      id,
      ["sh", "-c", "sleep 301 & sleep 302; echo never"],
      ["--timeout-seconds", "1"],
    );
    assert.equal(slow.code, 124);
    assert.equal(slow.json?.timed_out, true);
    assert.equal(slow.json?.exit_code, 124);
    const after = await wsExec(env, id, ["sh", "-c", procs]);
    assert.doesNotMatch(
      after.json?.stdout ?? "",
      /sleep 30[12]/,
      "processes of the timed-out command survived",
    );
    assert.match(after.json?.stdout ?? "", /sleep 300/, "a background job of an earlier command was killed");

    // sync push: a directory to the default destination overwrites what it carries, leaves the rest.
    const upd = join(host, "update");
    await mkdir(join(upd, "src"), { recursive: true });
    await writeFile(join(upd, "README"), "updated readme\n");
    await writeFile(join(upd, "src", "new.c"), "new\n");
    const push1 = await runCliJson<{
      mode: string;
      destination: string;
      entry_count: number;
      bytes_written: number;
      source_path: string;
    }>(["workspace", "sync", "push", id, upd], { env });
    assert.equal(push1.code, 0, push1.stderr);
    assert.deepEqual(push1.json, {
      workspace_id: id,
      source_path: upd,
      mode: "directory",
      destination: "/workspace",
      entry_count: 3,
      bytes_written: 19,
      baseline_updated: false,
    });
    // relative --dest, an archive, and an absolute path under /workspace
    const arch = await makeTar(join(host, "more.tgz"), [{ name: "m.txt", body: "from archive\n" }], true);
    const push2 = await runCliJson<{ mode: string; destination: string }>(
      ["workspace", "sync", "push", id, arch, "--dest", "sub/dir"],
      { env },
    );
    assert.equal(push2.code, 0, push2.stderr);
    assert.equal(push2.json.mode, "tar_archive");
    assert.equal(push2.json.destination, "/workspace/sub/dir");
    const push3 = await runCliJson<{ destination: string }>(
      ["workspace", "sync", "push", id, upd, "--dest", "/workspace/abs/"],
      { env, cwd: host },
    );
    assert.equal(push3.json.destination, "/workspace/abs");
    const push4 = await runCliJson<{ destination: string }>(
      ["workspace", "sync", "push", id, "update", "--dest", "rel"],
      { env, cwd: host },
    );
    assert.equal(push4.code, 0, "relative source paths resolve against the caller's cwd");
    assert.equal(
      await guestTree(env, id),
      [
        "./README updated readme",
        "./abs/",
        "./abs/README updated readme",
        "./abs/src/",
        "./abs/src/new.c new",
        "./made.txt one",
        "./rel/",
        "./rel/README updated readme",
        "./rel/src/",
        "./rel/src/new.c new",
        "./src/",
        "./src/deep/",
        "./src/deep/x.txt x",
        "./src/main.c int main(){}",
        "./src/new.c new",
        "./sub/",
        "./sub/dir/",
        "./sub/dir/m.txt from archive",
        "",
      ].join("\n"),
    );
    // Destinations outside /workspace are refused before anything is copied.
    for (const dest of ["/etc", "../x", "/workspace/../tmp", "/"]) {
      const r = await runCli(["workspace", "sync", "push", id, upd, "--dest", dest], { env });
      assert.equal(r.code, 2, `--dest ${dest}: ${r.stderr}`);
      assert.match(r.stderr, /outside \/workspace/, dest);
    }
    const etc = await wsExec(env, id, ["sh", "-c", "ls /etc/README /x /tmp/README 2>/dev/null | wc -l"]);
    assert.equal(etc.json?.stdout, "0\n");
    const badSrc = await runCli(["workspace", "sync", "push", id, join(host, "nope")], { env });
    assert.equal(badSrc.code, 2);
    assert.match(badSrc.stderr, /source path does not exist/);

    // status and logs
    const st = await runCliJson<Status>(["workspace", "status", id], { env });
    assert.equal(st.json.state, "running");
    // 10 commands: the 8 execs above, the tree listing, the /etc check (sync pushes are not commands).
    assert.equal(st.json.command_count, 10);
    assert.equal(st.json.last_command?.sequence, 10);
    assert.equal(st.json.last_command?.exit_code, 0);
    assert.match(st.json.last_command?.command ?? "", /^sh -c /);
    assert.equal(st.json.workspace_seed.mode, "directory");
    const humanStatus = await runCli(["workspace", "status", id], { env });
    assert.match(humanStatus.stdout, /state: +running/);
    const logs = await runCliJson<LogsJson>(["workspace", "logs", id, "--include-output"], { env });
    assert.deepEqual(
      logs.json.commands.map((c) => c.sequence),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
    assert.deepEqual(
      logs.json.commands.map((c) => c.exit_code),
      [3, 0, 127, 5, 0, 0, 124, 0, 0, 0],
    );
    assert.equal(logs.json.commands[0]!.stdout, "/workspace\n");
    assert.equal(logs.json.commands[0]!.stderr, "to-stderr\n");
    assert.equal(logs.json.commands[0]!.command, first.json?.command);
    assert.equal(logs.json.commands[3]!.stdout, "human\n");
    const times = logs.json.commands.map((c) => Date.parse(c.started_at));
    assert.deepEqual(
      [...times].sort((a, b) => a - b),
      times,
      "log entries are in order",
    );
    assert.equal(logs.json.commands[6]!.timed_out, true);
    const humanLogs = await runCli(["workspace", "logs", id], { env });
    assert.match(humanLogs.stdout, /#1 .*→ exit 3/);
    assert.match(humanLogs.stdout, /#7 .*→ exit 124 \(timed out\)/);

    const list = await runCliJson<{ workspaces: Status[] }>(["workspace", "list"], { env });
    assert.deepEqual(
      list.json.workspaces.map((w) => [w.workspace_id, w.state, w.command_count]),
      [[id, "running", 10]],
    );

    // delete removes the sandbox and every file; a second delete is a clear not-found.
    const del = await runCliJson<{ deleted: boolean }>(["workspace", "delete", id], { env });
    assert.deepEqual(del.json, { workspace_id: id, deleted: true });
    assert.deepEqual(await runscList(stateDir), []);
    assert.deepEqual(await readdir(join(stateDir, "workspaces")), []);
    const again = await runCli(["workspace", "delete", id], { env });
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, new RegExp(`no workspace with id ${id}`));
    const gone = await runCli(["workspace", "exec", id, "--", "true"], { env });
    assert.notEqual(gone.code, 0);
    assert.match(gone.stderr, /no workspace with id/);
    assert.deepEqual(
      (await runCliJson<{ workspaces: Status[] }>(["workspace", "list"], { env })).json.workspaces,
      [],
    );
  });
});

test("one workspace, many processes: concurrent execs from two CLIs, status from the SDK, delete from a third", async (t) => {
  await withWs(t, async ({ env, stateDir, pyro }) => {
    const created = await runCli(["workspace", "create", "debian:12", "--id-only"], { env });
    assert.equal(created.code, 0, created.stderr);
    const id = created.stdout.trim();
    const [a, b] = await Promise.all([
      wsExec(env, id, ["sh", "-c", "sleep 0.5; echo A > a.txt; echo from-a"]),
      wsExec(env, id, ["sh", "-c", "sleep 0.5; echo B > b.txt; echo from-b; exit 9"]),
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 9, b.stderr);
    assert.equal(a.json?.stdout, "from-a\n");
    assert.equal(b.json?.stdout, "from-b\n");
    assert.deepEqual([a.json?.sequence, b.json?.sequence].sort(), [1, 2]);
    const both = await wsExec(env, id, ["cat", "a.txt", "b.txt"]);
    assert.equal(both.json?.stdout, "A\nB\n");

    // workspace.json is still valid JSON after concurrent updates, and agrees with the SDK.
    const rec = JSON.parse(await readFile(join(stateDir, "workspaces", id, "workspace.json"), "utf8")) as {
      command_count: number;
    };
    assert.equal(rec.command_count, 3);
    const st = await pyro.statusWorkspace(id);
    assert.equal(st.state, "running");
    assert.equal(st.command_count, 3);
    const logs = await pyro.logsWorkspace(id, { includeOutput: true });
    assert.deepEqual(
      logs.commands.map((c) => c.sequence),
      [1, 2, 3],
    );
    assert.deepEqual(
      logs.commands
        .slice(0, 2)
        .map((c) => c.stdout)
        .sort(),
      ["from-a\n", "from-b\n"],
    );
    const viaSdk = await pyro.execWorkspace(id, { command: "cat a.txt" });
    assert.equal(viaSdk.stdout, "A\n");

    // Ctrl-C on an exec: pyro exits 130, the guest command is killed, the workspace lives on.
    const child = spawn(
      process.execPath,
      [CLI, "workspace", "exec", id, "--", "sh", "-c", "echo before; touch started; sleep 303"],
      {
        env,
        cwd: REPO,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    const exited = new Promise<number | null>((res) => child.on("close", (code) => res(code)));
    const filesDir = join(stateDir, "workspaces", id, "files");
    const deadline = Date.now() + 15_000;
    while (!existsSync(join(filesDir, "started"))) {
      assert.ok(Date.now() < deadline, "the command never started");
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill("SIGINT");
    assert.equal(await exited, 130);
    // The log keeps the interrupted command with the output it had produced, and says why.
    const interrupted = (await pyro.logsWorkspace(id, { limit: 1, includeOutput: true })).commands[0]!;
    assert.equal(interrupted.exit_code, 130);
    assert.equal(interrupted.stdout, "before\n");
    assert.match(interrupted.stderr ?? "", /^\[pyro\] command cancelled/);
    const ps = await pyro.execWorkspace(id, {
      command: "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done",
    });
    assert.doesNotMatch(ps.stdout, /sleep 303/, "the interrupted command still runs in the guest");
    assert.equal((await pyro.statusWorkspace(id)).state, "running");

    const del = await runCli(["workspace", "delete", id], { env });
    assert.equal(del.code, 0, del.stderr);
    assert.match(del.stdout, new RegExp(`deleted ${id}`));
    await assert.rejects(
      pyro.statusWorkspace(id),
      (e: unknown) => e instanceof PyroError && e.code === "not_found",
    );
  });
});

test("TTL expiry: status says expired (not not-found), exec fails clearly, delete still works", async (t) => {
  await withWs(t, async ({ env, stateDir }) => {
    const created = await runCliJson<Status>(["workspace", "create", "debian:12", "--ttl-seconds", "1"], {
      env,
    });
    const id = created.json.workspace_id;
    assert.ok(Date.parse(created.json.expires_at) - Date.parse(created.json.created_at) <= 1_100);
    await new Promise((r) => setTimeout(r, 1_300));
    const st = await runCliJson<Status>(["workspace", "status", id], { env });
    assert.equal(st.code, 0, st.stderr);
    assert.equal(st.json.state, "expired");
    assert.match(st.json.reason ?? "", /ttl elapsed/);
    assert.deepEqual(await runscList(stateDir), [], "the expired sandbox was stopped");
    assert.deepEqual(
      (await readdir(join(stateDir, "workspaces", id))).filter((n) => n === "files" || n === "baseline"),
      [],
      "its files and its baseline are removed",
    );
    const ex = await runCli(["workspace", "exec", id, "--", "true"], { env });
    assert.equal(ex.code, 1);
    assert.match(ex.stderr, new RegExp(`workspace ${id} expired`));
    const push = await runCli(["workspace", "sync", "push", id, stateDir], { env });
    assert.notEqual(push.code, 0);
    assert.match(push.stderr, /expired/);
    const list = await runCliJson<{ workspaces: Status[] }>(["workspace", "list"], { env });
    assert.equal(list.json.workspaces[0]?.state, "expired");
    const del = await runCli(["workspace", "delete", id], { env });
    assert.equal(del.code, 0, del.stderr);
    assert.deepEqual(await readdir(join(stateDir, "workspaces")), []);
  });
});

test("a sandbox killed from outside: status failed with a reason, exec fails clearly, delete cleans up", async (t) => {
  await withWs(t, async ({ env, stateDir }) => {
    const created = await runCli(["workspace", "create", "debian:12", "--id-only"], { env });
    const id = created.stdout.trim();
    assert.equal((await wsExec(env, id, ["true"])).code, 0);
    const bin = (await runscBinary())!;
    const state = await new Promise<string>((res) => {
      const ch = spawn(bin, [`--root=${join(stateDir, "runsc")}`, "state", `pyro-${id}`], {
        stdio: ["ignore", "pipe", "ignore"],
      });
      let o = "";
      ch.stdout.on("data", (d) => {
        o += d;
      });
      ch.on("close", () => res(o));
    });
    const pid = (JSON.parse(state) as { pid: number }).pid;
    assert.ok(pid > 0);
    process.kill(pid, "SIGKILL");
    await new Promise((r) => setTimeout(r, 200));

    // The first exec notices (nothing has looked since the kill), then status agrees.
    const ex = await runCli(["workspace", "exec", id, "--", "true"], { env });
    assert.equal(ex.code, 1, ex.stderr);
    assert.match(ex.stderr, new RegExp(`sandbox ${id} is not running|workspace ${id} is failed`));
    assert.match(ex.stderr, /delete it/);
    const st = await runCliJson<Status>(["workspace", "status", id], { env });
    assert.equal(st.code, 0, st.stderr);
    assert.equal(st.json.state, "failed");
    assert.ok(st.json.reason && st.json.reason.length > 5, `reason: ${st.json.reason}`);
    const again = await runCli(["workspace", "exec", id, "--", "true"], { env });
    assert.equal(again.code, 1);
    assert.match(again.stderr, new RegExp(`workspace ${id} is failed: `));
    const push = await runCli(["workspace", "sync", "push", id, stateDir], { env });
    assert.equal(push.code, 1);
    assert.match(push.stderr, /is failed/);
    const del = await runCli(["workspace", "delete", id], { env });
    assert.equal(del.code, 0, del.stderr);
    assert.deepEqual(await readdir(join(stateDir, "workspaces")), []);
  });
});
