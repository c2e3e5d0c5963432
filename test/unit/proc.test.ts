import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { Readable } from "node:stream";
import { test } from "node:test";
import {
  DEFAULT_MAX_OUTPUT_BYTES,
  pidAlive,
  runCapture,
  utf8CompleteLength,
  which,
} from "../../src/util/proc.js";

test("runCapture keeps stdout and stderr apart and passes the exit code through", async () => {
  const r = await runCapture("/bin/sh", ["-c", "echo out; echo err >&2; exit 5"]);
  assert.equal(r.exitCode, 5);
  assert.equal(r.stdout, "out\n");
  assert.equal(r.stderr, "err\n");
  assert.equal(r.timedOut, false);
  assert.equal(r.stdoutTruncated, false);
});

test("output beyond the cap is dropped and flagged, per stream, at exactly the cap", async () => {
  const r = await runCapture("/bin/sh", ["-c", "head -c 5000000 /dev/zero; printf 'e%.0s' $(seq 10) >&2"], {
    maxOutputBytes: 1000,
  });
  assert.equal(r.exitCode, 0, "the producer is drained, not killed (no SIGPIPE)");
  assert.equal(r.stdout.length, 1000);
  assert.equal(r.stdoutTruncated, true);
  assert.equal(r.stderr, "eeeeeeeeee");
  assert.equal(r.stderrTruncated, false);
  const exact = await runCapture("/bin/sh", ["-c", "head -c 1000 /dev/zero"], { maxOutputBytes: 1000 });
  assert.equal(exact.stdout.length, 1000);
  assert.equal(exact.stdoutTruncated, false, "output of exactly the cap is not truncated");
});

test("the default cap is 1 MiB and 100 MB of output keeps memory bounded", async () => {
  assert.equal(DEFAULT_MAX_OUTPUT_BYTES, 1024 * 1024);
  const before = process.memoryUsage().rss;
  const r = await runCapture("/bin/sh", ["-c", "head -c 100000000 /dev/zero"]);
  assert.equal(r.stdout.length, DEFAULT_MAX_OUTPUT_BYTES);
  assert.equal(r.stdoutTruncated, true);
  const grown = process.memoryUsage().rss - before;
  assert.ok(grown < 64 * 1024 * 1024, `rss grew by ${grown} bytes`);
});

test("a timeout kills the child, runs onKill first, and says so", async () => {
  const calls: string[] = [];
  const t0 = performance.now();
  const r = await runCapture("/bin/sleep", ["30"], { timeoutMs: 200, onKill: (why) => void calls.push(why) });
  assert.equal(r.timedOut, true);
  assert.equal(r.aborted, false);
  assert.equal(r.signal, "SIGKILL");
  assert.deepEqual(calls, ["timeout"]);
  assert.ok(performance.now() - t0 < 5000);
});

test("an abort signal kills the child and marks the result aborted", async () => {
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 100);
  const r = await runCapture("/bin/sleep", ["30"], { signal: ac.signal });
  assert.equal(r.aborted, true);
  assert.equal(r.timedOut, false);
  const pre = new AbortController();
  pre.abort();
  assert.equal((await runCapture("/bin/sleep", ["30"], { signal: pre.signal })).aborted, true);
});

test("killGroup kills what the child started too", async () => {
  const r = await runCapture("/bin/sh", ["-c", "sleep 30 & echo $!; wait"], {
    timeoutMs: 300,
    killGroup: true,
  });
  assert.equal(r.timedOut, true);
  const grandchild = Number(r.stdout.trim());
  assert.ok(grandchild > 0);
  await new Promise((res) => setTimeout(res, 100));
  // Gone, or a zombie waiting for whoever reaps orphans here (not running any more).
  const stat = await readFile(`/proc/${grandchild}/stat`, "utf8").catch(() => "");
  assert.ok(stat === "" || / Z /.test(stat), `grandchild still running: ${stat}`);
});

test("stdin from a string and from a stream", async () => {
  assert.equal((await runCapture("/bin/cat", [], { stdin: "abc" })).stdout, "abc");
  assert.equal(
    (await runCapture("/bin/cat", [], { stdin: Readable.from([Buffer.from("x"), Buffer.from("y")]) })).stdout,
    "xy",
  );
  // A child that exits without reading its stdin is not an error.
  const r = await runCapture("/bin/true", [], { stdin: Buffer.alloc(4 * 1024 * 1024) });
  assert.equal(r.exitCode, 0);
});

test("a program that does not exist rejects", async () => {
  await assert.rejects(runCapture("/nonexistent/program", []), /ENOENT/);
});

