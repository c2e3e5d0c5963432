import assert from "node:assert/strict";
import { stat } from "node:fs/promises";
import { test } from "node:test";
import { claimReap, reapDue, reapIntervalMs, reapStampPath } from "../../src/sandbox/reap-schedule.js";
import { tempDir } from "../helpers.js";

test("reapDue: only once the stamp is an interval old (or from the future)", () => {
  const now = 1_000_000_000;
  assert.equal(reapDue(undefined, now, 30_000), false, "no stamp: the first call starts the clock");
  assert.equal(reapDue(now - 29_999, now, 30_000), false);
  assert.equal(reapDue(now - 30_000, now, 30_000), true);
  assert.equal(reapDue(now + 3_600_000, now, 30_000), true, "a clock moved back must not stop reaping");
});

test("reapIntervalMs reads PYRO_REAP_INTERVAL_SECONDS and ignores nonsense", () => {
  assert.equal(reapIntervalMs({}), 30_000);
  assert.equal(reapIntervalMs({ PYRO_REAP_INTERVAL_SECONDS: "2" }), 2_000);
  assert.equal(reapIntervalMs({ PYRO_REAP_INTERVAL_SECONDS: "-1" }), 30_000);
  assert.equal(reapIntervalMs({ PYRO_REAP_INTERVAL_SECONDS: "x" }), 30_000);
});

test("claimReap: one claim per interval across callers; the stamp moves to the claim", async () => {
  const dir = await tempDir("pyro-reap-");
  const t0 = Date.now();
  assert.equal(await claimReap(dir, 30_000, t0), false, "first call writes the stamp");
  const first = (await stat(reapStampPath(dir))).mtimeMs;
  assert.equal(await claimReap(dir, 30_000, first + 1_000), false);
  assert.equal(await claimReap(dir, 30_000, first + 31_000), true);
  assert.equal(await claimReap(dir, 30_000, first + 32_000), false, "the claim moved the stamp");
  assert.equal(await claimReap(`${dir}/missing/dir`, 0, t0), false, "no state dir: nothing to reap");
});

test("one-shot output pruning stats the files at most once a minute per outputs dir, across processes", async () => {
  const { pruneOneShotOutputs } = await import("../../src/output/store.js");
  const { mkdir, utimes, writeFile, readdir } = await import("node:fs/promises");
  const { join } = await import("node:path");
  const old = new Date(Date.now() - 48 * 3600_000);
  const setup = async (stampAgeMs: number | undefined) => {
    const outputsDir = join(await tempDir("pyro-outputs-"), "outputs");
    await mkdir(outputsDir);
    for (const s of ["stdout", "stderr"]) {
      await writeFile(join(outputsDir, `vm_0123456789abcdef.${s}`), "x");
      await utimes(join(outputsDir, `vm_0123456789abcdef.${s}`), old, old);
    }
    if (stampAgeMs !== undefined) {
      const at = new Date(Date.now() - stampAgeMs);
      await writeFile(join(outputsDir, ".age-checked"), "");
      await utimes(join(outputsDir, ".age-checked"), at, at);
    }
    return { outputsDir } as Parameters<typeof pruneOneShotOutputs>[0];
  };
  const fresh = await setup(5_000);
  await pruneOneShotOutputs(fresh);
  assert.equal(
    (await readdir(fresh.outputsDir)).length,
    3,
    "checked 5 s ago by another process: nothing statted",
  );
  for (const stale of [await setup(120_000), await setup(undefined)]) {
    await pruneOneShotOutputs(stale);
    assert.deepEqual(await readdir(stale.outputsDir), [".age-checked"], "a 48 h old output goes");
  }
});

test("at the count limit one-shot outputs are pruned a tenth below it, so the next runs skip the scan", async () => {
  const { ONESHOT_RETENTION, pruneOneShotOutputs } = await import("../../src/output/store.js");
  const { mkdir, utimes, writeFile, readdir } = await import("node:fs/promises");
  const { join } = await import("node:path");
  const outputsDir = join(await tempDir("pyro-outputs-"), "outputs");
  await mkdir(outputsDir);
  const now = Date.now();
  for (let i = 0; i < ONESHOT_RETENTION.runs; i++) {
    const id = `vm_${i.toString(16).padStart(16, "0")}`;
    for (const s of ["stdout", "stderr"]) {
      await writeFile(join(outputsDir, `${id}.${s}`), "x");
      const at = new Date(now - (ONESHOT_RETENTION.runs - i) * 1000); // higher i = newer
      await utimes(join(outputsDir, `${id}.${s}`), at, at);
    }
  }
  const dir = { outputsDir } as Parameters<typeof pruneOneShotOutputs>[0];
  await pruneOneShotOutputs(dir, now);
  const left = (await readdir(outputsDir)).filter((n) => n.endsWith(".stdout")).sort();
  assert.equal(left.length, 90);
  assert.equal(left[0], `vm_${(10).toString(16).padStart(16, "0")}.stdout`, "the oldest went");
  // Below the limit now: the next call (a minute-old stamp is fresh) looks at nothing.
  await writeFile(join(outputsDir, "vm_ffffffffffffffff.stdout"), "x");
  await pruneOneShotOutputs(dir, now + 1000);
  assert.equal((await readdir(outputsDir)).filter((n) => n.endsWith(".stdout")).length, 91);
});
