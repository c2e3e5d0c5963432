import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
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
 * Shells and services (workspaces/shells.ts, services.ts) through all three faces against
 * real gVisor: a python3 REPL talked to over several calls and read from a second process,
 * an HTTP service with readiness, the faults, and nothing left on the host after delete.
 */

const ENV = "debian:12-build";

type ShellRead = {
  cursor: number;
  next_cursor: number;
  dropped_bytes: number;
  output: string;
  state: string;
  exit_code: number | null;
};

/** Host processes that belong to this workspace's sandbox (runsc names them after it). */
function hostProcesses(ws: string): string[] {
  return execFileSync("ps", ["-eo", "pid,args"], { encoding: "utf8" })
    .split("\n")
    .filter((l) => l.includes(`pyro-${ws}`));
}

async function create(c: TestState): Promise<string> {
  const r = await runCliJson<{ workspace_id: string }>(["workspace", "create", ENV], {
    env: c.env,
    timeoutMs: 600_000,
  });
  assert.equal(r.code, 0, r.stderr);
  return r.json.workspace_id;
}

test("shells: a python3 REPL over several CLI calls, read by cursor from another process", async (t) => {
  await withGvisorState(t, async (c) => {
    const ws = await create(c);
    const open = await runCliJsonGuest<{ shell_id: string; state: string }>(
      ["workspace", "shell", "open", ws, "--", "python3"],
      { env: c.env },
    );
    assert.equal(open.code, 0, open.stderr);
    assert.equal(open.json.state, "running");
    const sh = open.json.shell_id;
    for (const line of ["x = 6*7", "print(x)"]) {
      const w = await runCli(["workspace", "shell", "write", ws, sh, "--input", line, "--newline"], {
        env: c.env,
      });
      assert.equal(w.code, 0, w.stderr);
    }
    const read = await runCli(
      ["workspace", "shell", "read", ws, sh, "--plain", "--wait-for-idle-ms", "300"],
      {
        env: c.env,
      },
    );
    assert.equal(read.code, 0, read.stderr);
    assert.match(read.stdout, /^42$/m);
    assert.doesNotMatch(read.stdout, /\r/);
    const next = Number(/next cursor (\d+)/.exec(read.stderr)?.[1]);
    assert.ok(next > 0, read.stderr);

    // Another process (the SDK here) goes on from that cursor: only what came after.
    const pyro = new Pyro({ env: c.env });
    const handle = await pyro.workspace(ws);
    await handle.shells.write(sh, "print(x + 1)", { newline: true });
    const more = await handle.shells.read(sh, { cursor: next, plain: true, waitForIdleMs: 300 });
    assert.equal(more.cursor, next);
    assert.match(more.output, /^43$/m);
    assert.doesNotMatch(more.output, /^42$/m, "nothing is read twice");
    const again = await handle.shells.read(sh, { cursor: more.next_cursor });
    assert.equal(again.output, "", "nothing new since");

    // ^C reaches the program's foreground group; the REPL survives it.
    await handle.shells.write(sh, "import time; time.sleep(60)", { newline: true });
    await handle.shells.signal(sh, "INT");
    const intr = await handle.shells.read(sh, { cursor: again.next_cursor, plain: true, waitForIdleMs: 300 });
    assert.match(intr.output, /KeyboardInterrupt/);
    assert.equal(intr.state, "running");

    // The program exits: reads give its final output and exit code; writes are refused.
    await handle.shells.write(sh, "import sys; print('bye'); sys.exit(5)", { newline: true });
    const end = await handle.shells.read(sh, { cursor: intr.next_cursor, plain: true, waitForIdleMs: 200 });
    assert.match(end.output, /bye/);
    assert.equal(end.state, "exited");
    assert.equal(end.exit_code, 5);
    await assert.rejects(
      handle.shells.write(sh, "1"),
      (e: unknown) => e instanceof PyroError && /exited/.test(e.message),
    );

    // Unknown ids are named, with where to look.
    const unknown = await runCli(["workspace", "shell", "read", ws, "sh_000000000000"], { env: c.env });
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no shell "sh_000000000000"/);
    assert.match(unknown.stderr, /pyro workspace shell list/);

    // A default shell, left running, and a flood bounded by the ring.
    const bash = await handle.shells.open();
    await handle.shells.write(bash.shell_id, "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo done", {
      newline: true,
    });
    const flood = await handle.shells.read(bash.shell_id, { waitForIdleMs: 500, maxBytes: 1024 });
    assert.ok(flood.dropped_bytes > 1_000_000, `dropped ${flood.dropped_bytes}`);
    assert.ok(flood.cursor > 0);
    const list = await handle.shells.list();
    assert.deepEqual(list.map((s) => s.shell_id).sort(), [sh, bash.shell_id].sort());

    await pyro.deleteWorkspace(ws);
    assert.deepEqual(hostProcesses(ws), [], "no process of the workspace's shells is left on the host");
  });
});

