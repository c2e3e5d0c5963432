import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmod, mkdir, readFile, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { CLI, REPO, runCli, runCliJson, runscList, sandboxProcesses, withGvisorState } from "../helpers.js";

/**
 * The unlucky user: pyro killed (SIGKILL, SIGHUP) at random moments of every operation, and
 * a damaged record. Whatever happens, every sandbox stays findable and deletable, no command
 * outlives its timeout by more than 5 s, and a damaged record never costs a live workspace
 * its files. Processes are checked in the host's process table, not through pyro.
 */

async function waitFor(cond: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return cond();
}

/** Starts the CLI and kills it with `sig` after `afterMs`; resolves when it is gone. */
function killCliAfter(args: string[], env: NodeJS.ProcessEnv, afterMs: number, sig: NodeJS.Signals) {
  return new Promise<void>((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, cwd: REPO, stdio: "ignore" });
    const t = setTimeout(() => child.kill(sig), afterMs);
    child.on("close", () => {
      clearTimeout(t);
      resolve();
    });
  });
}

interface WsView {
  workspace_id: string;
  state: string;
  reason: string | null;
}

async function listWorkspaces(env: NodeJS.ProcessEnv): Promise<WsView[]> {
  const r = await runCliJson<{ workspaces: WsView[] }>(["workspace", "list"], { env });
  assert.equal(r.code, 0, r.stderr);
  return r.json.workspaces;
}

test("kill -9 at random moments of workspace create: every sandbox left is listed and deletable", async (t) => {
  await withGvisorState(t, async ({ env, stateDir }) => {
    const seed = join(stateDir, "..", `seed-${process.pid}`);
    await mkdir(seed, { recursive: true });
    for (let i = 0; i < 200; i++) await writeFile(join(seed, `f${i}.txt`), `file ${i}\n`.repeat(50));
    for (const delay of [150, 400, 700, 1000, 1400]) {
      await killCliAfter(["workspace", "create", "debian:12", "--seed-path", seed], env, delay, "SIGKILL");
    }
    const listed = await listWorkspaces(env);
    const ids = new Set(listed.map((w) => w.workspace_id));
    // Every runsc container under this state dir belongs to a listed workspace.
    for (const cid of await runscList(stateDir)) {
      assert.ok(
        ids.has(cid.replace(/^pyro-/, "")),
        `sandbox ${cid} is not listed: ${JSON.stringify(listed)}`,
      );
    }
    for (const w of listed) {
      assert.ok(["running", "failed", "creating"].includes(w.state), JSON.stringify(w));
      const d = await runCli(["workspace", "delete", w.workspace_id], { env });
      assert.equal(d.code, 0, d.stderr);
    }
    assert.deepEqual(await listWorkspaces(env), []);
    assert.ok(await waitFor(() => sandboxProcesses(stateDir).length === 0, 5_000), "sandbox processes left");
  });
});

test("kill -9 of create, then the reaper alone cleans up the interrupted workspace", async (t) => {
  await withGvisorState(t, async ({ env, stateDir }) => {
    // Killed late enough that the sandbox exists but the record still says `creating`.
    for (const delay of [900, 1200]) {
      await killCliAfter(["workspace", "create", "debian:12"], env, delay, "SIGKILL");
    }
    const reap = await runCliJson<{ reaped_workspaces: string[] }>(["vm", "reap"], { env });
    assert.equal(reap.code, 0, reap.stderr);
    // What is left after the reaper is a finished create (kill came too late), never a half one.
    for (const w of await listWorkspaces(env)) {
      assert.equal(w.state, "running", JSON.stringify(w));
      assert.equal((await runCli(["workspace", "delete", w.workspace_id], { env })).code, 0);
    }
    assert.deepEqual(await runscList(stateDir), []);
    assert.ok(await waitFor(() => sandboxProcesses(stateDir).length === 0, 5_000), "sandbox processes left");
  });
});

