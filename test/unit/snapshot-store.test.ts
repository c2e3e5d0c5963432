import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { lstat, mkdir, readdir, readFile, readlink, rm, symlink, utimes, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { SnapshotStore } from "../../src/workspaces/snapshot-store.js";
import { tempDir } from "../helpers.js";

/**
 * The snapshot store on its own: scan a tree, change it in every way a guest can (edit,
 * delete, add, chmod, a directory swapped for a symlink to a host path), restore, and the
 * tree is as scanned; unchanged files are not rewritten; delete + gc frees what nothing uses.
 */

async function tree(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for (const n of (await readdir(rel ? join(root, rel) : root)).sort()) {
      const p = rel ? `${rel}/${n}` : n;
      const st = await lstat(join(root, p));
      const what = st.isSymbolicLink()
        ? `-> ${await readlink(join(root, p))}`
        : st.isDirectory()
          ? "dir"
          : (await readFile(join(root, p), "utf8")).trim();
      out.push(`${p} ${(st.mode & 0o7777).toString(8)} ${Math.floor(st.mtimeMs / 1000)} ${what}`);
      if (st.isDirectory()) await walk(p);
    }
  };
  await walk("");
  return out;
}

async function objects(store: SnapshotStore): Promise<number> {
  let n = 0;
  for (const d of await readdir(store.objectsDir).catch(() => [] as string[]))
    n += (await readdir(join(store.objectsDir, d)).catch(() => [])).length;
  return n;
}

test("scan, change, restore: the tree is as scanned, only what differs is rewritten", async () => {
  const base = await tempDir("pyro-store-");
  try {
    const root = join(base, "files");
    const store = new SnapshotStore(join(base, "snapshots"));
    await mkdir(join(root, "dir", "sub"), { recursive: true });
    await writeFile(join(root, "a.txt"), "a\n");
    await writeFile(join(root, "same1.txt"), "same\n");
    await writeFile(join(root, "same2.txt"), "same\n");
    await writeFile(join(root, "run.sh"), "#!/bin/sh\n", { mode: 0o755 });
    await writeFile(join(root, "dir", "sub", "deep.txt"), "deep\n");
    await symlink("a.txt", join(root, "link"));
    for (const f of ["a.txt", "same1.txt", "same2.txt", "run.sh", "dir/sub/deep.txt"])
      await utimes(join(root, f), 1_700_000_000, 1_700_000_000);
    // A stat vouches for a file's content only once its ctime is over 1 s old (see RACY_NS).
    await new Promise((r) => setTimeout(r, 1100));
    const before = await tree(root);

    const added: string[] = [];
    const { manifest, index } = await store.scan(root, "a", added, {});
    assert.equal(manifest.files, 5);
    assert.equal(added.length, 4, "identical contents are stored once");
    assert.equal(await objects(store), 4);
    await mkdir(store.manifestsDir, { recursive: true });
    await writeFile(store.manifestPath("a"), JSON.stringify(manifest));
    await store.writeIndex(index);

    await writeFile(join(root, "a.txt"), "changed\n");
    await rm(join(root, "run.sh"));
    await writeFile(join(root, "new.txt"), "new\n");
    await rm(join(root, "dir"), { recursive: true });
    await symlink("/etc", join(root, "dir"));
    await rm(join(root, "link"));
    await symlink("/etc/passwd", join(root, "link"));

    const r = await store.restore(root, manifest, { useIndex: true });
    assert.deepEqual(await tree(root), before);
    assert.equal(r.removed, 3, "new.txt, the dir symlink, the link with another target");
    assert.equal(r.written, 4, "a.txt, run.sh, deep.txt, the link: not the two unchanged files");
    // Nothing under /etc was touched through the planted symlink.
    assert.equal((await lstat("/etc/sub").catch(() => undefined)) === undefined, true);

    // Again: nothing differs, nothing is written.
    const again = await store.restore(root, manifest, { useIndex: true });
    assert.equal(again.removed, 0);
    assert.ok(again.written <= 4, JSON.stringify(again));
    assert.deepEqual(await tree(root), before);

    // A second snapshot of an unchanged tree stores nothing new.
    const second = await store.scan(root, "b", [], (await store.readIndex()).entries);
    assert.equal(second.manifest.new_bytes, 0);

    // Into an empty directory (a fork): the same tree.
    const fork = join(base, "fork");
    await mkdir(fork);
    await store.restore(fork, manifest, { useIndex: false });
    assert.deepEqual(await tree(fork), before);

    // Delete the manifest: gc frees every object.
    await rm(store.manifestPath("a"));
    assert.ok((await store.gc()) > 0);
    assert.equal(await objects(store), 0);
    assert.deepEqual((await store.readIndex()).entries, {}, "index rows of removed objects go too");
  } finally {
    await rm(base, { recursive: true, force: true });
  }
});

test("scan: a FIFO and a socket on the host side are not stored but listed with their kind", async () => {
  const base = await tempDir("pyro-store-");
  const server = createServer();
  try {
    const root = join(base, "files");
    const store = new SnapshotStore(join(base, "snapshots"));
    await mkdir(join(root, "d"), { recursive: true });
    await writeFile(join(root, "f"), "x\n");
    execFileSync("mkfifo", [join(root, "d", "pipe")]);
    await new Promise<void>((r) => server.listen(join(root, "sock"), r));
    const { manifest, skipped } = await store.scan(root, "a", [], {});
    assert.deepEqual(
      manifest.entries.map((e) => e.path),
      ["d", "f"],
    );
    assert.deepEqual(manifest.skipped, ["d/pipe", "sock"]);
    assert.deepEqual(skipped, [
      {
        path: "d/pipe",
        reason: "a FIFO, which snapshots do not keep (only files, directories and symlinks)",
      },
      {
        path: "sock",
        reason: "a socket, which snapshots do not keep (only files, directories and symlinks)",
      },
    ]);
  } finally {
    await new Promise((r) => server.close(r));
    await rm(base, { recursive: true, force: true });
  }
});
