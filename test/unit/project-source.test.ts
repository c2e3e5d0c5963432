import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import * as tar from "tar";
import { projectFiles, projectSeeder, resolveProject } from "../../src/project/source.js";
import { tempDir } from "../helpers.js";

/** The project a server seeds from, and which files a seed carries (git only, no engine). */

const git = (cwd: string, ...args: string[]) =>
  execFileSync("git", args, {
    cwd,
    encoding: "utf8",
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: "t",
      GIT_AUTHOR_EMAIL: "t@t",
      GIT_COMMITTER_NAME: "t",
      GIT_COMMITTER_EMAIL: "t@t",
    },
  }).trim();

test("resolveProject: the checkout a directory is in, nothing outside one, errors for explicit bad options", async () => {
  const dir = await tempDir("pyro-project-unit-");
  try {
    const cache = join(dir, "cache");
    assert.equal(
      await resolveProject({}, { cwd: dir, cacheDir: cache }),
      undefined,
      "not a checkout: no project",
    );
    const repo = join(dir, "repo");
    await mkdir(join(repo, "deep", "er"), { recursive: true });
    git(repo, "init", "-q", "-b", "trunk");
    const empty = await resolveProject({}, { cwd: join(repo, "deep", "er"), cacheDir: cache });
    assert.deepEqual(empty, {
      kind: "project_path",
      root: await realpath(repo),
      url: null,
      ref: "trunk",
      commit: null,
      includeUntracked: false,
    });
    await assert.rejects(
      resolveProject({ path: dir }, { cwd: "/", cacheDir: cache }),
      /is not inside a git checkout/,
    );
    await assert.rejects(
      resolveProject({ path: join(dir, "nope") }, { cwd: "/", cacheDir: cache }),
      /does not exist/,
    );
    await assert.rejects(
      resolveProject({ repoUrl: `file://${join(dir, "missing.git")}` }, { cwd: dir, cacheDir: cache }),
      /cannot clone --repo-url/,
    );
    await assert.rejects(
      resolveProject({ path: repo, repoUrl: "file:///x" }, { cwd: dir, cacheDir: cache }),
      /exclusive/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("projectFiles / snapshot: tracked files from the working tree; deleted, ignored and untracked ones left out", async () => {
  const dir = await tempDir("pyro-project-unit-");
  try {
    const repo = join(dir, "repo");
    await mkdir(join(repo, "src"), { recursive: true });
    git(repo, "init", "-q", "-b", "main");
    await writeFile(join(repo, "keep.txt"), "v1\n");
    await writeFile(join(repo, "gone.txt"), "x\n");
    await writeFile(join(repo, "src", "a b.c"), "int x;\n");
    await writeFile(join(repo, ".gitignore"), "*.log\n");
    await symlink("keep.txt", join(repo, "link"));
    git(repo, "add", "-A");
    git(repo, "commit", "-qm", "c");
    await rm(join(repo, "gone.txt"));
    await writeFile(join(repo, "keep.txt"), "v2\n");
    await writeFile(join(repo, "new.txt"), "n\n");
    await writeFile(join(repo, "debug.log"), "l\n");
    const p = (await resolveProject({}, { cwd: repo, cacheDir: join(dir, "c") }))!;
    assert.deepEqual(await projectFiles(p), [".gitignore", "keep.txt", "link", "src/a b.c"]);
    assert.deepEqual(await projectFiles({ ...p, includeUntracked: true }), [
      ".gitignore",
      "keep.txt",
      "link",
      "new.txt",
      "src/a b.c",
    ]);

    const snap = await projectSeeder(p, join(dir, "tmp")).snapshot();
    const entries: Record<string, string> = {};
    await tar.t({
      file: snap.source.path,
      onReadEntry: (e) => {
        entries[e.path] = e.type === "SymbolicLink" ? `-> ${e.linkpath}` : e.type;
      },
    });
    assert.deepEqual(entries, {
      ".gitignore": "File",
      "keep.txt": "File",
      link: "-> keep.txt",
      "src/a b.c": "File",
    });
    assert.equal(snap.fileCount, 4);
    await snap.cleanup();
    assert.equal(execFileSync("ls", ["-A", join(dir, "tmp")], { encoding: "utf8" }), "", "snapshot removed");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