test("which finds programs on PATH and sbin dirs, and checks explicit paths", async () => {
  assert.equal(await which("sh", { PATH: "/bin" }), "/bin/sh");
  assert.ok((await which("sh", { PATH: "" }))?.endsWith("/sh"));
  assert.equal(await which("/bin/sh"), "/bin/sh");
  assert.equal(await which("/nonexistent"), undefined);
  assert.equal(await which("/etc/passwd"), undefined, "not executable");
  assert.equal(await which("pyro-surely-not-installed"), undefined);
});

test("pidAlive: live processes yes; exited, zombie and nonsense pids no", async () => {
  assert.equal(pidAlive(process.pid), true);
  assert.equal(pidAlive(undefined), false);
  assert.equal(pidAlive(0), false);
  assert.equal(pidAlive(-1), false);
  assert.equal(pidAlive(2 ** 22 + 12345), false);
  // `sleep 0.05` exits while its parent (now `exec sleep 3`, which never waits) lives on:
  // a zombie, as a sandbox killed from outside is under a pid 1 that does not reap.
  const parent = spawn("/bin/sh", ["-c", "sleep 0.05 & echo $!; exec sleep 3"], {
    stdio: ["ignore", "pipe", "ignore"],
  });
  try {
    const pid = Number(await new Promise<string>((r) => parent.stdout.once("data", (d) => r(String(d)))));
    assert.equal(pidAlive(pid), true, "running");
    await new Promise((r) => setTimeout(r, 300));
    assert.match(await readFile(`/proc/${pid}/stat`, "utf8"), /\) Z /, "the child is a zombie now");
    assert.equal(pidAlive(pid), false, "a zombie counts as dead");
  } finally {
    parent.kill("SIGKILL");
  }
});

test("a background job holding the pipes does not keep runCapture waiting after the child exits", async () => {
  const t0 = performance.now();
  const r = await runCapture("/bin/sh", ["-c", "sleep 30 & echo $!; echo bye >&2"], { timeoutMs: 10_000 });
  const ms = performance.now() - t0;
  const bg = Number(r.stdout.trim());
  try {
    assert.equal(r.exitCode, 0);
    assert.equal(r.timedOut, false);
    assert.equal(r.stderr, "bye\n");
    assert.ok(bg > 0);
    assert.ok(ms < 3_000, `waited ${Math.round(ms)} ms for a command that exited at once`);
  } finally {
    if (bg > 0) process.kill(bg, "SIGKILL");
  }
});

test("output written right before exit is not lost", async () => {
  for (let i = 0; i < 5; i++) {
    const r = await runCapture("/bin/sh", ["-c", "head -c 300000 /dev/zero; echo tail"]);
    assert.equal(r.stdout.length, 300_005);
    assert.ok(r.stdout.endsWith("tail\n"));
  }
});

test("a cap that falls inside a UTF-8 character drops the partial character", async () => {
  // "é" is 2 bytes: a 1001-byte cap falls in the middle of the 501st.
  const r = await runCapture(
    "/bin/sh",
    ["-c", "i=0; while [ $i -lt 600 ]; do printf 'é'; i=$((i+1)); done"],
    { maxOutputBytes: 1001 },
  );
  assert.equal(r.stdoutTruncated, true);
  assert.equal(r.stdout, "é".repeat(500));
  assert.equal(utf8CompleteLength(Buffer.from("a€")), 4);
  assert.equal(utf8CompleteLength(Buffer.from("a€").subarray(0, 3)), 1);
  assert.equal(utf8CompleteLength(Buffer.from("😀").subarray(0, 2)), 0);
  assert.equal(utf8CompleteLength(Buffer.from([0x61, 0x80])), 2, "stray continuation bytes are left alone");
});

test("killGroupOnExit ends the child's background jobs when it exits", async () => {
  const r = await runCapture("/bin/sh", ["-c", "sleep 30 & echo $!"], {
    killGroup: true,
    killGroupOnExit: true,
    timeoutMs: 10_000,
  });
  assert.equal(r.timedOut, false);
  const bg = Number(r.stdout.trim());
  await new Promise((res) => setTimeout(res, 100));
  const stat = await readFile(`/proc/${bg}/stat`, "utf8").catch(() => "");
  assert.ok(stat === "" || / Z /.test(stat), `background job still running: ${stat}`);
});

test("runCapture hands every chunk to onStdout/onStderr, past the capture cap too", async () => {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const r = await runCapture("/bin/sh", ["-c", "head -c 100000 /dev/zero; printf '\\377' >&2"], {
    maxOutputBytes: 10,
    onStdout: (c) => out.push(c),
    onStderr: (c) => err.push(c),
  });
  assert.equal(r.stdout.length, 10);
  assert.equal(r.stdoutTruncated, true);
  assert.equal(Buffer.concat(out).length, 100_000);
  assert.deepEqual(Buffer.concat(err), Buffer.from([0xff]), "raw bytes, not decoded");
});