test("services: readiness, curl from inside, stop, logs after; faults reported with exit code and log", async (t) => {
  await withGvisorState(t, async (c) => {
    const ws = await create(c);
    const start = await runCliJsonGuest<{ state: string; ready: boolean; pid: number }>(
      [
        "workspace",
        "service",
        "start",
        ws,
        "web",
        "--ready-http",
        "http://127.0.0.1:8000/",
        "--",
        "python3",
        "-m",
        "http.server",
        "8000",
      ],
      { env: c.env },
    );
    assert.equal(start.code, 0, start.stderr);
    assert.equal(start.json.state, "running");
    assert.equal(start.json.ready, true);

    const curl = await runCli(["workspace", "exec", ws, "--", "curl", "-s", "127.0.0.1:8000/"], {
      env: c.env,
    });
    assert.equal(curl.code, 0, curl.stderr);
    assert.match(curl.stdout, /Directory listing for \//);

    const again = await runCli(["workspace", "service", "start", ws, "web", "--", "true"], { env: c.env });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already running/);

    const stop = await runCliJson<{ state: string; exit_code: number }>(
      ["workspace", "service", "stop", ws, "web"],
      {
        env: c.env,
      },
    );
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal(stop.json.state, "stopped");
    const logs = await runCli(["workspace", "service", "logs", ws, "web", "--tail-lines", "5"], {
      env: c.env,
    });
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /"GET \/ HTTP\/1\.1" 200/);

    // Exits at once: its exit code and last lines; never ready: stopped, reported, logs kept.
    const bad = await runCli(
      ["workspace", "service", "start", ws, "bad", "--", "sh", "-c", "echo about to fail; exit 3"],
      { env: c.env },
    );
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /exited with code 3/);
    assert.match(bad.stderr, /about to fail/);
    const slow = await runCli(
      [
        "workspace",
        "service",
        "start",
        ws,
        "slow",
        "--ready-tcp",
        "9",
        "--ready-timeout-seconds",
        "2",
        "--",
        "sh",
        "-c",
        "echo waiting; sleep 100",
      ],
      { env: c.env },
    );
    assert.equal(slow.code, 1);
    assert.match(slow.stderr, /not ready \(tcp 127\.0\.0\.1:9\) within 2 s/);
    assert.match(slow.stderr, /waiting/);

    // The SDK: status, a restart of the same name, and following a log to its end.
    const pyro = new Pyro({ env: c.env });
    const handle = await pyro.workspace(ws);
    const statuses = Object.fromEntries((await handle.services.list()).map((s) => [s.name, s.state]));
    assert.deepEqual(statuses, { bad: "exited", slow: "failed", web: "stopped" });
    const tick = await handle.services.start("tick", "for i in 1 2 3; do echo tick $i; sleep 0.2; done");
    assert.equal(tick.restarts, 0);
    let followed = "";
    for await (const text of handle.services.follow("tick")) followed += text;
    assert.equal(followed, "tick 1\ntick 2\ntick 3\n");
    const restarted = await handle.services.start("web", ["python3", "-m", "http.server", "8000"], {
      readyTcp: 8000,
    });
    assert.equal(restarted.restarts, 1);
    await assert.rejects(
      handle.services.status("nope"),
      (e: unknown) => e instanceof PyroError && e.code === "not_found",
    );

    // Two starts of one name at once: exactly one runs.
    const both = await Promise.allSettled([
      handle.services.start("twin", "sleep 30"),
      handle.services.start("twin", "sleep 30"),
    ]);
    assert.equal(both.filter((r) => r.status === "fulfilled").length, 1);
    assert.match(
      String((both.find((r) => r.status === "rejected") as PromiseRejectedResult).reason),
      /already running/,
    );

    // Deleting the workspace with a service running reaps it: nothing left on the host.
    assert.ok(hostProcesses(ws).length > 0);
    await pyro.deleteWorkspace(ws);
    assert.deepEqual(hostProcesses(ws), []);
  });
});

