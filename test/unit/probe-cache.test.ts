import assert from "node:assert/strict";
import { chmod, mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { resolvePaths } from "../../src/core/paths.js";
import { cachedProbes, keepProbes, PROBE_CACHE_MAX_AGE_MS, probeKey } from "../../src/doctor/probe-cache.js";
import type { ProbeResult } from "../../src/engines/types.js";

/** doctor's engine-probe cache (src/doctor/probe-cache.ts): what invalidates it. */

test("the key changes with an engine binary's mtime, a PYRO_ setting and the probed environment", async () => {
  const dir = await mkdtemp(join(tmpdir(), "pyro-probe-cache-"));
  try {
    const runsc = join(dir, "runsc");
    await writeFile(runsc, "#!/bin/sh\n");
    await chmod(runsc, 0o755);
    const env = { PATH: "/usr/bin", PYRO_RUNSC: runsc, PYRO_STATE_DIR: dir, PYRO_CACHE_DIR: dir };
    const paths = resolvePaths(env);
    const base = await probeKey(paths, env, undefined);
    assert.equal(await probeKey(paths, env, undefined), base, "nothing changed: the same key");
    await utimes(runsc, new Date(), new Date(Date.now() + 5000));
    const touched = await probeKey(paths, env, undefined);
    assert.notEqual(touched, base, "a new runsc binary");
    assert.notEqual(
      await probeKey(paths, { ...env, PYRO_ENGINE: "gvisor" }, undefined),
      touched,
      "a setting",
    );
    assert.notEqual(await probeKey(paths, env, dir), touched, "an environment to probe with");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("kept probes come back under their key only, and not after a day", async () => {
  const dir = await mkdtemp(join(tmpdir(), "pyro-probe-cache-"));
  try {
    const probes = [{ engine: "host", available: true, detail: "x" }] as unknown as ProbeResult[];
    await keepProbes(dir, "k1", probes, { modes: ["off"], detail: "d" });
    assert.deepEqual((await cachedProbes(dir, "k1"))?.probes, probes);
    assert.equal(await cachedProbes(dir, "k2"), undefined, "another key");
    assert.equal(
      await cachedProbes(dir, "k1", Date.now() + PROBE_CACHE_MAX_AGE_MS + 1),
      undefined,
      "too old",
    );
    await writeFile(join(dir, "doctor-probes.json"), "{not json");
    assert.equal(await cachedProbes(dir, "k1"), undefined, "a damaged file is a miss");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
