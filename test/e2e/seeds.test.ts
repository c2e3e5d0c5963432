import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { chmod, mkdir, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { ARCHIVE_LIMITS } from "../../src/project/archive.js";
import {
  CLI,
  REPO,
  runCli,
  runCliJson,
  type Skippable,
  type TestState,
  withGvisorState,
  withHostDir,
} from "../helpers.js";
import { bigZeroTarGz, makeTar, type TarEntry } from "../tar-fixtures.js";

/**
 * Seeds through the CLI: a hostile deep archive is refused fast and in little memory, seeds
 * never carry set-id bits to the host, and SIGTERM during a big seed leaves nothing behind.
 */

type Ctx = TestState & { host: string };

function withState(t: Skippable, fn: (c: Ctx) => Promise<void>): Promise<void> {
  return withGvisorState(t, (c) => withHostDir("pyro-seeds-host-", (host) => fn({ ...c, host })));
}

/** Workspace directories under a state dir (lock directories aside). */
async function workspaceDirs(stateDir: string): Promise<string[]> {
  return (await readdir(join(stateDir, "workspaces")).catch(() => [] as string[])).filter(
    (n) => !n.endsWith(".lock"),
  );
}

/** Peak resident memory of a live process in MB (VmHWM), or undefined once it is gone. */
function peakRssMb(pid: number): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Starts `pyro ...args` and reports how it ended, its peak memory (polled) and its output. */
function startCli(args: string[], env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, [CLI, ...args], {
    env,
    cwd: REPO,
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
  let peak = 0;
  const poll = setInterval(() => {
    peak = Math.max(peak, peakRssMb(child.pid!) ?? 0);
  }, 20);
  const t0 = performance.now();
  const done = new Promise<{
    code: number | null;
    ms: number;
    peakMb: number;
    stdout: string;
    stderr: string;
  }>((res) =>
    child.on("close", (code) => {
      clearInterval(poll);
      res({ code, ms: performance.now() - t0, peakMb: peak, stdout, stderr });
    }),
  );
  return { child, done };
}

test("a 1,500-level seed archive is refused within 10 s and 300 MB, naming the limit and the entry", async (t) => {
  await withState(t, async ({ env, stateDir, host }) => {
    const entries: TarEntry[] = [];
    let p = "";
    for (let i = 0; i < 1500; i++) {
      p += "d/";
      entries.push({ name: p, type: "directory" });
    }
    const deep = await makeTar(join(host, "deep.tar"), entries);
    const { child, done } = startCli(
      ["workspace", "create", "debian:12", "--seed-path", deep, "--json"],
      env,
    );
    const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const r = await done;
    clearTimeout(killer);
    assert.ok(r.ms < 10_000, `took ${Math.round(r.ms)} ms`);
    assert.ok(r.peakMb > 0 && r.peakMb < 300, `peak RSS ${r.peakMb} MB`);
    assert.equal(r.code, 1, r.stderr);
    const err = (JSON.parse(r.stdout) as { error: { code: string; message: string } }).error;
    assert.equal(err.code, "seed_rejected");
    assert.match(err.message, new RegExp(`beyond the limit of ${ARCHIVE_LIMITS.maxDepth}`));
    assert.match(
      err.message,
      /entry "(d\/){40}…(d\/){40}" \(514 characters\) is nested 257 directories deep/,
    );
    assert.deepEqual(await workspaceDirs(stateDir), []);
  });
});

test("set-uid/set-gid bits from tar and directory seeds never reach the host directory", async (t) => {
  await withState(t, async ({ env, stateDir, host }) => {
    const tar = await makeTar(join(host, "suid.tar"), [
      {
        name: "su-root",
        body: "#!/bin/sh\necho hi\n",
        mode: 0o4755,
        uid: 0,
        gid: 0,
        uname: "root",
        gname: "root",
      },
      { name: "sgid-dir", type: "directory", mode: 0o2775, uid: 0, gid: 0 },
    ]);
    const dir = join(host, "seed-dir");
    await mkdir(dir);
    await writeFile(join(dir, "su-root"), "#!/bin/sh\necho hi\n");
    await chmod(join(dir, "su-root"), 0o4755);
    await mkdir(join(dir, "sgid-dir"));
    await chmod(join(dir, "sgid-dir"), 0o2775);
    for (const seed of [tar, dir]) {
      const c = await runCliJson<{ workspace_id: string }>(
        ["workspace", "create", "debian:12", "--seed-path", seed],
        { env },
      );
      assert.equal(c.code, 0, c.stderr);
      const id = c.json.workspace_id;
      try {
        const files = join(stateDir, "workspaces", id, "files");
        for (const n of ["su-root", "sgid-dir"]) {
          const mode = (await stat(join(files, n))).mode & 0o7777;
          assert.equal(mode & 0o6000, 0, `${seed}: ${n} has mode ${mode.toString(8)} on the host`);
          assert.equal(mode & 0o755, 0o755, `${seed}: ${n} lost its ordinary bits (${mode.toString(8)})`);
        }
      } finally {
        assert.equal((await runCli(["workspace", "delete", id], { env })).code, 0);
      }
    }
  });
});

test("SIGTERM during a big seed: pyro exits promptly and leaves no workspace directory", async (t) => {
  await withState(t, async ({ env, stateDir, host }) => {
    // 1 GiB of zeros, 5 MB gzipped: seconds of validating and unpacking.
    const big = await bigZeroTarGz(join(host, "big.tar.gz"), 1024 ** 3);
    const { child, done } = startCli(["workspace", "create", "debian:12", "--seed-path", big, "--json"], env);
    const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    // Wait until unpacking has written something, so the interrupted state is half-unpacked.
    const deadline = Date.now() + 30_000;
    let unpacking = false;
    while (!unpacking && Date.now() < deadline && child.exitCode === null) {
      for (const id of await workspaceDirs(stateDir))
        if (existsSync(join(stateDir, "workspaces", id, "files", "zeros"))) unpacking = true;
      if (!unpacking) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(unpacking, "unpacking never started");
    const t0 = performance.now();
    child.kill("SIGTERM");
    const r = await done;
    clearTimeout(killer);
    const ms = performance.now() - t0;
    assert.ok(ms < 5000, `exit took ${Math.round(ms)} ms after SIGTERM`);
    assert.equal(r.code, 130, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { error: { code: string } }).error.code, "cancelled");
    assert.deepEqual(await workspaceDirs(stateDir), []);
  });
});
