import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { IgnoreRules } from "../../src/util/gitignore.js";

/**
 * The gitignore matcher behind workspace diff / summary / changed-only export
 * (src/util/gitignore.ts): each rule of gitignore(5) by example, then the same verdicts as
 * git's own `git check-ignore` over a tree with nested .gitignore files.
 */

const rules = (text: string, exclude: string[] = []) => new IgnoreRules([{ dir: "", text }], exclude);

test("a name without a slash matches at any depth; a trailing slash only directories", () => {
  const r = rules("__pycache__/\n*.pyc\n");
  assert.equal(r.ignores("__pycache__", true), true);
  assert.equal(r.ignores("pkg/__pycache__/mod.cpython-311.pyc", false), true);
  assert.equal(r.ignores("a/b/c.pyc", false), true);
  assert.equal(r.ignores("__pycache__", false), false, "a file named __pycache__ is not a directory");
  assert.equal(r.ignores("src/app.py", false), false);
});

test("a slash at the start or middle anchors the pattern to its .gitignore's directory", () => {
  const r = rules("/build\ndoc/*.txt\n");
  assert.equal(r.ignores("build", true), true);
  assert.equal(r.ignores("build/out.o", false), true);
  assert.equal(r.ignores("src/build", true), false);
  assert.equal(r.ignores("doc/a.txt", false), true);
  assert.equal(r.ignores("doc/sub/a.txt", false), false, "* never crosses a /");
  assert.equal(r.ignores("x/doc/a.txt", false), false);
});

test("** in its three places, and ? and bracket expressions", () => {
  const r = rules("**/logs\na/**/z\nout/**\nf?le.[ch]\n[!a-m]*.tmp\n");
  assert.equal(r.ignores("logs", true), true);
  assert.equal(r.ignores("x/y/logs", false), true);
  assert.equal(r.ignores("a/z", false), true);
  assert.equal(r.ignores("a/b/c/z", false), true);
  assert.equal(r.ignores("out/deep/file", false), true);
  assert.equal(r.ignores("out", true), false, "out/** matches what is inside, not out itself");
  assert.equal(r.ignores("file.c", false), true);
  assert.equal(r.ignores("fxle.h", false), true);
  assert.equal(r.ignores("fle.c", false), false);
  assert.equal(r.ignores("file.o", false), false);
  assert.equal(r.ignores("zed.tmp", false), true);
  assert.equal(r.ignores("bee.tmp", false), false);
});

test("negation re-includes, except below an ignored directory; the last match wins", () => {
  const r = rules("*.log\n!keep.log\nvendor/\n!vendor/important.txt\n");
  assert.equal(r.ignores("debug.log", false), true);
  assert.equal(r.ignores("keep.log", false), false);
  assert.equal(r.ignores("sub/keep.log", false), false);
  assert.equal(r.ignores("vendor/important.txt", false), true, "git does not look inside vendor/");
});

test("comments, blank lines, escapes and trailing spaces", () => {
  const r = rules("# a comment\n\n\\#hash\n\\!bang\nspace\\ \ntrail   \r\n");
  assert.equal(r.ignores("# a comment", false), false);
  assert.equal(r.ignores("#hash", false), true);
  assert.equal(r.ignores("!bang", false), true);
  assert.equal(r.ignores("space ", false), true);
  assert.equal(r.ignores("trail", false), true, "unescaped trailing spaces (and a CR) are dropped");
  assert.equal(r.empty, false);
  assert.equal(rules("# only comments\n\n").empty, true);
});

test("a deeper .gitignore overrides its parent, and exclude patterns override every file", () => {
  const r = new IgnoreRules(
    [
      { dir: "pkg", text: "!special.tmp\n/local\n" },
      { dir: "", text: "*.tmp\n" },
    ],
    ["*.md", "!README.md"],
  );
  assert.equal(r.ignores("a.tmp", false), true);
  assert.equal(r.ignores("pkg/special.tmp", false), false);
  assert.equal(r.ignores("special.tmp", false), true, "pkg's rule applies only below pkg/");
  assert.equal(r.ignores("pkg/local", true), true);
  assert.equal(r.ignores("pkg/sub/local", true), false, "anchored to pkg/");
  assert.equal(r.ignores("notes.md", false), true);
  assert.equal(r.ignores("README.md", false), false);
});