test("shells and services over MCP (workspace-full)", async (t) => {
  await withGvisorState(t, async (c) => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [CLI, "mcp", "serve", "--profile", "workspace-full", "--no-project"],
      env: Object.fromEntries(Object.entries(c.env).filter((e): e is [string, string] => e[1] !== undefined)),
      stderr: "pipe",
    });
    const client = new Client({ name: "pyro-shells-e2e", version: "0" });
    await client.connect(transport);
    const call = async (name: string, args: Record<string, unknown>) => {
      const r = (await client.callTool({ name, arguments: args }, undefined, { timeout: 600_000 })) as {
        structuredContent?: Record<string, unknown>;
        isError?: boolean;
        content?: { text: string }[];
      };
      assert.notEqual(r.isError, true, `${name}: ${r.content?.map((x) => x.text).join("\n")}`);
      return r.structuredContent!;
    };
    try {
      const tools = (await client.listTools()).tools.map((x) => x.name);
      for (const n of ["shell_open", "shell_write", "shell_read", "shell_signal", "shell_close"])
        assert.ok(tools.includes(n), n);
      for (const n of ["service_start", "service_list", "service_status", "service_logs", "service_stop"])
        assert.ok(tools.includes(n), n);
      const ws = String((await call("workspace_create", { environment: ENV })).workspace_id);
      const sh = String((await call("shell_open", { workspace_id: ws, command: ["python3"] })).shell_id);
      await call("shell_write", { workspace_id: ws, shell_id: sh, input: "x = 6*7", newline: true });
      await call("shell_write", { workspace_id: ws, shell_id: sh, input: "print(x)", newline: true });
      const read = (await call("shell_read", {
        workspace_id: ws,
        shell_id: sh,
        plain: true,
        wait_for_idle_ms: 300,
      })) as ShellRead;
      assert.match(read.output, /^42$/m);
      const closed = await call("shell_close", { workspace_id: ws, shell_id: sh });
      assert.equal(closed.closed, true);

      const svc = await call("service_start", {
        workspace_id: ws,
        name: "web",
        command: ["python3", "-m", "http.server", "8000"],
        ready_http: "http://127.0.0.1:8000/",
      });
      assert.equal(svc.ready, true);
      const probe = await call("workspace_exec", {
        workspace_id: ws,
        command:
          "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8000/').status)\"",
      });
      assert.equal(String(probe.stdout).trim(), "200");
      assert.equal((await call("service_stop", { workspace_id: ws, name: "web" })).state, "stopped");
      const logs = await call("service_logs", { workspace_id: ws, name: "web" });
      assert.match(String(logs.output), /GET \/ HTTP/);
      await call("workspace_delete", { workspace_id: ws });
      assert.deepEqual(hostProcesses(ws), []);
    } finally {
      await client.close();
    }
  });
});

test("shells and services on the QEMU microVM (through the agent's exec)", async (t) => {
  const skip =
    process.getuid?.() !== 0
      ? "qemu tests need root"
      : !existsSync("/usr/bin/qemu-system-x86_64") && !process.env.PYRO_QEMU
        ? "qemu not installed"
        : undefined;
  const qemu = { PYRO_ENGINE: "qemu", PYRO_QEMU_ACCEL: process.env.PYRO_QEMU_ACCEL ?? "tcg" };
  await withTestState(t, skip, qemu, async (c) => {
    const pyro = new Pyro({ env: c.env });
    const ws = await pyro.createWorkspace({ environment: "debian:12" });
    try {
      assert.equal(ws.status.execution_mode, "qemu");
      const sh = await ws.shells.open({ command: ["sh", "-i"] });
      await ws.shells.write(sh.shell_id, "x=$((6*7)); echo $x", { newline: true });
      const first = await ws.shells.read(sh.shell_id, { plain: true, waitForIdleMs: 300 });
      assert.match(first.output, /^42$/m);
      // A second, separate process reads on from that cursor.
      await ws.shells.write(sh.shell_id, "echo again-$x", { newline: true });
      const r = await runCliJson<ShellRead>(
        [
          "workspace",
          "shell",
          "read",
          ws.id,
          sh.shell_id,
          "--cursor",
          String(first.next_cursor),
          "--plain",
          "--wait-for-idle-ms",
          "300",
        ],
        { env: c.env },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.json.output, /^again-42$/m);
      assert.doesNotMatch(r.json.output, /^42$/m);

      const svc = await ws.services.start("w", "echo up; touch /tmp/ready; exec sleep 100", {
        readyFile: "/tmp/ready",
      });
      assert.equal(svc.ready, true);
      await assert.rejects(
        ws.services.start("bad", "echo bye; exit 4"),
        (e: unknown) =>
          e instanceof PyroError && /exited with code 4/.test(e.message) && /bye/.test(e.message),
      );
      assert.equal((await ws.services.stop("w")).state, "stopped");
      assert.equal((await ws.services.logs("w")).output, "up\n");
    } finally {
      await ws.delete();
    }
  });
});