test("kill -9 or SIGHUP of exec and run: no command outlives its timeout by 5 s", async (t) => {
  await withGvisorState(t, async ({ env, stateDir }) => {
    const c = await runCliJson<{ workspace_id: string }>(["workspace", "create", "debian:12"], { env });
    assert.equal(c.code, 0, c.stderr);
    const ws = c.json.workspace_id;
    const sleepers = async () => {
      const r = await runCli(
        [
          "workspace",
          "exec",
          ws,
          "--",
          "sh",
          "-c",
          'for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline; echo; done | grep -c "^sleep 4[0-9]" || true',
        ],
        { env },
      );
      return Number(r.stdout.trim() || "0");
    };
    for (const [sig, delay] of [
      ["SIGKILL", 600],
      ["SIGHUP", 900],
      ["SIGKILL", 1500],
    ] as const) {
      const t0 = Date.now();
      await killCliAfter(
        ["workspace", "exec", ws, "--timeout-seconds", "3", "--", "sleep", "45"],
        env,
        delay,
        sig,
      );
      const gone = await waitFor(async () => (await sleepers()) === 0, 3_000 + 5_000 - (Date.now() - t0));
      assert.ok(gone, `exec's command still running 8 s after a ${sig} at ${delay} ms`);
    }
    // One-shot runs: the whole sandbox is gone within timeout + 5 s.
    for (const [sig, delay] of [
      ["SIGKILL", 700],
      ["SIGHUP", 1200],
    ] as const) {
      const before = new Set(sandboxProcesses(stateDir));
      const t0 = Date.now();
      await killCliAfter(
        ["run", "debian:12", "--timeout-seconds", "3", "--", "sleep", "45"],
        env,
        delay,
        sig,
      );
      const gone = await waitFor(
        () => sandboxProcesses(stateDir).filter((p) => !before.has(p)).length === 0,
        3_000 + 5_000 - (Date.now() - t0),
      );
      assert.ok(gone, `run's sandbox still running 8 s after a ${sig} at ${delay} ms`);
    }
    assert.equal((await runCli(["vm", "reap"], { env })).code, 0);
    assert.equal((await runCli(["workspace", "delete", ws], { env })).code, 0);
    assert.ok(await waitFor(() => sandboxProcesses(stateDir).length === 0, 5_000), "sandbox processes left");
  });
});

test("kill -9 during workspace delete: the workspace is still listed or gone, and delete finishes the job", async (t) => {
  await withGvisorState(t, async ({ env, stateDir }) => {
    for (const delay of [100, 400, 900]) {
      const c = await runCliJson<{ workspace_id: string }>(["workspace", "create", "debian:12"], { env });
      assert.equal(c.code, 0, c.stderr);
      await killCliAfter(["workspace", "delete", c.json.workspace_id], env, delay, "SIGKILL");
      const left = (await listWorkspaces(env)).find((w) => w.workspace_id === c.json.workspace_id);
      const running = (await runscList(stateDir)).includes(`pyro-${c.json.workspace_id}`);
      if (running) assert.ok(left, "a running sandbox is not listed after an interrupted delete");
      if (left) assert.equal((await runCli(["workspace", "delete", c.json.workspace_id], { env })).code, 0);
    }
    assert.deepEqual(await runscList(stateDir), []);
    assert.ok(await waitFor(() => sandboxProcesses(stateDir).length === 0, 5_000), "sandbox processes left");
  });
});

