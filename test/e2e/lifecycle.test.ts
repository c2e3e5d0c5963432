import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { Pyro, PyroError } from "../../src/index.js";
import {
  CLI,
  runCli,
  runCliJson,
  runCliJsonGuest,
  type TestState,
  withGvisorState,
  withTestState,
} from "../helpers.js";

/**
 * Workspace lifecycle (workspaces/lifecycle.ts) and discovery (naming.ts) through the three
 * faces against real engines: stop keeps the files and refuses commands with the fix, start
 * brings a fresh sandbox on them; names stand for ids; labels filter the list, ordered by
 * last activity; a pyro killed with SIGKILL in the middle of a stop or a start leaves a
 * workspace that starts again and deletes; under QEMU a service survives pause/resume with
 * its pid (gVisor's pause is a stop, said by paused_with_memory: false).
 */

const ENV = "debian:12";

type Status = {
  workspace_id: string;
  state: string;
  reason: string | null;
  name: string | null;
  labels: Record<string, string>;
  paused_with_memory: boolean | null;
};
type Step = Status & {
  action: string;
  detail: string;
  ended_shells: string[];
  ended_services: string[];
  resumed_with_memory: boolean | null;
};

async function cliExec(c: TestState, ws: string, script: string) {
  return runCli(["workspace", "exec", ws, "--", "sh", "-c", script], { env: c.env });
}

test("CLI: create with a name and labels, stop keeps /workspace and refuses exec with the fix, start", async (t) => {
  await withGvisorState(t, async (c) => {
    const created = await runCliJson<Status>(
      ["workspace", "create", ENV, "--name", "life-cli", "--label", "team=core", "--label", "task=14"],
      { env: c.env, timeoutMs: 600_000 },
    );
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.json.name, "life-cli");
    assert.deepEqual(created.json.labels, { team: "core", task: "14" });
    const ws = created.json.workspace_id;
    // The name stands for the id.
    assert.equal((await cliExec(c, "life-cli", "echo kept > /workspace/a.txt")).code, 0);

    const stop = await runCliJson<Step>(["workspace", "stop", "life-cli"], { env: c.env });
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal(stop.json.state, "stopped");
    assert.equal(stop.json.action, "stop");
    assert.equal(
      (await runCliJson<Status>(["workspace", "status", ws], { env: c.env })).json.state,
      "stopped",
    );

    const refused = await cliExec(c, ws, "true");
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /is stopped/);
    assert.match(refused.stderr, new RegExp(`pyro workspace start ${ws}`));
    const refusedJson = await runCliJsonGuest<{ error: { code: string } }>(
      ["workspace", "exec", ws, "--", "true"],
      { env: c.env },
    );
    assert.equal(refusedJson.json.error.code, "invalid_state");

    const start = await runCliJson<Step>(["workspace", "start", ws], { env: c.env, timeoutMs: 120_000 });
    assert.equal(start.code, 0, start.stderr);
    assert.equal(start.json.state, "running");
    const cat = await cliExec(c, ws, "cat /workspace/a.txt");
    assert.equal(cat.code, 0, cat.stderr);
    assert.equal(cat.stdout, "kept\n");
    // The log survived too.
    const logs = await runCliJson<{ command_count: number }>(["workspace", "logs", ws], { env: c.env });
    assert.equal(logs.json.command_count, 2);

    const help = await runCli(["workspace", "stop", "--help"], { env: c.env });
    assert.match(help.stdout, /Examples:\n\s+\$ pyro workspace stop/);
    assert.equal((await runCli(["workspace", "delete", "life-cli"], { env: c.env })).code, 0);
  });
});

