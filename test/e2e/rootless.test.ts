import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { CLI, type CliResult, REPO, runscBinary, tempDir } from "../helpers.js";

/**
 * pyro as an ordinary user, the way MCP clients start it: no root after setup-host.sh.
 * Run as root (CI), this creates two users with `useradd` (Debian gives them subordinate
 * ids), gives them a shared read-only environment cache (a hard-linked copy of root's
 * debian:12 with its EROFS image, as setup-host.sh makes /var/cache/pyro), and drives the
 * built CLI and `mcp serve` (through the official MCP client) as one of them with
 * `runuser`, then checks that the other can neither see nor touch that user's workspace.
 * Run as a normal user, it drives the same flow as that user.
 */

const isRoot = process.getuid?.() === 0;
const SUFFIX = `${process.pid % 100000}`;
const USER_A = `pyro-rl-a${SUFFIX}`;
const USER_B = `pyro-rl-b${SUFFIX}`;

interface Who {
  /** undefined: the current (non-root) user. */
  user?: string;
  home: string;
  env: Record<string, string>;
}

let skipReason: string | undefined;
let work: string | undefined; // root only: the copy of the package and the shared cache
let cli = CLI;
let a: Who;
let b: Who | undefined;
const createdUsers: string[] = [];

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** argv that runs `node <cli> ...args` as `who`, with exactly `who.env`. */
function argvFor(who: Who, args: string[]): { command: string; args: string[] } {
  if (!who.user) return { command: process.execPath, args: [cli, ...args] };
  const kv = Object.entries(who.env).map(([k, v]) => `${k}=${v}`);
  return {
    command: "runuser",
    args: ["-u", who.user, "--", "env", "-i", ...kv, process.execPath, cli, ...args],
  };
}