test("the same verdicts as git check-ignore over a tree with nested .gitignore files", async (t) => {
  const git = spawnSync("git", ["--version"]);
  if (git.status !== 0) {
    t.skip("skipped: no git on this host to compare with");
    return;
  }
  const files: Record<string, string> = {
    ".gitignore":
      "__pycache__/\n*.py[cod]\n/dist\nbuild/\n!build/keep\n**/tmp/**\nlogs/*.log\n!logs/important.log\n*.swp\n[Dd]ata?/\n",
    "pkg/.gitignore": "!*.pyc\nlocal.cfg\n/generated\n",
    "pkg/sub/.gitignore": "*.txt\n!notes.txt\n",
  };
  const paths: [string, boolean][] = [
    ["__pycache__", true],
    ["__pycache__/a.cpython-311.pyc", false],
    ["src/__pycache__/b.pyc", false],
    ["main.py", false],
    ["main.pyc", false],
    ["main.pyo", false],
    ["dist", true],
    ["dist/x.whl", false],
    ["src/dist", true],
    ["build", true],
    ["build/keep", false],
    ["src/build/keep", false],
    ["a/tmp/b", false],
    ["tmp/x/y", false],
    ["tmp", true],
    ["logs/a.log", false],
    ["logs/important.log", false],
    ["logs/deep/a.log", false],
    [".x.swp", false],
    ["Data1", true],
    ["data2/f", false],
    ["datax", false],
    ["pkg/mod.pyc", false],
    ["pkg/local.cfg", false],
    ["pkg/deep/local.cfg", false],
    ["local.cfg", false],
    ["pkg/generated", true],
    ["pkg/generated/x.py", false],
    ["pkg/sub/generated", true],
    ["pkg/sub/a.txt", false],
    ["pkg/sub/notes.txt", false],
    ["pkg/a.txt", false],
  ];
  const dir = await mkdtemp(join(tmpdir(), "pyro-gitignore-"));
  try {
    spawnSync("git", ["init", "-q", dir]);
    for (const [p, text] of Object.entries(files)) {
      await mkdir(dirname(join(dir, p)), { recursive: true });
      await writeFile(join(dir, p), text);
    }
    for (const [p, isDir] of paths) {
      if (isDir) await mkdir(join(dir, p), { recursive: true });
      else {
        await mkdir(dirname(join(dir, p)), { recursive: true });
        await writeFile(join(dir, p), "x");
      }
    }
    const r = spawnSync("git", ["-C", dir, "check-ignore", "--stdin", "-z", "--non-matching", "-v"], {
      input: paths.map(([p]) => p).join("\0"),
      encoding: "utf8",
    });
    // -v -z --non-matching: source, line, pattern, path per entry; an empty source: not ignored
    // (a negation that matched is reported with its "!" pattern: not ignored either).
    const fields = r.stdout.split("\0");
    const gitSays = new Map<string, boolean>();
    for (let i = 0; i + 3 < fields.length; i += 4) {
      const pattern = fields[i + 2]!;
      gitSays.set(fields[i + 3]!.replace(/\/$/, ""), fields[i] !== "" && !pattern.startsWith("!"));
    }
    const ours = new IgnoreRules(
      Object.entries(files).map(([p, text]) => ({ dir: dirname(p) === "." ? "" : dirname(p), text })),
    );
    const differ = paths
      .filter(([p, isDir]) => gitSays.get(p) !== ours.ignores(p, isDir))
      .map(([p]) => `${p}: git ${gitSays.get(p)}, ours ${!gitSays.get(p)}`);
    assert.equal(gitSays.size, paths.length, r.stderr);
    assert.deepEqual(differ, []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
