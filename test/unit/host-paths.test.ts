import assert from "node:assert/strict";
import { mkdir, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { PyroError } from "../../src/core/errors.js";
import {
  defaultMcpPolicy,
  type HostAccessPolicy,
  hostAccessPolicy,
  isUnder,
  resolveHostPath,
} from "../../src/core/host-paths.js";
import { serverHostPolicy } from "../../src/mcp/server.js";
import { tempDir } from "../helpers.js";

function rejects(code: string, re: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof PyroError, `expected a PyroError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(`${e.message} | ${e.hint ?? ""}`, re);
    return true;
  };
}

describe("host paths", () => {
  let base: string;
  let root: string;
  let policy: HostAccessPolicy;
  before(async () => {
    base = await realpath(await tempDir("pyro-unit-hostpaths-"));
    root = join(base, "allowed");
    await mkdir(join(root, "proj", "sub"), { recursive: true });
    await writeFile(join(root, "proj", "seed.tar"), "");
    await mkdir(join(base, "outside"));
    await symlink("/etc", join(root, "etc-link"));
    await symlink(join(root, "proj"), join(root, "proj-link"));
    await symlink(join(base, "outside"), join(root, "out-link"));
    await symlink(join(root, "proj"), join(base, "outside", "back-in"));
    policy = hostAccessPolicy([root]);
  });
  after(async () => {
    await rm(base, { recursive: true, force: true });
  });

  test("isUnder compares whole components", () => {
    assert.ok(isUnder("/a/b", "/a"));
    assert.ok(isUnder("/a", "/a"));
    assert.ok(!isUnder("/ab", "/a"));
    assert.ok(isUnder("/anything", "/"));
  });

  test("no policy (CLI, SDK): relative paths resolve against the caller's directory, anything goes", async () => {
    assert.equal(await resolveHostPath("x/y", "seed_path", { cwd: "/work" }), "/work/x/y");
    assert.equal(await resolveHostPath("/etc", "seed_path"), "/etc");
  });

  test("a policy accepts paths under its roots, symlinks resolved", async () => {
    assert.equal(
      await resolveHostPath(join(root, "proj"), "seed_path", { hostAccess: policy }),
      join(root, "proj"),
    );
    assert.equal(await resolveHostPath(root, "seed_path", { hostAccess: policy }), root);
    assert.equal(
      await resolveHostPath(join(root, "proj-link"), "seed_path", { hostAccess: policy }),
      join(root, "proj"),
    );
    // A link from outside that points back in is judged by where it lands.
    assert.equal(
      await resolveHostPath(join(base, "outside", "back-in", "sub"), "source_path", { hostAccess: policy }),
      join(root, "proj", "sub"),
    );
  });

  test("a policy refuses relative paths, naming the field", async () => {
    await assert.rejects(
      resolveHostPath("proj", "seed_path", { hostAccess: policy, cwd: root }),
      rejects("invalid_argument", /seed_path "proj" is a relative path; use an absolute path/),
    );
    await assert.rejects(
      resolveHostPath("./proj", "source_path", { hostAccess: policy }),
      rejects("invalid_argument", /source_path .* use an absolute path/),
    );
  });

  test("a policy refuses paths outside its roots, symlink and .. escapes included, naming roots and the fix", async () => {
    const ctx = { hostAccess: policy };
    const outside = new RegExp(`outside the host paths this server may use: ${root}.*--allow-path`);
    await assert.rejects(resolveHostPath("/etc", "seed_path", ctx), rejects("host_path_denied", outside));
    await assert.rejects(
      resolveHostPath(join(root, "etc-link"), "seed_path", ctx),
      rejects("host_path_denied", /etc-link \(it resolves to \/etc\) is outside/),
    );
    await assert.rejects(
      resolveHostPath(join(root, "out-link"), "seed_path", ctx),
      rejects("host_path_denied", /resolves to .*outside\) is outside/),
    );
    await assert.rejects(
      resolveHostPath(`${root}/proj/../../outside`, "seed_path", ctx),
      rejects("host_path_denied", outside),
    );
    // `..` after a symlink goes up from where the link lands (/), not lexically.
    await assert.rejects(
      resolveHostPath(`${root}/etc-link/../tmp`, "seed_path", ctx),
      rejects("host_path_denied", /resolves to \/tmp/),
    );
    // A sibling whose name starts like the root is not under it.
    await mkdir(`${root}2`, { recursive: true });
    await assert.rejects(resolveHostPath(`${root}2`, "seed_path", ctx), rejects("host_path_denied", outside));
    await assert.rejects(
      resolveHostPath("/a\0b", "seed_path", ctx),
      rejects("invalid_argument", /seed_path contains a NUL byte/),
    );
  });

  test("paths that do not exist: refused for reading, resolved through their parent for writing", async () => {
    const ctx = { hostAccess: policy };
    await assert.rejects(
      resolveHostPath(join(root, "nope"), "seed_path", ctx),
      rejects("invalid_argument", /seed_path does not exist/),
    );
    // Outside the roots, whether a path exists is none of the caller's business.
    await assert.rejects(
      resolveHostPath("/etc/no-such-file", "seed_path", ctx),
      rejects("host_path_denied", /outside the host paths/),
    );
    assert.equal(
      await resolveHostPath(join(root, "proj-link", "new", "file.tar"), "dest", ctx, { mustExist: false }),
      join(root, "proj", "new", "file.tar"),
    );
    await assert.rejects(
      resolveHostPath(join(root, "etc-link", "new"), "dest", ctx, { mustExist: false }),
      rejects("host_path_denied", /resolves to \/etc\/new/),
    );
    await assert.rejects(
      resolveHostPath(`${root}/new/../../x`, "dest", ctx, { mustExist: false }),
      rejects("invalid_argument", /goes through \.\./),
    );
  });

  test("policies: operator-named roots must exist; the default is the start directory, never /", async () => {
    assert.throws(
      () => hostAccessPolicy([join(base, "missing")]),
      rejects("invalid_argument", /allowed path .*missing" does not exist.*--allow-path/),
    );
    assert.throws(
      () => hostAccessPolicy([join(root, "proj", "seed.tar")]),
      rejects("invalid_argument", /is not a directory/),
    );
    assert.deepEqual(hostAccessPolicy([join(root, "proj-link"), join(root, "proj")]).roots, [
      join(root, "proj"),
    ]);
    assert.deepEqual(defaultMcpPolicy(root).roots, [root]);
    const slash = defaultMcpPolicy("/");
    assert.deepEqual(slash.roots, []);
    await assert.rejects(
      resolveHostPath("/etc", "seed_path", { hostAccess: slash }),
      rejects("host_path_denied", /started in \/ and no --allow-path was given/),
    );
    assert.deepEqual(serverHostPolicy({ allowPaths: [root, "/"] }).roots, [root, "/"]);
    assert.deepEqual(serverHostPolicy({}).roots, defaultMcpPolicy().roots);
  });
});
