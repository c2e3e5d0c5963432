import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { linkStaysInside } from "../../src/workspaces/export.js";
import { checkMode, isText, occurrences, parseFindEntries } from "../../src/workspaces/files.js";
import { relToWorkspace, workspacePath } from "../../src/workspaces/guest.js";
import { applyHunks, parsePatch } from "../../src/workspaces/patch.js";

/** The pure parts of the workspace round trip: paths, patch parsing and hunk matching, listings. */

describe("workspacePath", () => {
  test("relative and absolute paths inside /workspace", () => {
    assert.equal(workspacePath("a/b.txt"), "/workspace/a/b.txt");
    assert.equal(workspacePath("/workspace/a/../b"), "/workspace/b");
    assert.equal(workspacePath("."), "/workspace");
    assert.equal(workspacePath("/workspace/"), "/workspace");
    assert.equal(relToWorkspace("/workspace/a/b"), "a/b");
    assert.equal(relToWorkspace("/workspace"), ".");
  });
  test("anything that leaves it is refused, naming the path", () => {
    for (const p of ["../../etc/shadow", "/etc/shadow", "a/../../x", "/workspacex/y", "/"]) {
      assert.throws(
        () => workspacePath(p),
        (e: Error) => e.message.includes(JSON.stringify(p)),
        p,
      );
    }
    assert.throws(() => workspacePath("a\0b"), /NUL/);
  });
});

describe("parsePatch", () => {
  const git = [
    "diff --git a/b.txt b/b.txt",
    "index 2fa992c..fe5841d 100644",
    "--- a/b.txt",
    "+++ b/b.txt",
    "@@ -1 +1,2 @@",
    " keep",
    "+more",
    "diff --git a/d.sh b/d.sh",
    "new file mode 100755",
    "index 0000000..b77b4eb",
    "--- /dev/null",
    "+++ b/d.sh",
    "@@ -0,0 +1,2 @@",
    "+x",
    "+y",
    "\\ No newline at end of file",
    "diff --git a/c.txt b/c.txt",
    "deleted file mode 100644",
    "--- a/c.txt",
    "+++ /dev/null",
    "@@ -1 +0,0 @@",
    "-gone",
    "",
  ].join("\n");

  test("git diff output: modified, created (with mode), deleted", () => {
    const files = parsePatch(git);
    assert.deepEqual(
      files.map((f) => [f.oldPath, f.newPath, f.newMode ?? null, f.hunks.length]),
      [
        ["b.txt", "b.txt", null, 1],
        [null, "d.sh", "100755", 1],
        ["c.txt", null, null, 1],
      ],
    );
    assert.equal(files[1]!.hunks[0]!.newNoEol, true);
  });
  test("strip=0 keeps the paths as written", () => {
    assert.equal(parsePatch("--- x/a\n+++ x/a\n@@ -1 +1 @@\n-a\n+b\n", 0)[0]!.newPath, "x/a");
  });
  test("refusals: no file headers, a truncated hunk, renames and binary patches", () => {
    assert.throws(() => parsePatch("just text\n"), /no file changes/);
    assert.throws(() => parsePatch("--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n"), /truncated or malformed/);
    assert.throws(() => parsePatch("diff --git a/x b/y\nrename from x\nrename to y\n"), /rename/);
    assert.throws(() => parsePatch("diff --git a/x b/x\nGIT binary patch\nliteral 3\n"), /binary/);
  });
});