test("a damaged record: listed as damaged, never reaped with its files, deletable with its sandbox", async (t) => {
  await withGvisorState(t, async ({ env, stateDir }) => {
    const c = await runCliJson<{ workspace_id: string }>(["workspace", "create", "debian:12"], { env });
    assert.equal(c.code, 0, c.stderr);
    const ws = c.json.workspace_id;
    assert.equal(
      (await runCli(["workspace", "exec", ws, "--", "sh", "-c", "echo precious > note.txt"], { env })).code,
      0,
    );
    const dir = join(stateDir, "workspaces", ws);
    await writeFile(join(dir, "workspace.json"), '{"workspace_id": "ws_trunc');
    // Old enough that the former reaper would have removed it.
    const old = new Date(Date.now() - 3600_000);
    await utimes(dir, old, old);

    const listed = (await listWorkspaces(env)).find((w) => w.workspace_id === ws);
    assert.equal(listed?.state, "damaged", JSON.stringify(listed));
    assert.match(listed?.reason ?? "", /delete/);
    const st = await runCliJson<WsView>(["workspace", "status", ws], { env });
    assert.equal(st.json.state, "damaged");
    const ex = await runCli(["workspace", "exec", ws, "--", "true"], { env });
    assert.equal(ex.code, 1);
    assert.match(ex.stderr, /damaged/);

    assert.equal((await runCli(["vm", "reap"], { env })).code, 0);
    assert.equal(await readFile(join(dir, "files", "note.txt"), "utf8"), "precious\n");
    assert.ok(
      (await runscList(stateDir)).includes(`pyro-${ws}`),
      "the live sandbox was touched by the reaper",
    );

    // A record that points its paths elsewhere is damaged too, not obeyed.
    const d = await runCli(["workspace", "delete", ws], { env });
    assert.equal(d.code, 0, d.stderr);
    assert.deepEqual(await runscList(stateDir), []);
    assert.equal(await stat(dir).catch(() => undefined), undefined);
    assert.ok(await waitFor(() => sandboxProcesses(stateDir).length === 0, 5_000), "sandbox processes left");
  });
});

test("a tampered record naming paths outside its directory is damaged, and delete removes only its own", async (t) => {
  await withGvisorState(t, async ({ env, stateDir }) => {
    const c = await runCliJson<{ workspace_id: string }>(["workspace", "create", "debian:12"], { env });
    assert.equal(c.code, 0, c.stderr);
    const ws = c.json.workspace_id;
    const victim = join(stateDir, "..", `victim-${process.pid}`);
    await mkdir(victim, { recursive: true });
    await writeFile(join(victim, "keep.txt"), "keep");
    const path = join(stateDir, "workspaces", ws, "workspace.json");
    const rec = JSON.parse(await readFile(path, "utf8"));
    rec.handle.sandboxDir = victim;
    await writeFile(path, JSON.stringify(rec));
    const st = await runCliJson<WsView>(["workspace", "status", ws], { env });
    assert.equal(st.json.state, "damaged");
    assert.match(st.json.reason ?? "", /sandboxDir/);
    assert.equal((await runCli(["workspace", "delete", ws], { env })).code, 0);
    assert.equal(await readFile(join(victim, "keep.txt"), "utf8"), "keep");
    assert.deepEqual(await runscList(stateDir), []);
  });
});

test("the state dir is private even when it was made world-readable under /tmp", async (t) => {
  await withGvisorState(t, async ({ env, stateDir }) => {
    await chmod(stateDir, 0o755);
    const c = await runCliJson<{ workspace_id: string }>(["workspace", "create", "debian:12"], { env });
    assert.equal(c.code, 0, c.stderr);
    assert.equal((await stat(stateDir)).mode & 0o777, 0o700);
    assert.equal((await runCli(["workspace", "delete", c.json.workspace_id], { env })).code, 0);
  });
});

test("a workspace past its TTL stops by itself, with no pyro process alive, within 60 s", async (t) => {
  await withGvisorState(t, async ({ env, stateDir }) => {
    const c = await runCliJson<{ workspace_id: string; expires_at: string }>(
      ["workspace", "create", "debian:12", "--ttl-seconds", "3"],
      { env },
    );
    assert.equal(c.code, 0, c.stderr);
    assert.ok(sandboxProcesses(stateDir).length > 0, "the sandbox should be running");
    // No pyro call from here on: only the host's process table is watched.
    const expiry = Date.parse(c.json.expires_at);
    const stopped = await waitFor(
      () => sandboxProcesses(stateDir).length === 0,
      expiry - Date.now() + 60_000,
    );
    assert.ok(stopped, "the sandbox still runs 60 s after its expiry");
    const st = await runCliJson<WsView>(["workspace", "status", c.json.workspace_id], { env });
    assert.equal(st.json.state, "expired");
    assert.equal((await runCli(["workspace", "delete", c.json.workspace_id], { env })).code, 0);
  });
});
