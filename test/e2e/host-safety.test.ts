import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, stat } from "node:fs/promises";
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
