import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chmod, readdir, readFile, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { Pyro } from "../../src/index.js";
import { runscBinary, withGvisorState, withHostDir } from "../helpers.js";

/**
 * Workspace commands go over the sandbox init's exec channel (a Unix socket the init creates
 * on the host through runsc --host-uds=create), not `runsc exec`. Shown by a runsc that
 * refuses `exec`: every command below still runs. The channel keeps `runsc exec`'s meaning
 * (exit codes, 127 for a missing program, cwd, env, stdin, output caps, deadline, a job left
 * in the background survives) and a guest user that is not root cannot reach it.
 */
test("workspace commands run over the init's exec channel, with runsc exec's semantics", async (t) => {
  const real = await runscBinary();
  await withHostDir("pyro-chan-", async (host) => {
    // A runsc that fails every `exec`: a command that still runs did not use it.
    const wrapper = join(host, "runsc-noexec");
    await writeFile(
      wrapper,
      `#!/bin/sh\nfor a in "$@"; do [ "$a" = exec ] && { echo "runsc exec refused by the test" >&2; exit 99; }; done\nexec ${real} "$@"\n`,
    );
    await chmod(wrapper, 0o755);
    await withGvisorState(
      t,
      async ({ env, stateDir }) => {
        const pyro = new Pyro({ env });
        const ws = await pyro.createWorkspace({});
        const id = ws.workspace_id;
        try {
          const sock = join(stateDir, "workspaces", id, "sandbox", "sock", "exec.sock");
          // create returns only once the channel answered: the socket is there and answers a
          // ping at once, with no retry (the first exec never falls back to `runsc exec`).
          assert.ok(existsSync(sock), "the init's socket is on the host when create returns");
          assert.match(await pingOnce(sock), /^pyro-sandbox-init \d+$/);

          const r = await pyro.execWorkspace(id, { command: "echo out; echo err >&2; exit 3" });
          assert.deepEqual([r.exit_code, r.stdout, r.stderr], [3, "out\n", "err\n"]);

          const missing = await pyro.execWorkspace(id, { command: ["no-such-program-xyz"] });
          assert.equal(missing.exit_code, 127);
          assert.match(missing.stderr, /no-such-program-xyz: not found/);

          // cwd is /workspace, env as runsc exec gave it, stdin through file writes.
          const where = await pyro.execWorkspace(id, { command: 'pwd; echo "$HOME $LANG"' });
          assert.equal(where.stdout, "/workspace\n/root C.UTF-8\n");
          await pyro.writeWorkspaceFile(id, "in.txt", { content: "via stdin\n" });
          assert.equal((await pyro.readWorkspaceFile(id, "in.txt")).content, "via stdin\n");

          // Large output: the full size is counted and logged, the result keeps its budget.
          const big = await pyro.execWorkspace(id, {
            command: "head -c 3000000 /dev/zero | tr '\\0' x",
            maxOutputBytes: 4096,
          });
          assert.equal(big.exit_code, 0);
          assert.equal(big.stdout_bytes, 3_000_000);
          assert.ok(big.stdout.length <= 4096 + 200);

          // A job left in the background outlives the command that started it.
          await pyro.execWorkspace(id, { command: "sleep 300 >/dev/null 2>&1 & echo $! > /tmp/bg.pid" });
          const bg = await pyro.execWorkspace(id, { command: 'kill -0 "$(cat /tmp/bg.pid)" && echo alive' });
          assert.equal(bg.stdout, "alive\n");

          // The deadline kills the command and its group: exit 124, nothing left of it.
          const slow = await pyro.execWorkspace(id, {
            command: "sleep 301 & sleep 302",
            timeoutSeconds: 1,
          });
          assert.equal(slow.exit_code, 124);
          assert.equal(slow.timed_out, true);
          // A cancelled call kills its command too (the connection closes; the init sees it).
          const ac = new AbortController();
          const cancelled = pyro.execWorkspace(id, { command: "sleep 303" }, { signal: ac.signal });
          setTimeout(() => ac.abort(), 700);
          await assert.rejects(cancelled, /cancel/);
          await new Promise((res) => setTimeout(res, 500));
          const ps = await pyro.execWorkspace(id, {
            command: "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '",
          });
          assert.doesNotMatch(ps.stdout, /sleep 30[123]/, "timed out and cancelled commands are gone");
          assert.match(ps.stdout, /sleep 300/, "the background job lives on");

          // Only the guest's root reaches the socket: an image's user or a dropped process cannot.
          const nobody = await pyro.execWorkspace(id, {
            command: "setpriv --reuid=65534 --regid=65534 --clear-groups ls /.pyro/sock 2>&1; echo rc=$?",
          });
          assert.match(nobody.stdout, /Permission denied/);
          assert.match(nobody.stdout, /rc=[1-9]/);

          // A guest that creates its own socket in /workspace (the flag allows that) puts a
          // socket file in its own disk, which diff and export pass over.
          const made = await pyro.execWorkspace(id, {
            command:
              "perl -MIO::Socket::UNIX -e 'IO::Socket::UNIX->new(Local => \"/workspace/guest.sock\", Listen => 1) or die $!' && echo made; echo hi > /workspace/real.txt",
          });
          assert.match(made.stdout, /made/);
          const diff = await pyro.diffWorkspace(id);
          assert.ok(JSON.stringify(diff).includes("real.txt"));
          const out = join(host, "export");
          await pyro.exportWorkspace(id, { output: out });
          const exported = await readdir(out);
          assert.ok(exported.includes("real.txt"));
          assert.ok(!exported.includes("guest.sock"), `exported: ${exported.join(",")}`);
          assert.equal(await readFile(join(out, "real.txt"), "utf8"), "hi\n");
        } finally {
          await pyro.deleteWorkspace(id);
        }
      },
      { PYRO_RUNSC: wrapper },
    );
  });
});

/** One connection, one ping frame (H), the init's answer (V + its version): no retry. */
function pingOnce(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let buf = Buffer.alloc(0);
    s.on("error", reject);
    s.on("data", (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
    });
    s.on("close", () => {
      if (buf.length < 5 || buf[0] !== "V".charCodeAt(0))
        return reject(new Error(`no answer: ${buf.toString("hex")}`));
      resolve(buf.subarray(5, 5 + buf.readUInt32LE(1)).toString("utf8"));
    });
    s.end(Buffer.from([0x48, 0, 0, 0, 0]));
  });
}
