import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Duplex, Readable } from "node:stream";
import { after, before, test } from "node:test";
import { c as tarCreate } from "tar";
import { AgentSession } from "../../src/engines/qemu/agent-client.js";
import { pidAlive } from "../../src/engines/qemu/vmproc.js";
import { REPO, tempDir } from "../helpers.js";

/**
 * The real guest agent (guest/agent.c), compiled and run on the host in test mode
 * (`--fd 3`: one session on an inherited socket), driven by the real host client. This
 * covers the protocol end to end without booting a VM.
 */

let dir = "";
let agent = "";
let skip: string | undefined;

before(async () => {
  dir = await tempDir("pyro-agent-test-");
  agent = join(dir, "pyro-agent");
  const cc = ["/usr/bin/cc", "/usr/bin/gcc"].find((p) => existsSync(p));
  if (!cc) {
    skip = "no C compiler to build guest/agent.c";
    return;
  }
  const r = spawnSync(
    cc,
    ["-O2", "-Wall", "-Wextra", "-Werror", "-o", agent, join(REPO, "guest", "agent.c")],
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`agent.c does not compile cleanly:\n${r.stderr}`);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function withAgent(
  t: { skip: (m?: string) => void },
  fn: (s: AgentSession, child: ChildProcess) => Promise<void>,
) {
  if (skip) {
    t.skip(`skipped: ${skip}`);
    return;
  }
  const child = spawn(agent, ["--fd", "3"], { stdio: ["ignore", "ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d) => {
    stderr += d;
  });
  const sock = child.stdio[3] as Duplex;
  try {
    const s = await AgentSession.attach(sock, { deadlineMs: 5000 });
    assert.match(s.version, /^pyro-agent \d+/);
    await fn(s, child);
    s.close();
  } catch (e) {
    (e as Error).message += `\nagent stderr: ${stderr}`;
    throw e;
  } finally {
    child.kill("SIGKILL");
  }
}

const run = (
  s: AgentSession,
  argv: string[],
  extra: { timeoutMs?: number; maxOutputBytes?: number; env?: Record<string, string>; cwd?: string } = {},
  stdin?: Readable,
) =>
  s.exec(
    {
      argv,
      timeoutMs: extra.timeoutMs ?? 10_000,
      maxOutputBytes: extra.maxOutputBytes ?? 1 << 20,
      ...(extra.env ? { env: extra.env } : {}),
      ...(extra.cwd ? { cwd: extra.cwd } : {}),
    },
    stdin ? { stdin } : {},
  );

test("exec keeps stdout and stderr apart, passes exit codes, env and cwd, and is binary-safe", async (t) => {
  await withAgent(t, async (s) => {
    const r = await run(s, ["/bin/sh", "-c", "printf 'out\\000\\377'; echo err >&2; exit 7"]);
    assert.equal(r.exitCode, 7);
    assert.deepEqual(r.stdout, Buffer.from([0x6f, 0x75, 0x74, 0, 0xff]));
    assert.equal(r.stderr.toString(), "err\n");
    const e = await run(s, ["/bin/sh", "-c", 'echo "$FOO|$PATH|$HOME"; pwd'], {
      env: { FOO: "bar baz" },
      cwd: dir,
    });
    assert.equal(
      e.stdout.toString(),
      `bar baz|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/root\n${dir}\n`,
    );
    const k = await run(s, ["/bin/sh", "-c", "kill -TERM $$"]);
    assert.equal(k.exitCode, 128 + 15);
  });
});

test("a missing program or cwd is an error exit (127/126) with a message, not a hang", async (t) => {
  await withAgent(t, async (s) => {
    const r = await run(s, ["definitely-not-a-program-xyz"]);
    assert.equal(r.exitCode, 127);
    assert.match(r.stderr.toString(), /definitely-not-a-program-xyz: No such file/);
    const c = await run(s, ["/bin/true"], { cwd: "/no/such/dir" });
    assert.equal(c.exitCode, 126);
    assert.match(c.stderr.toString(), /cannot enter \/no\/such\/dir/);
  });
});

test("stdin streams through with backpressure, byte for byte", async (t) => {
  await withAgent(t, async (s) => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const r = await run(
      s,
      ["/bin/sh", "-c", "sha256sum | cut -d' ' -f1"],
      {},
      Readable.from([data.subarray(0, 100_000), data.subarray(100_000)]),
    );
    assert.equal(r.exitCode, 0, r.stderr.toString());
    assert.equal(r.stdout.toString().trim(), createHash("sha256").update(data).digest("hex"));
  });
});

test("output beyond the cap is dropped and flagged, while the command still runs to its end", async (t) => {
  await withAgent(t, async (s) => {
    const r = await run(s, ["/bin/sh", "-c", "head -c 500000 /dev/zero; echo done >&2"], {
      maxOutputBytes: 1000,
    });
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout.length, 1000);
    assert.equal(r.stdoutTruncated, true);
    assert.equal(r.stderrTruncated, false);
    assert.equal(r.stderr.toString(), "done\n");
  });
});

test("a timeout kills the whole process group, background children included", async (t) => {
  await withAgent(t, async (s) => {
    const started = Date.now();
    const r = await run(s, ["/bin/sh", "-c", "sleep 30 & echo $!; sleep 30"], { timeoutMs: 400 });
    assert.equal(r.timedOut, true);
    assert.ok(Date.now() - started < 5000);
    const bg = Number(r.stdout.toString().trim());
    assert.ok(bg > 0);
    for (let i = 0; i < 50 && pidAlive(bg); i++) await new Promise((res) => setTimeout(res, 20));
    assert.equal(pidAlive(bg), false, `background sleep ${bg} survived the timeout`);
    // The session is still usable afterwards.
    assert.equal((await run(s, ["/bin/echo", "next"])).stdout.toString(), "next\n");
  });
});

test("a command that leaves a background process holding its output still returns", async (t) => {
  await withAgent(t, async (s) => {
    const started = Date.now();
    const r = await run(s, ["/bin/sh", "-c", "sleep 3 & echo quick"]);
    assert.equal(r.stdout.toString(), "quick\n");
    assert.ok(Date.now() - started < 2500, `waited ${Date.now() - started} ms for the background child`);
  });
});

test("put-archive unpacks a tar stream into a (created) directory", async (t) => {
  await withAgent(t, async (s) => {
    const src = join(dir, "src");
    await mkdir(join(src, "sub"), { recursive: true });
    await writeFile(join(src, "sub", "a.txt"), "hello\n");
    await writeFile(join(src, "b.bin"), Buffer.from([0, 1, 2, 3]));
    const dest = join(dir, "dest", "deeper");
    const tar = tarCreate({ cwd: src, portable: true }, ["."]) as unknown as Readable;
    const r = await s.putArchive(dest, tar, 30_000);
    assert.equal(r.exitCode, 0, r.stderr.toString());
    assert.equal(await readFile(join(dest, "sub", "a.txt"), "utf8"), "hello\n");
    assert.deepEqual(await readFile(join(dest, "b.bin")), Buffer.from([0, 1, 2, 3]));
    const bad = await s.putArchive(
      join(dir, "dest2"),
      Readable.from([Buffer.from("not a tar archive at all")]),
      30_000,
    );
    assert.notEqual(bad.exitCode, 0);
  });
});

test("garbage on the line before HELLO is skipped; a second HELLO starts a clean session", async (t) => {
  if (skip) return t.skip(`skipped: ${skip}`);
  const child = spawn(agent, ["--fd", "3"], { stdio: ["ignore", "ignore", "ignore", "pipe"] });
  try {
    const sock = child.stdio[3] as Duplex;
    sock.write(Buffer.from("PYR1\x00garbage\xff\xff\xff\xff", "latin1"));
    const s1 = await AgentSession.attach(sock, { deadlineMs: 5000 });
    assert.equal((await run(s1, ["/bin/echo", "one"])).stdout.toString(), "one\n");
    sock.removeAllListeners("data");
    const s2 = await AgentSession.attach(sock, { deadlineMs: 5000 });
    assert.equal((await run(s2, ["/bin/echo", "two"])).stdout.toString(), "two\n");
  } finally {
    child.kill("SIGKILL");
  }
});

test("streamed output: callbacks get every byte, beyond the in-memory cap, as it comes", async (t) => {
  await withAgent(t, async (s) => {
    const out: { at: number; chunk: Buffer }[] = [];
    const err: Buffer[] = [];
    const r = await s.exec(
      {
        argv: ["/bin/sh", "-c", "echo first; sleep 0.5; head -c 300000 /dev/zero; echo oops >&2"],
        timeoutMs: 10_000,
        maxOutputBytes: 1000,
      },
      { onStdout: (chunk) => out.push({ at: performance.now(), chunk }), onStderr: (c) => err.push(c) },
    );
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout.length, 1000, "the in-memory copy stays capped");
    const all = Buffer.concat(out.map((o) => o.chunk));
    assert.equal(all.length, 6 + 300_000, "the callbacks saw all of it (the agent's cap is lifted)");
    assert.equal(all.subarray(0, 6).toString(), "first\n");
    const second = out.findIndex((o) => o.chunk.includes(0));
    assert.ok(out[second]!.at - out[0]!.at >= 400, "the first line came before the sleep ended");
    assert.equal(Buffer.concat(err).toString(), "oops\n");
  });
});
