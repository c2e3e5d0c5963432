import assert from "node:assert/strict";
import { mkdir, readdir, rm, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { findSnapshot, pruneSnapshots, snapshotPaths } from "../../src/engines/qemu/snapshot.js";
import { tempDir } from "../helpers.js";

async function makeSnapshot(
  root: string,
  key: string,
  opts: { state?: number; recorded?: number; meta?: boolean } = {},
) {
  const p = snapshotPaths(root, key);
  await mkdir(p.dir, { recursive: true });
  await writeFile(p.state, Buffer.alloc(opts.state ?? 100));
  await writeFile(p.disk, Buffer.alloc(10));
  if (opts.meta !== false) {
    await writeFile(
      p.meta,
      JSON.stringify({
        key,
        state_bytes: opts.recorded ?? opts.state ?? 100,
        disk_bytes: 10,
        created_at: "",
        save_ms: 1,
        parts: {},
      }),
    );
  }
  return p;
}

test("a snapshot counts only when meta.json (written last) matches the files", async () => {
  const root = await tempDir("pyro-snaps-");
  try {
    assert.equal(await findSnapshot(root, "none"), undefined);
    await makeSnapshot(root, "good");
    const ok = await findSnapshot(root, "good");
    assert.ok(ok && ok !== "corrupt" && ok.meta.key === "good");
    await makeSnapshot(root, "nometa", { meta: false });
    assert.equal(await findSnapshot(root, "nometa"), "corrupt");
    await makeSnapshot(root, "short", { state: 50, recorded: 100 });
    assert.equal(await findSnapshot(root, "short"), "corrupt");
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("pruning keeps the most recently used snapshots", async () => {
  const root = await tempDir("pyro-snaps-");
  try {
    for (let i = 0; i < 5; i++) {
      const p = await makeSnapshot(root, `k${i}`);
      const t = new Date(Date.now() - (10 - i) * 60_000);
      await utimes(p.meta, t, t);
    }
    await mkdir(join(root, ".tmp-123"));
    assert.deepEqual((await pruneSnapshots(root, 2)).sort(), ["k0", "k1", "k2"]);
    assert.deepEqual((await readdir(root)).sort(), [".tmp-123", "k3", "k4"]);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