describe("applyHunks", () => {
  const hunks = (p: string) => parsePatch(p)[0]!.hunks;
  test("applies at the stated line", () => {
    const h = hunks("--- a/f\n+++ b/f\n@@ -2,2 +2,2 @@\n b\n-c\n+C\n");
    assert.equal(applyHunks("a\nb\nc\nd\n", h), "a\nb\nC\nd\n");
  });
  test("finds a hunk at an offset when lines were added above", () => {
    const h = hunks("--- a/f\n+++ b/f\n@@ -2,2 +2,2 @@\n b\n-c\n+C\n");
    assert.equal(applyHunks("new\nnew2\na\nb\nc\nd\n", h), "new\nnew2\na\nb\nC\nd\n");
  });
  test("a mismatch names the line, what was expected and what is there", () => {
    const h = hunks("--- a/f\n+++ b/f\n@@ -2,2 +2,2 @@\n b\n-c\n+C\n");
    assert.throws(
      () => applyHunks("a\nb\nX\nd\n", h),
      (e: Error & { index?: number }) =>
        e.index === 0 && /expected "c" but the file has "X"|not found/.test(e.message),
    );
  });
  test("creation, deletion and the missing final newline", () => {
    assert.equal(applyHunks("", hunks("--- /dev/null\n+++ b/f\n@@ -0,0 +1,2 @@\n+x\n+y\n")), "x\ny\n");
    assert.equal(
      applyHunks("", hunks("--- /dev/null\n+++ b/f\n@@ -0,0 +1 @@\n+x\n\\ No newline at end of file\n")),
      "x",
    );
    assert.equal(applyHunks("gone\n", hunks("--- a/f\n+++ /dev/null\n@@ -1 +0,0 @@\n-gone\n")), "");
    assert.equal(
      applyHunks(
        "a\nb",
        hunks("--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n"),
      ),
      "a\nc\n",
    );
  });
  test("several hunks, the second shifted by the first", () => {
    const text = `${Array.from({ length: 20 }, (_, i) => `l${i + 1}`).join("\n")}\n`;
    const h = hunks(
      "--- a/f\n+++ b/f\n@@ -2,1 +2,3 @@\n-l2\n+L2\n+extra\n+extra2\n@@ -15,1 +17,1 @@\n-l15\n+L15\n",
    );
    const out = applyHunks(text, h).split("\n");
    assert.equal(out[1], "L2");
    assert.equal(out[16], "L15");
  });
});

describe("export and listing helpers", () => {
  test("symlinks are created only when they stay inside the export", () => {
    assert.equal(linkStaysInside("a/link", "../b.txt"), true);
    assert.equal(linkStaysInside("a/link", "c/d"), true);
    assert.equal(linkStaysInside("link", "/etc"), false);
    assert.equal(linkStaysInside("link", "../outside"), false);
    assert.equal(linkStaysInside("a/link", "../../x"), false);
    assert.equal(linkStaysInside("a/link", ""), false);
  });
  test("find -printf records, NUL separated (names with newlines survive)", () => {
    const rec = (y: string, m: string, s: string, t: string, p: string, l: string) =>
      `${y}\0${m}\0${s}\0${t}\0${p}\0${l}\0`;
    const buf = Buffer.from(
      rec("f", "644", "12", "1700000000.5", "a\nb.txt", "") +
        rec("l", "777", "4", "1700000000", "ln", "/etc"),
    );
    const e = parseFindEntries(buf, ".");
    assert.deepEqual(
      e.map((x) => [x.path, x.type, x.mode, x.size, x.link_target]),
      [
        ["a\nb.txt", "file", "0644", 12, null],
        ["ln", "symlink", "0777", 4, "/etc"],
      ],
    );
    assert.equal(e[0]!.mtime, "2023-11-14T22:13:20.500Z");
  });
  test("edit counts occurrences; modes refuse set-id bits; text detection", () => {
    assert.equal(occurrences("a.a.a", "a"), 3);
    assert.equal(occurrences("aaaa", "aa"), 2);
    assert.equal(checkMode("0755"), "755");
    assert.equal(checkMode("644"), "644");
    assert.throws(() => checkMode("4755"), /set-uid/);
    assert.throws(() => checkMode("rwx"), /octal/);
    assert.equal(isText(Buffer.from("héllo\n")), true);
    assert.equal(isText(Buffer.from([0x68, 0x00])), false);
    assert.equal(isText(Buffer.from([0xff, 0xfe])), false);
  });
});
