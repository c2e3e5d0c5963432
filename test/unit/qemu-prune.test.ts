import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { pruneMicrovmCache } from "../../src/engines/qemu/prune.js";

async function fakeCache(): Promise<string> {
  const cache = await mkdtemp(join(tmpdir(), "pyro-prune-"));
  const images = join(cache, "guest-images");
  await mkdir(images, { recursive: true });
  for (const n of [
    "root-aaa.ext4",
    "root-bbb.ext4",
    "initramfs-111.cpio",
    "initramfs-222.cpio",
    "initramfs-333.cpio",
  ]) {
    await writeFile(join(images, n), "x".repeat(4096));
  }
  const old = new Date(Date.now() - 3600_000);
  await utimes(join(images, "initramfs-111.cpio"), old, old);
  await utimes(join(images, "initramfs-333.cpio"), old, old);
  for (const [key, image, initramfs] of [
    ["k1", "aaa", "111"],
    ["k2", "bbb", "333"],
  ] as const) {
    await mkdir(join(cache, "qemu-snapshots", key), { recursive: true });
    await writeFile(
      join(cache, "qemu-snapshots", key, "meta.json"),
      JSON.stringify({ key, parts: { image, initramfs } }),
    );
  }
  return cache;
}

test("env prune keeps images and snapshots of installed environments, drops the rest", async () => {
  const cache = await fakeCache();
  try {
    const r = await pruneMicrovmCache(cache, new Set(["aaa"]), { all: false }, {});
    assert.deepEqual(r.removed.sort(), [
      "guest-images/initramfs-333.cpio",
      "guest-images/root-bbb.ext4",
      "qemu-snapshots/k2",
    ]);
    assert.ok(r.bytes_freed > 0);
    // initramfs-111 is used by the kept snapshot, initramfs-222 is the newest.
    assert.deepEqual((await readdir(join(cache, "guest-images"))).sort(), [
      "initramfs-111.cpio",
      "initramfs-222.cpio",
      "root-aaa.ext4",
    ]);
    assert.deepEqual(await readdir(join(cache, "qemu-snapshots")), ["k1"]);
  } finally {
    await rm(cache, { recursive: true, force: true });
  }
});

test("env prune --all empties the microVM caches", async () => {
  const cache = await fakeCache();
  try {
    await pruneMicrovmCache(cache, new Set(["aaa"]), { all: true }, {});
    assert.deepEqual(await readdir(join(cache, "guest-images")), []);
    assert.deepEqual(await readdir(join(cache, "qemu-snapshots")), []);
  } finally {
    await rm(cache, { recursive: true, force: true });
  }
});
