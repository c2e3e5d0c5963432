import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import {
  lstat,
  mkdir,
  readdir,
  readFile,
  realpath,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { PyroError } from "../../src/core/errors.js";
import { resolveExportTarget, serverExportPolicy } from "../../src/project/export-policy.js";
import { exportNames, recordIntent, recoverExports } from "../../src/workspaces/export-journal.js";
import { tempDir } from "../helpers.js";

function rejects(code: string, re: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof PyroError, `expected a PyroError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(`${e.message} | ${e.hint ?? ""}`, re);
    return true;
  };
}

describe("export policy (what a model may export to)", () => {
  let root: string;
  before(async () => {
    root = await realpath(await tempDir("pyro-export-policy-"));
    await mkdir(join(root, ".git", "hooks"), { recursive: true });
    await writeFile(join(root, "src.txt"), "tracked\n");
  });
  after(() => rm(root, { recursive: true, force: true }));
  const policy = (o: { allowOverwrite?: boolean; exportDir?: string } = {}) =>
    serverExportPolicy({ roots: [root], cwd: root, ...o });

  test("the default area is pyro-exports/ under the start directory, made 0700 with a .gitignore", async () => {
    const p = policy();
    assert.equal(p.area, join(root, "pyro-exports"));
    const r = await resolveExportTarget("result", false, p);
    assert.equal(r.target, join(root, "pyro-exports", "result"));
    assert.equal((await stat(join(root, "pyro-exports"))).mode & 0o777, 0o700);
    assert.match(await readFile(join(root, "pyro-exports", ".gitignore"), "utf8"), /^\*$/m);
  });

  test("outside the area, the area itself, dot paths and allowed roots are refused", async () => {
    const p = policy();
    for (const [out, re] of [
      [join(root, ".git", "hooks", "pre-commit"), /outside this server's export area .*--export-dir/],
      [join(root, "src.txt"), /outside this server's export area/],
      [root, /outside this server's export area/],
      [".", /the export area itself/],
      [join(root, "pyro-exports"), /the export area itself/],
      ["../src.txt", /outside this server's export area/],
      [".git/hooks/pre-commit", /goes through "\.git"/],
      ["a/.hidden/b", /goes through "\.hidden"/],
      [".bashrc", /goes through "\.bashrc"/],
      ["/etc/passwd", /outside this server's export area/],
    ] as const)
      await assert.rejects(resolveExportTarget(out, false, p), rejects("host_path_denied", re), out);
    // With the area at the start directory itself, the root is still never replaced.
    const wide = policy({ exportDir: ".", allowOverwrite: true });
    await assert.rejects(
      resolveExportTarget(root, true, wide),
      rejects("host_path_denied", /export area itself/),
    );
    const inner = serverExportPolicy({
      roots: [join(root, "proj")],
      cwd: root,
      exportDir: ".",
      allowOverwrite: true,
    });
    await mkdir(join(root, "proj"), { recursive: true });
    await assert.rejects(
      resolveExportTarget("proj", true, inner),
      rejects("host_path_denied", /a directory this server reads from/),
    );
  });

  test("existing paths and force need --allow-export-overwrite", async () => {
    const p = policy();
    await mkdir(join(root, "pyro-exports", "taken"), { recursive: true });
    await assert.rejects(
      resolveExportTarget("taken", false, p),
      rejects("host_path_denied", /already exists.*--allow-export-overwrite/),
    );
    await assert.rejects(
      resolveExportTarget("new", true, p),
      rejects("host_path_denied", /force is refused.*--allow-export-overwrite/),
    );
    const ok = await resolveExportTarget("taken", true, policy({ allowOverwrite: true }));
    assert.equal(ok.target, join(root, "pyro-exports", "taken"));
  });

  test("a default area that is a symlink (a repository could bring one) is refused", async () => {
    const other = await realpath(await tempDir("pyro-export-policy2-"));
    try {
      await symlink(join(root, ".git", "hooks"), join(other, "pyro-exports"));
      const p = serverExportPolicy({ roots: [other], cwd: other });
      await assert.rejects(
        resolveExportTarget("pre-commit", false, p),
        rejects("host_path_denied", /symlink/),
      );
      assert.equal(existsSync(join(root, ".git", "hooks", "pre-commit")), false);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  test("no area when started in / or over HTTP without --export-dir", async () => {
    for (const p of [
      serverExportPolicy({ roots: [], cwd: "/" }),
      serverExportPolicy({ roots: [root], cwd: root, http: true }),
    ]) {
      assert.equal(p.area, undefined);
      await assert.rejects(resolveExportTarget("x", false, p), rejects("host_path_denied", /no export area/));
    }
  });
});

describe("export intents (crash recovery)", () => {
  let dir: string;
  before(async () => {
    dir = await realpath(await tempDir("pyro-export-journal-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  /** A pid that has exited. */
  const deadPid = () => spawnSync("sh", ["-c", "echo $$"]).stdout.toString().trim();

  /** An intent as a killed process would have left it. */
  async function deadIntent(target: string) {
    const names = exportNames(target);
    await recordIntent(join(dir, "intents"), { target, ...names });
    const d = join(dir, "intents");
    for (const f of await readdir(d))
      if (f.startsWith(`${process.pid}-`))
        await rename(join(d, f), join(d, f.replace(/^\d+-\d+-/, `${deadPid()}-1-`)));
    return names;
  }

  test("old moved aside, new not landed: rolled back; staging removed", async () => {
    const target = join(dir, "out1");
    const n = await deadIntent(target);
    await mkdir(n.aside);
    await writeFile(join(n.aside, "f"), "old");
    await mkdir(n.staging);
    await writeFile(join(n.staging, "f"), "new, half");
    assert.deepEqual(await recoverExports(join(dir, "intents")), [target]);
    assert.equal(await readFile(join(target, "f"), "utf8"), "old");
    assert.equal(existsSync(n.aside) || existsSync(n.staging), false);
    assert.deepEqual(await readdir(join(dir, "intents")), []);
  });

  test("new landed, old still aside: rolled forward", async () => {
    const target = join(dir, "out2");
    const n = await deadIntent(target);
    await mkdir(n.aside);
    await writeFile(join(n.aside, "f"), "old");
    await mkdir(target);
    await writeFile(join(target, "f"), "new");
    await recoverExports(join(dir, "intents"));
    assert.equal(await readFile(join(target, "f"), "utf8"), "new");
    assert.equal(existsSync(n.aside), false);
  });

  test("a live writer's intent is left alone; a record naming other paths deletes nothing", async () => {
    const target = join(dir, "out3");
    const n = exportNames(target);
    const clear = await recordIntent(join(dir, "intents"), { target, ...n });
    await mkdir(n.staging);
    await recoverExports(join(dir, "intents"));
    assert.ok(existsSync(n.staging), "this process is alive: its staging stays");
    await clear();
    await rm(n.staging, { recursive: true });
    const victim = join(dir, "victim");
    await mkdir(victim);
    const bad = { target, staging: victim, tar: `${victim}.tar`, aside: victim };
    await writeFile(join(dir, "intents", `${deadPid()}-1-abc.json`), JSON.stringify(bad));
    await recoverExports(join(dir, "intents"));
    assert.ok((await lstat(victim)).isDirectory());
  });
});