test("SDK: stop ends services and says so, start keeps files; gVisor pause is a stop (paused_with_memory false)", async (t) => {
  await withGvisorState(t, async (c) => {
    const pyro = new Pyro({ env: c.env });
    const ws = await pyro.createWorkspace({ environment: ENV, name: "life-sdk", labels: { kind: "sdk" } });
    try {
      await ws.files.write("src/app.txt", "v1\n");
      await ws.services.start("tick", ["sh", "-c", "while true; do sleep 1; done"]);
      const stop = await ws.stop();
      assert.equal(stop.state, "stopped");
      assert.deepEqual(stop.ended_services, ["tick"]);
      assert.equal(ws.status.state, "stopped");
      await assert.rejects(
        () => ws.exec("true"),
        (e: unknown) =>
          e instanceof PyroError &&
          e.code === "invalid_state" &&
          /startWorkspace/.test(String(e.hint)) &&
          /stopped/.test(e.message),
      );
      // Files can't be read while stopped either (they need the sandbox): same error.
      await assert.rejects(() => ws.files.read("src/app.txt"), /is stopped/);
      const start = await ws.start();
      assert.equal(start.state, "running");
      assert.equal((await ws.files.read("src/app.txt")).content, "v1\n");
      assert.deepEqual(await ws.services.list(), []);

      const pause = await ws.pause();
      assert.equal(pause.state, "paused");
      assert.equal(pause.paused_with_memory, false);
      assert.match(String(pause.reason), /without its memory/);
      await assert.rejects(() => ws.exec("true"), /is paused/);
      const resume = await ws.resume();
      assert.equal(resume.state, "running");
      assert.equal(resume.resumed_with_memory, false);
      assert.equal((await ws.files.read("src/app.txt")).content, "v1\n");
    } finally {
      await ws.delete();
    }
  });
});

test("SDK: names are unique and stand for ids; labels filter the list, ordered by last activity", async (t) => {
  await withGvisorState(t, async (c) => {
    const pyro = new Pyro({ env: c.env });
    const a = await pyro.createWorkspace({ environment: ENV, name: "alpha", labels: { team: "core" } });
    const b = await pyro.createWorkspace({ environment: ENV, labels: { team: "core", tier: "x" } });
    const d = await pyro.createWorkspace({ environment: ENV, labels: { team: "web" } });
    try {
      await assert.rejects(
        () => pyro.createWorkspace({ environment: ENV, name: "alpha" }),
        (e: unknown) => e instanceof PyroError && e.code === "invalid_argument" && /taken/.test(e.message),
      );
      await assert.rejects(() => pyro.statusWorkspace("no-such-name"), /no workspace named/);
      assert.equal((await pyro.statusWorkspace("alpha")).workspace_id, a.id);

      // The most recently active first: alpha ran a command last.
      await a.exec("true");
      const all = await pyro.listWorkspaces();
      assert.deepEqual(
        all.map((w) => w.workspace_id),
        [a.id, d.id, b.id],
      );
      const core = await pyro.listWorkspaces({ labels: { team: "core" } });
      assert.deepEqual(
        core.map((w) => w.workspace_id),
        [a.id, b.id],
      );
      assert.deepEqual(
        (await pyro.listWorkspaces({ labels: { team: "core", tier: "x" } })).map((w) => w.workspace_id),
        [b.id],
      );

      // update: rename, set and clear labels; a stopped workspace can be updated too.
      await b.stop();
      const u = await b.update({ name: "beta", labels: { tier: "y" }, clearLabels: ["team"] });
      assert.equal(u.name, "beta");
      assert.deepEqual(u.labels, { tier: "y" });
      await assert.rejects(() => b.update({ name: "alpha" }), /taken/);
      const cli = await runCliJson<{ workspaces: Status[] }>(["workspace", "list", "--label", "tier=y"], {
        env: c.env,
      });
      assert.deepEqual(
        cli.json.workspaces.map((w) => [w.workspace_id, w.name, w.state]),
        [[b.id, "beta", "stopped"]],
      );
      const cleared = await runCliJson<Status>(
        ["workspace", "update", "beta", "--clear-label", "tier", "--name", ""],
        { env: c.env },
      );
      assert.equal(cleared.code, 0, cleared.stderr);
      assert.equal(cleared.json.name, null);
      assert.deepEqual(cleared.json.labels, {});
      // Without --json the change is applied and the new status printed (this once crashed
      // with `RENDER[o.name] is not a function` after applying it).
      const plain = await runCli(["workspace", "update", b.id, "--name", "gamma"], { env: c.env });
      assert.equal(plain.code, 0, plain.stderr);
      assert.match(plain.stdout, new RegExp(`^workspace: +${b.id}$`, "m"));
      assert.match(plain.stdout, /^name: +gamma$/m);
      assert.doesNotMatch(plain.stderr, /not a function/);
      assert.equal((await pyro.statusWorkspace("gamma")).workspace_id, b.id);
      const bad = await runCli(["workspace", "list", "--label", "novalue"], { env: c.env });
      assert.equal(bad.code, 2);
    } finally {
      for (const w of [a, b, d]) await w.delete();
    }
  });
});

