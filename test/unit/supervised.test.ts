import assert from "node:assert/strict";
import { mkdir, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, test } from "node:test";
import { plainText, SupervisedDir, utf8Boundary } from "../../src/workspaces/supervised.js";
import { tempDir } from "../helpers.js";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function ring(segments: Record<number, string>): Promise<{ root: string; dir: SupervisedDir }> {
  const root = await tempDir("pyro-supervised-");
  dirs.push(root);
  const dir = new SupervisedDir({ host: root, guest: "/.pyro/run" }, "shells/sh_000000000000");
  await dir.prepare();
  await mkdir(join(dir.host, "out"));
  for (const [start, text] of Object.entries(segments))
    await writeFile(join(dir.host, "out", String(start).padStart(16, "0")), text);
  return { root, dir };
}

test("plainText strips escapes and applies CR and backspace the way a terminal shows them", () => {
  assert.equal(plainText("\x1b[?2004h>>> print(x)\r\n42\r\n"), ">>> print(x)\n42\n");
  assert.equal(plainText("\x1b]0;title\x07ok"), "ok");
  assert.equal(plainText("progress 10%\rprogress 99%\rdone"), "doneress 99%");
  assert.equal(plainText("abc\b\bX"), "aXc");
  assert.equal(plainText("\x1b[1;31mred\x1b[0m"), "red");
});

test("utf8Boundary never splits a character", () => {
  const euro = Buffer.from("a€", "utf8"); // 61 e2 82 ac
  assert.equal(utf8Boundary(euro), 4);
  assert.equal(utf8Boundary(euro.subarray(0, 3)), 1);
  assert.equal(utf8Boundary(euro.subarray(0, 2)), 1);
  assert.equal(utf8Boundary(Buffer.from("plain")), 5);
});

test("the ring is read by cursor across segments; older cursors report what was dropped", async () => {
  const { dir } = await ring({ 100: "hello ", 106: "world" });
  assert.equal(await dir.totalBytes(), 111);
  const all = await dir.read(0, 1000);
  assert.equal(all.data.toString(), "hello world");
  assert.equal(all.cursor, 100);
  assert.equal(all.dropped_bytes, 100);
  assert.equal(all.next_cursor, 111);
  const mid = await dir.read(103, 5);
  assert.equal(mid.data.toString(), "lo wo");
  assert.equal(mid.dropped_bytes, 0);
  assert.equal(mid.next_cursor, 108);
  const end = await dir.read(111, 10);
  assert.equal(end.data.length, 0);
  assert.equal(end.next_cursor, 111);
  const past = await dir.read(5000, 10);
  assert.equal(past.cursor, 111, "a cursor past the end reads from the end");
});

test("pid and exit are parsed strictly; a guest's symlink is refused, never followed", async () => {
  const { root, dir } = await ring({ 0: "x" });
  await writeFile(join(dir.host, "pid"), "42\n");
  await writeFile(join(dir.host, "exit"), "not a number\n");
  assert.equal(await dir.pid(), 42);
  assert.equal(await dir.exitCode(), undefined);
  const secret = join(root, "secret");
  await writeFile(secret, "host secret");
  await rm(join(dir.host, "in"));
  await symlink(secret, join(dir.host, "in"));
  await assert.rejects(dir.input(Buffer.from("typed")), /ELOOP|not a regular file/);
  await rm(join(dir.host, "out", "0000000000000000"));
  await symlink(secret, join(dir.host, "out", "0000000000000000"));
  const r = await dir.read(0, 100);
  assert.equal(r.data.length, 0, "a symlinked segment is skipped, not read");
});

test("a shell directory the guest replaced with a symlink is refused", async () => {
  const { root, dir } = await ring({ 0: "x" });
  const elsewhere = join(root, "elsewhere");
  await mkdir(elsewhere);
  await writeFile(join(elsewhere, "in"), "");
  await rm(dir.host, { recursive: true });
  await symlink(elsewhere, dir.host);
  await assert.rejects(dir.input(Buffer.from("typed")), /moved or replaced from inside the sandbox/);
});
