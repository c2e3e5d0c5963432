import assert from "node:assert/strict";
import { mkdir, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { acquireLock } from "../../src/util/lock.js";
import { REMOVING_PREFIX, removeTree, sweepRemoving } from "../../src/util/remove-tree.js";
import { tempDir } from "../helpers.js";

let root: string;
before(async () => {
  root = await tempDir("pyro-unit-remove-tree-");
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function recordDir(name: string, files = 200): Promise<string> {
  const d = join(root, name);
  await mkdir(join(d, "commands"), { recursive: true });
  await writeFile(join(d, "workspace.json"), "{}");
  for (let i = 0; i < files; i++) await writeFile(join(d, "commands", `${i}.json`), "{}");
  return d;
}

test("a record directory is gone from its id at once, and a lock taken meanwhile cannot land in it", async () => {
  const d = await recordDir("ws_0123456789abcdef");
  // Lock attempts on the record race the removal (as a list's try-lock does under load):
  // before the rename they fail as held or win, after it they meet a missing directory.
  const attempts = Array.from({ length: 20 }, () =>
    acquireLock(join(d, "workspace.json"), { waitMs: 0, createDir: false }).then(
      (release) => release(),
      () => undefined,
    ),
  );
  await Promise.all([removeTree(d), ...attempts]);
  assert.deepEqual(await readdir(root), [], "nothing left, not even a half-removed directory");
  await removeTree(d); // a second removal of what is gone is not an error
});

test("what a killed removal left is swept, except what the caller keeps", async () => {
  await mkdir(join(root, `${REMOVING_PREFIX}ws_a-1-1`, "x"), { recursive: true });
  await mkdir(join(root, `${REMOVING_PREFIX}ws_b-1-2`), { recursive: true });
  await symlink("/", join(root, `${REMOVING_PREFIX}ws_c-1-3`)); // removed as a link, never followed
  await recordDir("ws_fedcba9876543210", 1);
  await sweepRemoving(root, async (dir) => dir.endsWith("ws_b-1-2"));
  assert.deepEqual((await readdir(root)).sort(), [`${REMOVING_PREFIX}ws_b-1-2`, "ws_fedcba9876543210"]);
  await rm(join(root, `${REMOVING_PREFIX}ws_b-1-2`), { recursive: true });
  await rm(join(root, "ws_fedcba9876543210"), { recursive: true });
});