test("MCP (official client): stop, a refused exec naming workspace_start, start, list by label", async (t) => {
  await withGvisorState(t, async (c) => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [CLI, "mcp", "serve", "--profile", "workspace-full", "--no-project"],
      env: Object.fromEntries(Object.entries(c.env).filter((e): e is [string, string] => e[1] !== undefined)),
      stderr: "pipe",
    });
    const client = new Client({ name: "pyro-lifecycle-e2e", version: "0" });
    await client.connect(transport);
    type R = { structuredContent?: Record<string, unknown>; isError?: boolean; content?: { text: string }[] };
    const raw = (name: string, args: Record<string, unknown>) =>
      client.callTool({ name, arguments: args }, undefined, { timeout: 600_000 }) as Promise<R>;
    const call = async (name: string, args: Record<string, unknown>) => {
      const r = await raw(name, args);
      assert.notEqual(r.isError, true, `${name}: ${r.content?.map((x) => x.text).join("\n")}`);
      return r.structuredContent!;
    };
    try {
      const tools = (await client.listTools()).tools.map((x) => x.name);
      for (const n of ["workspace_stop", "workspace_start", "workspace_pause", "workspace_resume"])
        assert.ok(tools.includes(n), n);
      const ws = String(
        (await call("workspace_create", { environment: ENV, name: "life-mcp", labels: { via: "mcp" } }))
          .workspace_id,
      );
      await call("workspace_exec", { workspace_id: "life-mcp", command: "echo mcp > /workspace/m" });
      assert.equal((await call("workspace_stop", { workspace_id: ws })).state, "stopped");
      const refused = await raw("workspace_exec", { workspace_id: ws, command: "true" });
      assert.equal(refused.isError, true);
      assert.match(refused.content!.map((x) => x.text).join("\n"), /workspace_start/);
      assert.equal((await call("workspace_start", { workspace_id: ws })).state, "running");
      assert.equal(
        String((await call("workspace_exec", { workspace_id: ws, command: "cat /workspace/m" })).stdout),
        "mcp\n",
      );
      const list = (await call("workspace_list", { labels: { via: "mcp" } })).workspaces as Status[];
      assert.deepEqual(
        list.map((w) => w.name),
        ["life-mcp"],
      );
      await call("workspace_delete", { workspace_id: ws });
    } finally {
      await client.close();
    }
  });
});

