import assert from "node:assert/strict";
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { readJson, withLock, writeJsonAtomic } from "../../src/util/json-store.js";
import { tempDir } from "../helpers.js";

let dir: string;
before(async () => {
  dir = await tempDir("pyro-unit-json-");
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("writeJsonAtomic creates parents and leaves no temp files; readJson reads it back", async () => {
  const p = join(dir, "a", "b", "rec.json");
  await writeJsonAtomic(p, { x: 1, s: "é" });
  assert.deepEqual(await readJson(p), { x: 1, s: "é" });
  assert.deepEqual(await readdir(join(dir, "a", "b")), ["rec.json"]);
  assert.equal(await readJson(join(dir, "missing.json")), undefined);
  await writeFile(join(dir, "bad.json"), "{nope");
  await assert.rejects(readJson(join(dir, "bad.json")), SyntaxError);
});

test("withLock serialises read-modify-write: no lost updates under contention", async () => {
  const p = join(dir, "counter.json");
  await writeJsonAtomic(p, { n: 0 });
  await Promise.all(
    Array.from({ length: 20 }, () =>
      withLock(p, async () => {
        const cur = (await readJson<{ n: number }>(p))!;
        await new Promise((r) => setTimeout(r, 2));
        await writeJsonAtomic(p, { n: cur.n + 1 });
      }),
    ),
  );
  assert.deepEqual(JSON.parse(await readFile(p, "utf8")), { n: 20 });
  assert.ok(!(await readdir(dir)).includes("counter.json.lock"), "lock released");
});

test("withLock releases the lock when the body throws", async () => {
  const p = join(dir, "throws.json");
  await assert.rejects(
    withLock(p, async () => Promise.reject(new Error("boom"))),
    /boom/,
  );
  assert.equal(await withLock(p, async () => 7), 7);
});
