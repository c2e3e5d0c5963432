import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { chmod, mkdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { runCli, runCliJson, withGvisorState } from "../helpers.js";

/** The hostile guest: files it makes must never become a way in for other host users. */

const HOSTILE_USER = "pyro-hostile";

function run(file: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) =>
    execFile(file, args, (err, stdout, stderr) =>
      res({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

async function ensureUser(): Promise<string | undefined> {
  if ((await run("id", [HOSTILE_USER])).code === 0) return undefined;
  const r = await run("useradd", [
    "--system",
    "--no-create-home",
    "--shell",
    "/usr/sbin/nologin",
    HOSTILE_USER,
  ]);
  return r.code === 0 ? undefined : `cannot create a test user: ${r.stderr.trim()}`;
}

test("a set-uid root program planted in /workspace by a guest is harmless to another host user", async (t) => {
  const why = process.getuid?.() === 0 ? await ensureUser() : "needs root to create a second host user";
  if (why) return t.skip(`skipped: ${why}`);
  await withGvisorState(t, async ({ env, stateDir }) => {
    // As the issue found it: a state dir under /tmp that others can enter.
    await chmod(stateDir, 0o755);
    const c = await runCliJson<{ workspace_id: string }>(["workspace", "create", "debian:12"], { env });
    assert.equal(c.code, 0, c.stderr);
    const ws = c.json.workspace_id;
    const plant = await runCli(
      [
        "workspace",
        "exec",
        ws,
        "--",
        "sh",
        "-c",
        "cp /bin/cat /workspace/suidcat && chmod 4755 /workspace/suidcat",
      ],
      { env },
    );
    assert.equal(plant.code, 0, plant.stderr);
    const planted = join(stateDir, "workspaces", ws, "files", "suidcat");
    // The file is there on the host (gVisor's gofer made it) ...
    assert.ok((await stat(planted)).isFile());
    // ... but no other user can reach it: the state dir is the user's alone.
    assert.equal((await stat(stateDir)).mode & 0o777, 0o700);
    const attempt = await run("runuser", ["-u", HOSTILE_USER, "--", planted, "/etc/shadow"]);
    assert.notEqual(attempt.code, 0);
    assert.doesNotMatch(attempt.stdout, /^root:/m);
    const look = await run("runuser", ["-u", HOSTILE_USER, "--", "ls", stateDir]);
    assert.notEqual(look.code, 0);
    assert.equal((await runCli(["workspace", "delete", ws], { env })).code, 0);
  });
});

/** Mount points under `dir` (a workspace disk left mounted would show here). */
function mountsUnder(dir: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((m) => m.startsWith(`${dir}/`));
}

test("a workspace disk: the guest sees --disk-mib in df, cannot write past it, and nothing stays mounted", async (t) => {
  if (process.getuid?.() !== 0) return t.skip("skipped: disk images are mounted only as root");
  await withGvisorState(t, async ({ env, stateDir }) => {
    const c = await runCliJson<{ workspace_id: string; disk_mib: number; disk_enforced: boolean }>(
      ["workspace", "create", "debian:12", "--disk-mib", "64"],
      { env },
    );
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.json.disk_mib, 64);
    assert.equal(c.json.disk_enforced, true);
    const ws = c.json.workspace_id;
    const df = await runCli(["workspace", "exec", ws, "--", "sh", "-c", "df -m /workspace | tail -1"], {
      env,
    });
    const size = Number(df.stdout.trim().split(/\s+/)[1]);
    assert.ok(size > 40 && size <= 64, `df says ${df.stdout}`);
    const fill = await runCli(
      [
        "workspace",
        "exec",
        ws,
        "--",
        "sh",
        "-c",
        "dd if=/dev/zero of=/workspace/big bs=1M count=200 2>&1; echo rc=$?",
      ],
      { env },
    );
    assert.match(fill.stdout, /No space left on device/);
    assert.doesNotMatch(fill.stdout, /rc=0/);
    // The host holds at most the image's size, not the 200 MB the guest tried to write.
    const img = await stat(join(stateDir, "workspaces", ws, "disk.img"));
    assert.ok(img.blocks * 512 <= 70 * 1024 * 1024, `image uses ${img.blocks * 512} bytes`);
    // Still usable after hitting the limit.
    const after = await runCli(["workspace", "exec", ws, "--", "sh", "-c", "rm /workspace/big && echo ok"], {
      env,
    });
    assert.equal(after.stdout.trim(), "ok");
    assert.equal(mountsUnder(stateDir).length, 1);
    assert.equal((await runCli(["workspace", "delete", ws], { env })).code, 0);
    assert.deepEqual(mountsUnder(stateDir), []);
  });
});

test("a seed larger than the workspace disk is refused clearly and leaves nothing mounted", async (t) => {
  if (process.getuid?.() !== 0) return t.skip("skipped: disk images are mounted only as root");
  await withGvisorState(t, async ({ env, stateDir }) => {
    const seed = join(stateDir, "..", `big-seed-${process.pid}`);
    await mkdir(seed, { recursive: true });
    await writeFile(join(seed, "blob"), Buffer.alloc(100 * 1024 * 1024, 1));
    try {
      const c = await runCli(["workspace", "create", "debian:12", "--disk-mib", "64", "--seed-path", seed], {
        env,
      });
      assert.notEqual(c.code, 0);
      assert.match(c.stderr, /does not fit the workspace disk of 64 MiB/);
      assert.match(c.stderr, /--disk-mib/);
      assert.deepEqual(mountsUnder(stateDir), []);
    } finally {
      await rm(seed, { recursive: true, force: true });
    }
  });
});

test("a command over the memory limit: the error says out of memory, not just exit 137", async (t) => {
  await withGvisorState(t, async ({ env }) => {
    const c = await runCliJson<{ workspace_id: string }>(
      ["workspace", "create", "debian:12", "--mem-mib", "256"],
      {
        env,
      },
    );
    assert.equal(c.code, 0, c.stderr);
    const ws = c.json.workspace_id;
    // `tail -n 1` of one endless line keeps all of it in memory.
    const hog = await runCli(
      [
        "workspace",
        "exec",
        ws,
        "--timeout-seconds",
        "60",
        "--",
        "sh",
        "-c",
        'head -c 1500M /dev/zero | tr "\\0" a | tail -n 1 | wc -c',
      ],
      { env },
    );
    assert.equal(hog.code, 1, hog.stderr);
    assert.match(hog.stderr, /out of memory at mem_mib=256/);
    const st = await runCliJson<{ state: string; reason: string }>(["workspace", "status", ws], { env });
    assert.equal(st.json.state, "failed");
    assert.match(st.json.reason, /out of memory/);
    assert.equal((await runCli(["workspace", "delete", ws], { env })).code, 0);
  });
});
