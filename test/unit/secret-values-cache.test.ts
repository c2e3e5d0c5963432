import assert from "node:assert/strict";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, test } from "node:test";
import { SECRET_CACHE_SWEEP_MIN, SecretValuesCache } from "../../src/secrets/keeper.js";
import { tempDir } from "../helpers.js";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const value = (i: number) => [{ name: "TOKEN", value: Buffer.from(`v${i}`) }];

test("the secret-values cache drops workspaces that are gone (deleted elsewhere) and stays bounded", async () => {
  const root = await tempDir("pyro-secret-cache-");
  dirs.push(root);
  const cache = new SecretValuesCache();
  // Three live workspaces, then a long run of workspaces that another process deletes.
  const live = ["ws_live0", "ws_live1", "ws_live2"];
  for (const [i, id] of live.entries()) {
    await mkdir(join(root, id));
    cache.set(id, join(root, id), value(i));
  }
  for (let i = 0; i < 20 * SECRET_CACHE_SWEEP_MIN; i++) {
    const id = `ws_gone${i}`;
    await mkdir(join(root, id));
    cache.set(id, join(root, id), value(i));
    await rm(join(root, id), { recursive: true });
    // Never more than the sweep floor (plus the live ones): without the sweep this is i + 4.
    assert.ok(cache.size <= SECRET_CACHE_SWEEP_MIN + live.length, `size ${cache.size} after ${i + 1} gone`);
  }
  // No live workspace's values were evicted: a literal secret exists nowhere else.
  for (const [i, id] of live.entries()) assert.deepEqual(cache.get(id), value(i));
});

test("the secret-values cache never evicts live workspaces, however many", async () => {
  const root = await tempDir("pyro-secret-cache-");
  dirs.push(root);
  const cache = new SecretValuesCache();
  const n = 3 * SECRET_CACHE_SWEEP_MIN;
  for (let i = 0; i < n; i++) {
    await mkdir(join(root, `ws_${i}`));
    cache.set(`ws_${i}`, join(root, `ws_${i}`), value(i));
  }
  assert.equal(cache.size, n);
  for (let i = 0; i < n; i++) assert.deepEqual(cache.get(`ws_${i}`), value(i));
  cache.delete("ws_0");
  assert.equal(cache.get("ws_0"), undefined);
});
