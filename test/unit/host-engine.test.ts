import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { after, before, test } from "node:test";
import { c as tarCreate } from "tar";
import { toArgv } from "../../src/core/command.js";
import { HostEngine } from "../../src/engines/host/engine.js";
import { tempDir } from "../helpers.js";

/** The unisolated fallback (--allow-host-compat) maps guest paths onto host directories. */

let dir: string;
const engine = new HostEngine();
before(async () => {
  dir = await tempDir("pyro-unit-host-");
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function spec(id: string) {
  return {
    id,
    environment: "debian:12",
    rootfs: "/nonexistent",
    sandboxDir: join(dir, id, "sandbox"),
    workspaceDir: join(dir, id, "files"),
    vcpuCount: 1,
    memMib: 256,
    network: false,
  };
}

test("exec runs in /workspace (the workspace's host dir), passes exit codes, 127 for missing programs", async () => {
  const s = spec("ws1");
  await mkdir(s.workspaceDir, { recursive: true });
  const h = await engine.create(s);
  const r = await engine.exec(h, {
    argv: toArgv("pwd; echo hi > f; exit 4"),
    cwd: "/workspace",
    timeoutMs: 10_000,
  });
  assert.equal(r.exitCode, 4);
  assert.equal(r.stdout.trim(), s.workspaceDir);
  assert.equal(await readFile(join(s.workspaceDir, "f"), "utf8"), "hi\n");
  const missing = await engine.exec(h, {
    argv: toArgv(["pyro-missing-program-xyz"]),
    cwd: "/workspace",
    timeoutMs: 10_000,
  });
  assert.equal(missing.exitCode, 127);
  const slow = await engine.exec(h, { argv: ["sleep", "30"], cwd: "/workspace", timeoutMs: 200 });
  assert.equal(slow.timedOut, true);
  assert.equal(slow.exitCode, 124);
  assert.deepEqual(await engine.inspect(h), { state: "running" });
  await engine.destroy(h);
});

test("putArchive unpacks under the mapped destination", async () => {
  const s = spec("ws2");
  await mkdir(s.workspaceDir, { recursive: true });
  const src = join(dir, "src");
  await mkdir(src);
  await writeFile(join(src, "a.txt"), "A");
  const h = await engine.create(s);
  await engine.putArchive(
    h,
    tarCreate({ cwd: src, portable: true }, ["."]) as unknown as Readable,
    "/workspace/sub",
  );
  assert.equal(await readFile(join(s.workspaceDir, "sub", "a.txt"), "utf8"), "A");
  await engine.destroy(h);
});

test("runOnce cleans up its directory and every process the command started", async () => {
  const s = spec("run1");
  const r = await engine.runOnce(s, { argv: toArgv("sleep 30 & echo $!"), cwd: "/", timeoutMs: 10_000 });
  assert.equal(r.exitCode, 0);
  assert.equal(r.timedOut, false);
  const bg = Number(r.stdout.trim());
  await new Promise((res) => setTimeout(res, 100));
  const stat = await readFile(`/proc/${bg}/stat`, "utf8").catch(() => "");
  assert.ok(stat === "" || / Z /.test(stat), `a background job outlived the one-shot run: ${stat}`);
  assert.equal(existsSync(s.sandboxDir), false, "the one-shot sandbox directory is gone");
});

test("runOnce streams the command's output to the request's callbacks", async () => {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const r = await engine.runOnce(spec("once-stream"), {
    argv: toArgv("echo hello; printf '\\377' >&2"),
    timeoutMs: 10_000,
    onStdout: (c) => out.push(c),
    onStderr: (c) => err.push(c),
  });
  assert.equal(r.exitCode, 0);
  assert.equal(Buffer.concat(out).toString(), "hello\n");
  assert.deepEqual(Buffer.concat(err), Buffer.from([0xff]));
});
