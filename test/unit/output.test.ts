import assert from "node:assert/strict";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, test } from "node:test";
import { resolvePaths } from "../../src/core/paths.js";
import { CommandRecorder, LatestLine, StreamRecorder } from "../../src/output/recorder.js";
import { outputPath, readOutputPage } from "../../src/output/store.js";
import {
  OMISSION_MARKER_RE,
  outputFields,
  snapshotOf,
  splitBudget,
  streamView,
} from "../../src/output/view.js";
import { tempDir } from "../helpers.js";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

test("splitBudget: a small stream leaves the rest of the budget to the other", () => {
  assert.deepEqual(splitBudget(100, 10, 20), [10, 20]);
  assert.deepEqual(splitBudget(100, 10, 500), [10, 90]);
  assert.deepEqual(splitBudget(100, 500, 5), [95, 5]);
  assert.deepEqual(splitBudget(100, 500, 500), [50, 50]);
});

test("streamView: whole when it fits; head, marker and tail past the budget; never splits a character", () => {
  const small = streamView(snapshotOf(Buffer.from("héllo")), 100, "stdout", "vm_0123456789abcdef");
  assert.deepEqual(small, { text: "héllo", encoding: "utf-8", bytes: 6, omitted: 0, truncated: false });
  const big = Buffer.from("é".repeat(1000)); // 2000 bytes of 2-byte characters
  const v = streamView(snapshotOf(big), 101, "stdout", "vm_0123456789abcdef");
  assert.equal(v.encoding, "utf-8");
  assert.ok(!v.text.includes("\ufffd"));
  const m = OMISSION_MARKER_RE.exec(v.text)!;
  assert.equal(Number(m[1]), v.omitted);
  const [head, tail] = v.text.split(m[0]);
  assert.equal(Buffer.byteLength(head!) + Buffer.byteLength(tail!) + v.omitted, 2000);
  assert.match(m[0], /output_read \{"output_id":"vm_0123456789abcdef","stream":"stdout","offset":50\}/);
});

test("streamView: bytes that are not UTF-8 are base64, head and tail encoded apart", () => {
  const bin = Buffer.from([0xff, 0xfe, 0x00, 0x01]);
  assert.deepEqual(streamView(snapshotOf(bin), 100, "stdout", "x"), {
    text: "//4AAQ==",
    encoding: "base64",
    bytes: 4,
    omitted: 0,
    truncated: false,
  });
  const big = Buffer.alloc(3000, 0xff);
  const v = streamView(snapshotOf(big), 1000, "stderr", null);
  assert.equal(v.encoding, "base64");
  const [h, t] = v.text.split(OMISSION_MARKER_RE.exec(v.text)![0]);
  assert.equal(Buffer.from(h!, "base64").length + Buffer.from(t!, "base64").length, 1000);
  assert.equal(v.omitted, 2000);
});

test("StreamRecorder keeps the whole stream on disk and only head and tail in memory", async () => {
  const dir = await tempDir("pyro-output-unit-");
  dirs.push(dir);
  const r = new StreamRecorder(join(dir, "s"), 10);
  const all: Buffer[] = [];
  for (let i = 0; i < 100; i++) {
    const c = Buffer.from(`chunk-${i};`);
    all.push(c);
    r.push(c);
  }
  r.close();
  const whole = Buffer.concat(all);
  const s = r.snapshot();
  assert.equal(s.bytes, whole.length);
  assert.deepEqual(s.head, whole.subarray(0, 10));
  assert.deepEqual(s.tail, whole.subarray(whole.length - 10));
  assert.deepEqual(await readFile(join(dir, "s")), whole);
  // Past the log cap, bytes are counted, not stored, and the view says so.
  const capped = new StreamRecorder(join(dir, "c"), 4, 5);
  capped.push(Buffer.from("0123456789"));
  capped.close();
  assert.equal((await readFile(join(dir, "c"))).toString(), "01234");
  assert.equal(streamView(capped.snapshot(), 100, "stdout", null).truncated, true);
});

test("CommandRecorder forwards chunks; a throwing callback does not stop recording", async () => {
  const dir = await tempDir("pyro-output-unit-");
  dirs.push(dir);
  const seen: string[] = [];
  const rec = new CommandRecorder({
    stdoutPath: join(dir, "o"),
    stderrPath: join(dir, "e"),
    keep: 100,
    onStdout: (c) => seen.push(c.toString()),
    onStderr: () => {
      throw new Error("caller bug");
    },
  });
  rec.onStdout(Buffer.from("a\n"));
  rec.onStderr(Buffer.from("warning: x\n"));
  rec.close();
  assert.deepEqual(seen, ["a\n"]);
  assert.equal(rec.latest.get(), "warning: x");
  const f = outputFields(rec.stdout.snapshot(), rec.stderr.snapshot(), 1024, "vm_0123456789abcdef");
  assert.equal(f.stdout, "a\n");
  assert.equal(f.stderr, "warning: x\n");
});

test("LatestLine: the last line with text, control characters removed", () => {
  const l = new LatestLine();
  l.push(Buffer.from("one\ntw"));
  l.push(Buffer.from("o\x1b[0m\n\n"));
  assert.equal(l.get(), "two[0m");
});

test("readOutputPage pages a stream exactly and never cuts a character in two", async () => {
  const home = await tempDir("pyro-output-unit-");
  dirs.push(home);
  const paths = resolvePaths({ PYRO_HOME: home });
  const id = "vm_0123456789abcdef";
  const text = "aé".repeat(100); // 300 bytes
  const { mkdir, writeFile } = await import("node:fs/promises");
  await mkdir(paths.outputsDir, { recursive: true });
  await writeFile(outputPath(paths, id, "stdout"), text);
  let offset = 0;
  let joined = "";
  for (;;) {
    const p = await readOutputPage(paths, { output_id: id, stream: "stdout", offset, limit: 7 });
    assert.equal(p.encoding, "utf-8");
    joined += p.data;
    offset = p.next_offset;
    if (p.eof) break;
  }
  assert.equal(joined, text);
  await assert.rejects(
    readOutputPage(paths, { output_id: "../x", stream: "stdout", offset: 0, limit: 1 }),
    /malformed output_id/,
  );
  await assert.rejects(
    readOutputPage(paths, { output_id: "ws_0123456789abcdef:3", stream: "stderr", offset: 0, limit: 1 }),
    /no output stored/,
  );
});

test("StreamRecorder on a full disk: the log stops, push never throws, head and tail are kept", () => {
  // /dev/full answers every write with ENOSPC, as a full host disk does.
  const r = new StreamRecorder("/dev/full", 4);
  assert.doesNotThrow(() => r.push(Buffer.from("hello ")));
  assert.doesNotThrow(() => r.push(Buffer.from("world")));
  assert.equal((r.logError as NodeJS.ErrnoException | undefined)?.code, "ENOSPC");
  const s = r.snapshot();
  assert.equal(s.bytes, 11);
  assert.equal(s.logged, 0);
  assert.equal(s.head.toString(), "hell");
  assert.equal(s.tail.toString(), "orld");
  r.close();
});