function runAs(who: Who, args: string[], timeoutMs = 120_000): Promise<CliResult> {
  const { command, args: argv } = argvFor(who, args);
  return new Promise((resolve) => {
    const child = spawn(command, argv, {
      env: who.user ? { PATH: process.env.PATH ?? "/usr/bin:/bin" } : { ...process.env, ...who.env },
      cwd: who.home,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => {
      stdout += c;
    });
    child.stderr.on("data", (c) => {
      stderr += c;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function jsonAs<T>(who: Who, args: string[]): Promise<T> {
  const dd = args.indexOf("--");
  const r = await runAs(
    who,
    dd < 0 ? [...args, "--json"] : [...args.slice(0, dd), "--json", ...args.slice(dd)],
  );
  assert.equal(r.code, 0, `pyro ${args.join(" ")} as ${who.user ?? "me"}: ${r.stderr}\n${r.stdout}`);
  return JSON.parse(r.stdout) as T;
}

/** As root: a user with a home and subordinate ids, like any account `useradd` makes. */
function makeUser(name: string): Who {
  sh("useradd", ["--create-home", "--shell", "/bin/sh", name]);
  createdUsers.push(name);
  const home = sh("getent", ["passwd", name]).split(":")[5]!;
  return { user: name, home, env: {} };
}

before(async () => {
  if (!(await runscBinary())) {
    skipReason = "runsc not installed (run scripts/setup-host.sh)";
    return;
  }
  if (!existsSync(CLI)) {
    skipReason = "pyro is not built (npm run build)";
    return;
  }
  if (!isRoot) {
    const home = await tempDir("pyro-rootless-me-");
    a = { home, env: { PYRO_STATE_DIR: join(home, "state") } };
    return;
  }
  for (const bin of ["useradd", "userdel", "runuser", "newuidmap"]) {
    try {
      sh("sh", ["-c", `command -v ${bin}`]);
    } catch {
      skipReason = `${bin} is missing (scripts/setup-host.sh installs uidmap)`;
      return;
    }
  }
  // The environment, as root has it, with its EROFS image (a run makes the image if missing).
  const prep = await mkdtemp("/var/tmp/pyro-rootless-");
  work = prep;
  const rootState = join(prep, "root-state");
  const warm = await runAs({ home: REPO, env: { PYRO_STATE_DIR: rootState } }, [
    "run",
    "debian:12",
    "--",
    "true",
  ]);
  assert.equal(warm.code, 0, `root's debian:12 does not run: ${warm.stderr}`);
  const info = await jsonAs<{ path: string }>({ home: REPO, env: { PYRO_STATE_DIR: rootState } }, [
    "env",
    "inspect",
    "debian:12",
  ]);
  const entry = join(info.path, "..");
  if (!existsSync(`${info.path}.erofs`)) {
    skipReason = "no EROFS image beside root's debian:12 (mkfs.erofs missing? run scripts/setup-host.sh)";
    return;
  }
  // The shared cache: a hard-linked copy (same filesystem) of root's entry, world-readable,
  // owned by root, exactly what an unprivileged user finds in /var/cache/pyro.
  const shared = join(prep, "shared");
  await mkdir(join(shared, "environments"), { recursive: true });
  sh("cp", ["-al", entry, join(shared, "environments")]);
  // The package, where the test users can read it (a checkout under /root is not).
  const pkg = join(prep, "pkg");
  await mkdir(pkg);
  await cp(join(REPO, "package.json"), join(pkg, "package.json"));
  await cp(join(REPO, "dist"), join(pkg, "dist"), { recursive: true });
  cli = join(pkg, "dist", "cli", "main.js");
  sh("chmod", ["-R", "a+rX", prep]);
  await chmod(prep, 0o755);
  a = makeUser(USER_A);
  b = makeUser(USER_B);
  for (const who of [a, b])
    who.env = {
      HOME: who.home,
      USER: who.user!,
      LOGNAME: who.user!,
      PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      PYRO_SHARED_CACHE: shared,
      // No warm pool (on by default): what a test leaves is what its commands made.
      PYRO_POOL_SIZE: "0",
    };
});

after(async () => {
  // Sandboxes left by a failed test are removed by id, as their owner; then the users.
  for (const name of createdUsers) {
    const root = `${sh("getent", ["passwd", name]).split(":")[5]}/.local/state/pyro-mcp/runsc`;
    const runsc = await runscBinary();
    if (runsc && existsSync(root)) {
      const ids = sh("runuser", ["-u", name, "--", runsc, "--rootless", `--root=${root}`, "list", "-quiet"])
        .split("\n")
        .filter(Boolean);
      for (const id of ids)
        sh("runuser", ["-u", name, "--", runsc, "--rootless", `--root=${root}`, "delete", "--force", id]);
    }
    sh("userdel", ["--remove", name]);
  }
  if (work) await rm(work, { recursive: true, force: true });
  if (!isRoot && a) await rm(a.home, { recursive: true, force: true });
});

describe("pyro without root", () => {
  let workspaceId = "";

  test("run, the workspace family and mcp serve work as an ordinary user", async (t) => {
    if (skipReason) return t.skip(skipReason);
    const doctor = await jsonAs<{ ok: boolean; default_engine: string; platform: { root: boolean } }>(a, [
      "doctor",
    ]);
    assert.equal(doctor.platform.root, false);
    assert.equal(doctor.default_engine, "gvisor");
    assert.equal(doctor.ok, true);

    const ran = await jsonAs<{ exit_code: number; stdout: string }>(a, [
      "run",
      "debian:12",
      "--",
      "sh",
      "-c",
      "id -u; stat -c %U /root /etc/shadow; test -r /etc/shadow && echo readable; git --version",
    ]);
    assert.equal(ran.exit_code, 0, JSON.stringify(ran));
    // Owners come from the image: a rootless gofer would show `nobody`, /etc/shadow unreadable.
    assert.match(ran.stdout, /^0\nroot\nroot\nreadable\ngit version/);

    const seed = join(a.home, "seed");
    await mkdir(seed, { recursive: true });
    await writeFile(join(seed, "hello.txt"), "hello from the host\n");
    if (a.user) sh("chown", ["-R", `${a.user}:`, seed]);
    const created = await jsonAs<{ workspace_id: string; state: string }>(a, [
      "workspace",
      "create",
      "debian:12",
      "--seed-path",
      seed,
    ]);
    workspaceId = created.workspace_id;
    assert.equal(created.state, "running");
    const ex = await jsonAs<{ exit_code: number; stdout: string }>(a, [
      "workspace",
      "exec",
      workspaceId,
      "--",
      "sh",
      "-c",
      "cat /workspace/hello.txt && echo made > /workspace/made.txt",
    ]);
    assert.equal(ex.exit_code, 0);
    assert.equal(ex.stdout, "hello from the host\n");
    // A deadline still ends the command (runsc kill --pid into the user's own sandbox).
    const t0 = Date.now();
    const slowRun = await runAs(a, [
      "workspace",
      "exec",
      "--json",
      "--timeout-seconds",
      "1",
      workspaceId,
      "--",
      "sleep",
      "30",
    ]);
    const slow = JSON.parse(slowRun.stdout) as { timed_out: boolean };
    assert.equal(slow.timed_out, true);
    assert.ok(Date.now() - t0 < 15_000, `timeout took ${Date.now() - t0} ms`);
    const pushed = await runAs(a, ["workspace", "sync", "push", workspaceId, seed, "--dest", "again"]);
    assert.equal(pushed.code, 0, pushed.stderr);
    const logs = await jsonAs<{ entries?: unknown[]; commands?: unknown[] }>(a, [
      "workspace",
      "logs",
      workspaceId,
    ]);
    assert.ok(JSON.stringify(logs).includes("hello.txt"), JSON.stringify(logs).slice(0, 400));

    // The MCP server as the user, through the official client, sees the same workspace.
    const { command, args } = argvFor(a, ["mcp", "serve"]);
    const transport = new StdioClientTransport({
      command,
      args,
      env: a.user
        ? { PATH: process.env.PATH ?? "/usr/bin:/bin" }
        : ({ ...process.env, ...a.env } as Record<string, string>),
      cwd: a.home,
      stderr: "pipe",
    });
    const client = new Client({ name: "pyro-rootless-e2e", version: "0.0.0" });
    await client.connect(transport);
    try {
      const r = (await client.callTool({
        name: "workspace_exec",
        arguments: {
          workspace_id: workspaceId,
          command: "cat /workspace/again/hello.txt /workspace/made.txt",
        },
      })) as { isError?: boolean; structuredContent?: { exit_code: number; stdout: string } };
      assert.notEqual(r.isError, true, JSON.stringify(r));
      assert.equal(r.structuredContent?.stdout, "hello from the host\nmade\n");
      const vm = (await client.callTool({
        name: "vm_run",
        arguments: { environment: "debian:12", command: "echo vm-run-ok" },
      })) as { isError?: boolean; structuredContent?: { stdout: string } };
      assert.notEqual(vm.isError, true, JSON.stringify(vm));
      assert.equal(vm.structuredContent?.stdout, "vm-run-ok\n");
    } finally {
      await client.close();
    }
  });

  test("another user can neither see nor touch the workspace", async (t) => {
    if (skipReason) return t.skip(skipReason);
    if (!b) return t.skip("needs root to create a second user");
    if (!workspaceId) return t.skip("the first test made no workspace");
    const theirs = await jsonAs<{ workspaces: unknown[] }>(b, ["workspace", "list"]);
    assert.deepEqual(theirs.workspaces, []);
    for (const args of [
      ["workspace", "status", workspaceId],
      ["workspace", "exec", workspaceId, "--", "true"],
      ["workspace", "delete", workspaceId],
    ]) {
      const r = await runAs(b, args);
      assert.notEqual(r.code, 0, `${args.join(" ")} as another user succeeded: ${r.stdout}`);
    }
    // Pointed straight at the owner's state dir, pyro refuses, and so does the kernel.
    const aState = join(a.home, ".local", "state", "pyro-mcp");
    const direct = await runAs({ ...b, env: { ...b.env, PYRO_STATE_DIR: aState } }, [
      "workspace",
      "delete",
      workspaceId,
    ]);
    assert.notEqual(direct.code, 0);
    const runsc = (await runscBinary())!;
    const other = b.user!;
    // runsc itself, aimed at the owner's runsc root, neither lists nor kills the sandbox.
    const listed = sh("sh", [
      "-c",
      'runuser -u "$0" -- "$@" 2>&1 || true',
      other,
      runsc,
      "--rootless",
      `--root=${join(aState, "runsc")}`,
      "list",
    ]);
    assert.doesNotMatch(listed, new RegExp(workspaceId));
    assert.throws(() =>
      sh("runuser", [
        "-u",
        other,
        "--",
        runsc,
        "--rootless",
        `--root=${join(aState, "runsc")}`,
        "kill",
        `pyro-${workspaceId}`,
        "KILL",
      ]),
    );
    assert.throws(() => sh("runuser", ["-u", other, "--", "ls", aState]));
    // Still the owner's, still running.
    const ex = await jsonAs<{ exit_code: number; stdout: string }>(a, [
      "workspace",
      "exec",
      workspaceId,
      "--",
      "cat",
      "/workspace/made.txt",
    ]);
    assert.equal(ex.stdout, "made\n");
  });

  test("the owner deletes it and nothing is left", async (t) => {
    if (skipReason) return t.skip(skipReason);
    if (!workspaceId) return t.skip("the first test made no workspace");
    const del = await runAs(a, ["workspace", "delete", workspaceId]);
    assert.equal(del.code, 0, del.stderr);
    const list = await jsonAs<{ workspaces: unknown[] }>(a, ["workspace", "list"]);
    assert.deepEqual(list.workspaces, []);
    const root = join(a.env.PYRO_STATE_DIR ?? join(a.home, ".local", "state", "pyro-mcp"), "runsc");
    const runsc = (await runscBinary())!;
    const left = a.user
      ? sh("runuser", ["-u", a.user, "--", runsc, "--rootless", `--root=${root}`, "list", "-quiet"])
      : sh(runsc, ["--rootless", `--root=${root}`, "list", "-quiet"]);
    assert.equal(left.trim(), "");
  });
});
