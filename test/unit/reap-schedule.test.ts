import assert from "node:assert/strict";
import { stat } from "node:fs/promises";
import { test } from "node:test";
import { claimReap, reapDue, reapIntervalMs, reapStampPath } from "../../src/runtime/reap-schedule.js";
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