/** Runs a pyro CLI command and SIGKILLs it once the record says `state` (the step is under way). */
async function killDuring(c: TestState, ws: string, args: string[], state: string): Promise<void> {
  const rec = join(c.stateDir, "workspaces", ws, "workspace.json");
  const child = spawn(process.execPath, [CLI, ...args], { env: c.env, stdio: "ignore" });
  const exited = new Promise((r) => child.on("exit", r));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const text = await readFile(rec, "utf8").catch(() => "");
    if (text.includes(`"state":"${state}"`) || text.includes(`"state": "${state}"`)) break;
    assert.ok(Date.now() < deadline, `the record never said ${state}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  child.kill("SIGKILL");
  await exited;
}

test("pyro killed with SIGKILL mid-stop and mid-start: the workspace reads stopped, starts again, deletes", async (t) => {
  await withGvisorState(t, async (c) => {
    const created = await runCliJson<Status>(["workspace", "create", ENV], {
      env: c.env,
      timeoutMs: 600_000,
    });
    const ws = created.json.workspace_id;
    assert.equal((await cliExec(c, ws, "echo safe > /workspace/s")).code, 0);

    await killDuring(c, ws, ["workspace", "stop", ws], "stopping");
    const afterStop = await runCliJson<Status>(["workspace", "status", ws], { env: c.env });
    assert.equal(afterStop.json.state, "stopped");
    assert.match(String(afterStop.json.reason), /interrupted/);
    assert.match((await cliExec(c, ws, "true")).stderr, /pyro workspace start/);
    assert.equal((await runCli(["workspace", "start", ws], { env: c.env })).code, 0);
    assert.equal((await cliExec(c, ws, "cat /workspace/s")).stdout, "safe\n");

    assert.equal((await runCli(["workspace", "stop", ws], { env: c.env })).code, 0);
    await killDuring(c, ws, ["workspace", "start", ws], "starting");
    const afterStart = await runCliJson<Status>(["workspace", "status", ws], { env: c.env });
    assert.equal(afterStart.json.state, "stopped");
    assert.match(String(afterStart.json.reason), /interrupted/);
    // A second start ends whatever sandbox the killed one made before booting its own.
    const again = await runCliJson<Step>(["workspace", "start", ws], { env: c.env });
    assert.equal(again.code, 0, again.stderr);
    assert.equal((await cliExec(c, ws, "cat /workspace/s")).stdout, "safe\n");

    // Killed mid-start once more, then deleted straight away: nothing is left (cleanup checks).
    assert.equal((await runCli(["workspace", "stop", ws], { env: c.env })).code, 0);
    await killDuring(c, ws, ["workspace", "start", ws], "starting");
    assert.equal((await runCli(["workspace", "delete", ws], { env: c.env })).code, 0);
  });
});

test("a stopped workspace still expires: the idle TTL counts from the stop, and the reaper removes it", async (t) => {
  // Only the explicit reap may expire it: a background reap falling due on a loaded machine
  // (create can take longer than the 30 s interval) would take it first.
  await withGvisorState(
    t,
    async (c) => {
      const created = await runCliJson<Status>(["workspace", "create", ENV], {
        env: c.env,
        timeoutMs: 600_000,
      });
      const ws = created.json.workspace_id;
      const stop = await runCliJson<Step & { expires_at: string; last_activity_at: string }>(
        ["workspace", "stop", ws],
        { env: c.env },
      );
      assert.equal(stop.json.state, "stopped");
      // The stop counted as activity.
      assert.ok(Date.parse(stop.json.last_activity_at) > Date.now() - 10_000);
      const upd = await runCliJson<{ expires_at: string }>(
        ["workspace", "update", ws, "--ttl-seconds", "1"],
        {
          env: c.env,
        },
      );
      assert.equal(upd.code, 0, upd.stderr);
      assert.equal(Date.parse(upd.json.expires_at), Date.parse(stop.json.last_activity_at) + 1000);
      await new Promise((r) => setTimeout(r, 1500));
      const reap = await runCliJson<{ reaped_workspaces: string[] }>(["vm", "reap"], { env: c.env });
      assert.deepEqual(reap.json.reaped_workspaces, [ws]);
      const st = await runCliJson<Status>(["workspace", "status", ws], { env: c.env });
      assert.equal(st.json.state, "expired");
      assert.match((await runCli(["workspace", "start", ws], { env: c.env })).stderr, /expired/);
      assert.equal((await runCli(["workspace", "delete", ws], { env: c.env })).code, 0);
    },
    { PYRO_REAP_INTERVAL_SECONDS: "86400" },
  );
});

async function qemuSkipReason(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return "qemu tests need root (the environment rootfs is root-owned)";
  for (const b of ["/usr/bin/qemu-system-x86_64", "/usr/bin/qemu-img"])
    if (!existsSync(b) && !process.env.PYRO_QEMU) return `qemu not installed (${b} missing)`;
  return undefined;
}

test("QEMU: a service started before pause answers after resume with the same pid", async (t) => {
  const QEMU = { PYRO_ENGINE: "qemu", PYRO_QEMU_ACCEL: process.env.PYRO_QEMU_ACCEL ?? "tcg" };
  await withTestState(t, await qemuSkipReason(), QEMU, async (c) => {
    const pyro = new Pyro({ env: c.env });
    const ws = await pyro.createWorkspace({ environment: ENV });
    try {
      // The service answers by bumping a counter file every 0.2 s.
      const svc = await ws.services.start(
        "beat",
        ["sh", "-c", "n=0; while true; do n=$((n+1)); echo $n > /tmp/beat; sleep 0.2; done"],
        { readyFile: "/tmp/beat" },
      );
      assert.equal(svc.state, "running");
      const pid = svc.pid;
      assert.ok(pid);
      const pause = await ws.pause();
      assert.equal(pause.state, "paused");
      assert.equal(pause.paused_with_memory, true);
      const resume = await ws.resume();
      assert.equal(resume.resumed_with_memory, true, resume.detail);
      assert.deepEqual(resume.ended_services, []);
      const after = await ws.services.status("beat");
      assert.equal(after.state, "running");
      assert.equal(after.pid, pid);
      const r = await ws.exec([
        "sh",
        "-c",
        `a=$(cat /tmp/beat); sleep 1; b=$(cat /tmp/beat); echo $a $b; kill -0 ${pid} && echo alive`,
      ]);
      const [a, b] = r.stdout.trim().split(/\s+/).map(Number);
      assert.ok(b! > a!, `the service keeps running after resume: ${r.stdout}`);
      assert.match(r.stdout, /alive/);
    } finally {
      await ws.delete();
    }
  });
});
