import assert from "node:assert/strict";
import { chmod, mkdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { PyroError } from "../../src/core/errors.js";
import {
  ARCHIVE_LIMITS,
  archiveProblem,
  classifySource,
  entryLimitProblem,
  entryProblem,
  importIntoFreshDir,
  scanDirectory,
  validateArchive,
} from "../../src/project/archive.js";
import { resolveWorkspaceDest } from "../../src/workspaces/sync.js";
import { tempDir } from "../helpers.js";
import { bigZeroTarGz, makeTar, type TarEntry } from "../tar-fixtures.js";

function rejects(code: string, re: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof PyroError, `expected a PyroError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, re);
    return true;
  };
}

describe("entryProblem", () => {
  const ok = (path: string, type = "File", linkpath?: string) =>
    assert.equal(
      entryProblem({ path, type, ...(linkpath !== undefined ? { linkpath } : {}) }),
      undefined,
      path,
    );
  const bad = (re: RegExp, path: string, type = "File", linkpath?: string) =>
    assert.match(
      entryProblem({ path, type, ...(linkpath !== undefined ? { linkpath } : {}) }) ?? "(accepted)",
      re,
      path,
    );

  test("accepts ordinary files, directories and inside links", () => {
    ok("a.txt");
    ok("./src/main.c");
    ok("dir/", "Directory");
    ok("a/b/c", "OldFile");
    ok("a/..b/c");
    ok("a/link", "SymbolicLink", "../b/file");
    ok("a/self", "SymbolicLink", ".");
    ok("hl", "Link", "a/b/c");
  });
  test("refuses absolute paths and .. escapes", () => {
    bad(/absolute/, "/etc/passwd");
    bad(/absolute/, "C:\\windows");
    bad(/escapes/, "../evil");
    bad(/escapes/, "a/../../evil");
    bad(/escapes/, "a/../b");
    bad(/escapes/, "..");
    bad(/NUL/, "a\0b");
  });
  test("refuses links that point outside", () => {
    bad(/symlink to an absolute path \(\/etc\/passwd\)/, "pw", "SymbolicLink", "/etc/passwd");
    bad(/symlink pointing outside/, "a/out", "SymbolicLink", "../../outside");
    bad(/symlink pointing outside/, "out", "SymbolicLink", "..");
    bad(/hardlink to a path outside/, "hl", "Link", "/etc/passwd");
    bad(/hardlink to a path outside/, "hl", "Link", "../x");
    bad(/hardlink to a path outside/, "hl", "Link", "a/../../x");
  });
  test("refuses special files and unknown types", () => {
    bad(/device/, "tty", "CharacterDevice");
    bad(/device/, "sda", "BlockDevice");
    bad(/FIFO/, "fifo", "FIFO");
    bad(/unsupported type \(Weird\)/, "x", "Weird");
  });
});

describe("archiveProblem", () => {
  test("accepts links that stay inside, and archives without links", () => {
    assert.equal(archiveProblem([{ path: "a", type: "File" }]), undefined);
    assert.equal(
      archiveProblem([
        { path: "node_modules/.bin/tool", type: "SymbolicLink", linkpath: "../tool/bin.js" },
        { path: "node_modules/tool/bin.js", type: "File" },
        { path: "inc/self", type: "SymbolicLink", linkpath: "." },
        { path: "hl", type: "Link", linkpath: "node_modules/tool/bin.js" },
      ]),
      undefined,
    );
  });
  test("refuses a chain of relative symlinks that climbs out", () => {
    const p = archiveProblem([
      { path: "x", type: "Directory" },
      { path: "x/up", type: "SymbolicLink", linkpath: ".." },
      { path: "x/up2", type: "SymbolicLink", linkpath: "up/.." },
    ]);
    assert.equal(p?.path, "x/up2");
    assert.match(p?.why ?? "", /outside the destination through other symlinks/);
  });
  test("refuses entries and hardlink targets that go through a symlink of the archive", () => {
    assert.match(
      archiveProblem([
        { path: "l", type: "SymbolicLink", linkpath: "d" },
        { path: "l/f", type: "File" },
      ])?.why ?? "",
      /through the symlink l/,
    );
    const hl = archiveProblem([
      { path: "x/up", type: "SymbolicLink", linkpath: "." },
      { path: "stolen", type: "Link", linkpath: "x/up/secret" },
    ]);
    assert.equal(hl?.path, "stolen");
    assert.match(hl?.why ?? "", /hardlink whose target goes through the symlink x\/up/);
  });
  test("refuses symlink loops", () => {
    assert.match(
      archiveProblem([
        { path: "a", type: "SymbolicLink", linkpath: "b" },
        { path: "b", type: "SymbolicLink", linkpath: "a" },
      ])?.why ?? "",
      /loop/,
    );
  });
});

describe("resolveWorkspaceDest", () => {
  test("maps relative and absolute destinations under /workspace", () => {
    assert.equal(resolveWorkspaceDest("/workspace"), "/workspace");
    assert.equal(resolveWorkspaceDest("/workspace/"), "/workspace");
    assert.equal(resolveWorkspaceDest("."), "/workspace");
    assert.equal(resolveWorkspaceDest("sub/dir/"), "/workspace/sub/dir");
    assert.equal(resolveWorkspaceDest("/workspace/a/../b"), "/workspace/b");
    assert.equal(resolveWorkspaceDest("a//b"), "/workspace/a/b");
  });
  test("refuses anything outside /workspace", () => {
    for (const d of [
      "/etc",
      "../x",
      "/",
      "/workspace/..",
      "/workspace2",
      "/workspacefoo/x",
      "a/../../etc",
      "/workspace/../etc",
    ]) {
      assert.throws(() => resolveWorkspaceDest(d), rejects("invalid_argument", /outside \/workspace/), d);
    }
    assert.throws(() => resolveWorkspaceDest("a\0b"), rejects("invalid_argument", /NUL/));
  });
});

describe("archives on disk", () => {
  let dir: string;
  before(async () => {
    dir = await tempDir("pyro-unit-archive-");
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("classifySource: directories and .tar/.tar.gz/.tgz, clear errors otherwise", async () => {
    await mkdir(join(dir, "d"));
    for (const n of ["a.tar", "a.tar.gz", "a.TGZ", "a.zip", "plain.txt"]) await writeFile(join(dir, n), "x");
    assert.deepEqual(await classifySource(join(dir, "d"), "seed path"), {
      kind: "directory",
      path: join(dir, "d"),
      gzip: false,
    });
    assert.equal((await classifySource(join(dir, "a.tar"), "seed path")).gzip, false);
    assert.equal((await classifySource(join(dir, "a.tar.gz"), "seed path")).gzip, true);
    assert.equal((await classifySource(join(dir, "a.TGZ"), "seed path")).kind, "tar_archive");
    await assert.rejects(
      classifySource(join(dir, "a.zip"), "seed path"),
      rejects("invalid_argument", /seed path .*a\.zip is a file of an unsupported type/),
    );
    await assert.rejects(
      classifySource(join(dir, "nope"), "source path"),
      rejects("invalid_argument", /source path does not exist/),
    );
    await symlink(join(dir, "d"), join(dir, "link"));
    await assert.rejects(
      classifySource(join(dir, "link"), "seed path"),
      rejects("invalid_argument", /is a symlink/),
    );
  });

  test("validateArchive counts entries and bytes of a good archive, plain and gzip", async () => {
    const entries: TarEntry[] = [
      { name: "src", type: "directory" },
      { name: "src/a.txt", body: "hello" },
      { name: "src/b.txt", body: "12345678" },
      { name: "src/l", type: "symlink", linkname: "a.txt" },
    ];
    for (const gzip of [false, true]) {
      const p = await makeTar(join(dir, gzip ? "good.tgz" : "good.tar"), entries, gzip);
      assert.deepEqual(await validateArchive({ kind: "tar_archive", path: p, gzip }), {
        entry_count: 4,
        bytes_written: 13,
      });
    }
  });

  test("validateArchive names the bad entry and refuses hostile archives", async () => {
    const cases: [string, TarEntry[], RegExp][] = [
      ["dotdot", [{ name: "ok.txt" }, { name: "../evil", body: "x" }], /entry "\.\.\/evil" escapes/],
      ["abs", [{ name: "/abs/path", body: "x" }], /entry "\/abs\/path" has an absolute path/],
      [
        "symabs",
        [{ name: "pw", type: "symlink", linkname: "/etc/passwd" }],
        /entry "pw" is a symlink to an absolute path/,
      ],
      [
        "symrel",
        [{ name: "out", type: "symlink", linkname: "../../outside" }],
        /entry "out" is a symlink pointing outside/,
      ],
      ["hard", [{ name: "hl", type: "link", linkname: "/etc/passwd" }], /entry "hl" is a hardlink/],
      ["chr", [{ name: "tty", type: "character-device" }], /entry "tty" is a device file/],
      [
        "chain",
        [
          { name: "x", type: "directory" },
          { name: "x/up", type: "symlink", linkname: ".." },
          { name: "x/up2", type: "symlink", linkname: "up/.." },
          { name: "x/up3", type: "symlink", linkname: "up2/.." },
          { name: "stolen", type: "link", linkname: "x/up3/secret" },
        ],
        /entry "x\/up2" is a symlink that resolves outside/,
      ],
    ];
    for (const [name, entries, re] of cases) {
      const p = await makeTar(join(dir, `${name}.tar`), entries);
      await assert.rejects(
        validateArchive({ kind: "tar_archive", path: p, gzip: false }),
        rejects("seed_rejected", re),
        name,
      );
    }
  });

  test("validateArchive refuses files that are not tar archives", async () => {
    await writeFile(join(dir, "junk.tar"), "this is not a tar file at all, just text\n".repeat(40));
    await assert.rejects(
      validateArchive({ kind: "tar_archive", path: join(dir, "junk.tar"), gzip: false }),
      rejects("seed_rejected", /not a readable tar/),
    );
    await writeFile(join(dir, "junk.tgz"), "not gzip");
    await assert.rejects(
      validateArchive({ kind: "tar_archive", path: join(dir, "junk.tgz"), gzip: true }),
      rejects("seed_rejected", /not a readable tar/),
    );
  });

  test("scanDirectory counts entries, never follows symlinks, refuses sockets", async () => {
    const root = join(dir, "scan");
    await mkdir(join(root, "sub"), { recursive: true });
    await writeFile(join(root, "a"), "abc");
    await writeFile(join(root, "sub", "b"), "defg");
    await symlink("/etc", join(root, "etc-link"));
    assert.deepEqual(await scanDirectory(root), { entry_count: 4, bytes_written: 7 });
    const server = createServer();
    await new Promise<void>((r) => server.listen(join(root, "sock"), r));
    try {
      await assert.rejects(
        scanDirectory(root),
        rejects("seed_rejected", /sock is not a regular file, directory or symlink/),
      );
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  test("importIntoFreshDir copies a directory keeping symlinks as links", async () => {
    const src = join(dir, "seed");
    await mkdir(join(src, "d"), { recursive: true });
    await writeFile(join(src, "d", "f"), "content");
    await symlink("/etc/hostname", join(src, "host-link"));
    const dest = join(dir, "fresh");
    await mkdir(dest);
    await importIntoFreshDir({ kind: "directory", path: src, gzip: false }, dest);
    const { readlink, lstat } = await import("node:fs/promises");
    assert.equal(await readFile(join(dest, "d", "f"), "utf8"), "content");
    assert.ok((await lstat(join(dest, "host-link"))).isSymbolicLink());
    assert.equal(await readlink(join(dest, "host-link")), "/etc/hostname");
  });
});

describe("limits, set-id bits and abort", () => {
  let dir: string;
  before(async () => {
    dir = await tempDir("pyro-unit-archive-limits-");
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A chain of `depth` nested directories with one file at the bottom, as tar entries. */
  function deepEntries(depth: number): TarEntry[] {
    const entries: TarEntry[] = [];
    let p = "";
    for (let i = 0; i < depth; i++) {
      p += "d/";
      entries.push({ name: p, type: "directory" });
    }
    entries.push({ name: `${p}bottom.txt`, body: "deep\n" });
    return entries;
  }

  test("entryLimitProblem names the depth and path-length limits", () => {
    const { maxDepth, maxPathBytes } = ARCHIVE_LIMITS;
    assert.equal(entryLimitProblem({ path: "a/".repeat(maxDepth), type: "Directory" }), undefined);
    assert.match(
      entryLimitProblem({ path: "a/".repeat(maxDepth + 1), type: "Directory" }) ?? "",
      new RegExp(`nested ${maxDepth + 1} directories deep, beyond the limit of ${maxDepth}`),
    );
    assert.match(
      entryLimitProblem({ path: "x".repeat(maxPathBytes + 1), type: "File" }) ?? "",
      new RegExp(`path longer than the limit of ${maxPathBytes} bytes`),
    );
    assert.match(
      entryLimitProblem({ path: "l", type: "SymbolicLink", linkpath: "y".repeat(maxPathBytes + 1) }) ?? "",
      /link target longer than the limit/,
    );
  });

  test("a 1,500-level archive is refused in well under a second, naming the entry and the limit", async () => {
    const p = await makeTar(join(dir, "deep.tar"), deepEntries(1500));
    const t0 = performance.now();
    await assert.rejects(
      validateArchive({ kind: "tar_archive", path: p, gzip: false }),
      rejects(
        "seed_rejected",
        new RegExp(
          `entry "(d/){40}…(d/){40}" \\(${2 * (ARCHIVE_LIMITS.maxDepth + 1)} characters\\) is nested ${ARCHIVE_LIMITS.maxDepth + 1} directories deep, beyond the limit of ${ARCHIVE_LIMITS.maxDepth}`,
        ),
      ),
    );
    assert.ok(performance.now() - t0 < 2000, `took ${Math.round(performance.now() - t0)} ms`);
  });

  test("an archive at the depth limit is validated and unpacked in seconds", async () => {
    const depth = ARCHIVE_LIMITS.maxDepth - 1;
    const p = await makeTar(join(dir, "limit.tar"), deepEntries(depth));
    const t0 = performance.now();
    const src = { kind: "tar_archive" as const, path: p, gzip: false };
    assert.deepEqual(await validateArchive(src), { entry_count: depth + 1, bytes_written: 5 });
    const dest = join(dir, "limit-out");
    await mkdir(dest);
    await importIntoFreshDir(src, dest);
    assert.equal(await readFile(join(dest, "d/".repeat(depth), "bottom.txt"), "utf8"), "deep\n");
    // node-tar took ~40 s for 400 levels; GNU tar takes milliseconds.
    assert.ok(performance.now() - t0 < 5000, `took ${Math.round(performance.now() - t0)} ms`);
  });

  test("a directory seed deeper than the limit is refused by name", async () => {
    const root = join(dir, "deepdir");
    const leaf = join(root, ...Array.from({ length: ARCHIVE_LIMITS.maxDepth + 2 }, () => "d"));
    await mkdir(leaf, { recursive: true });
    await assert.rejects(
      scanDirectory(root),
      rejects(
        "seed_rejected",
        new RegExp(`nested more than the limit of ${ARCHIVE_LIMITS.maxDepth} directories`),
      ),
    );
  });

  test("cross-entry checks stay fast on a deep archive full of symlinks", async () => {
    // 250 levels, a harmless symlink at every level: quadratic prefix joins made this slow.
    const entries: TarEntry[] = [];
    let p = "";
    for (let i = 0; i < 250; i++) {
      p += "d/";
      entries.push({ name: p, type: "directory" });
      entries.push({ name: `${p}self`, type: "symlink", linkname: "." });
    }
    const tarPath = await makeTar(join(dir, "links.tar"), entries);
    const t0 = performance.now();
    const stats = await validateArchive({ kind: "tar_archive", path: tarPath, gzip: false });
    assert.equal(stats.entry_count, 500);
    assert.ok(performance.now() - t0 < 2000, `took ${Math.round(performance.now() - t0)} ms`);
  });

  test("set-uid/set-gid bits never reach the host: tar seeds (root-owned 4755) and directory seeds", async () => {
    const tarPath = await makeTar(join(dir, "suid.tar"), [
      { name: "bin", type: "directory", mode: 0o2755, uid: 0, gid: 0 },
      { name: "bin/su", body: "#!/bin/sh\n", mode: 0o4755, uid: 0, gid: 0 },
      { name: "bin/sg", body: "#!/bin/sh\n", mode: 0o2755, uid: 0, gid: 0 },
      { name: "bin/sticky", type: "directory", mode: 0o1777 },
    ]);
    const fromTar = join(dir, "suid-tar-out");
    await mkdir(fromTar);
    await importIntoFreshDir({ kind: "tar_archive", path: tarPath, gzip: false }, fromTar);

    const seed = join(dir, "suid-seed");
    await mkdir(join(seed, "bin"), { recursive: true });
    await chmod(join(seed, "bin"), 0o2755);
    for (const [n, m] of [
      ["su", 0o4755],
      ["sg", 0o2755],
    ] as const) {
      await writeFile(join(seed, "bin", n), "#!/bin/sh\n");
      await chmod(join(seed, "bin", n), m);
    }
    assert.equal((await stat(join(seed, "bin", "su"))).mode & 0o7777, 0o4755, "fixture has the bit");
    const fromDir = join(dir, "suid-dir-out");
    await mkdir(fromDir);
    await importIntoFreshDir({ kind: "directory", path: seed, gzip: false }, fromDir);

    for (const out of [fromTar, fromDir]) {
      for (const n of ["bin", "bin/su", "bin/sg"]) {
        const mode = (await stat(join(out, n))).mode;
        assert.equal(mode & 0o6000, 0, `${out}/${n} kept set-id bits: ${(mode & 0o7777).toString(8)}`);
        assert.equal(mode & 0o755, 0o755, `${out}/${n} lost its ordinary bits`);
      }
    }
  });

  test("abort: validation and unpacking stop and say cancelled", async () => {
    const p = await makeTar(join(dir, "small.tar"), [{ name: "a", body: "x" }]);
    const src = { kind: "tar_archive" as const, path: p, gzip: false };
    await assert.rejects(validateArchive(src, AbortSignal.abort()), rejects("cancelled", /cancelled/));
    await assert.rejects(scanDirectory(dir, AbortSignal.abort()), rejects("cancelled", /cancelled/));
    const dest = join(dir, "aborted-out");
    await mkdir(dest);
    await assert.rejects(
      importIntoFreshDir(src, dest, AbortSignal.abort()),
      rejects("cancelled", /cancelled/),
    );

    // A running unpack (1 GiB of zeros, ~5 s of writing) is killed promptly on abort.
    const big = await bigZeroTarGz(join(dir, "big.tar.gz"), 1024 ** 3);
    const ac = new AbortController();
    const t0 = performance.now();
    setTimeout(() => ac.abort(), 300);
    const bigDest = join(dir, "big-out");
    await mkdir(bigDest);
    await assert.rejects(
      importIntoFreshDir({ kind: "tar_archive", path: big, gzip: true }, bigDest, ac.signal),
      rejects("cancelled", /cancelled/),
    );
    assert.ok(performance.now() - t0 < 2000, `abort took ${Math.round(performance.now() - t0)} ms`);
  });
});
