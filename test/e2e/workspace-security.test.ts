import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { test } from "node:test";
import {
  runCli,
  runCliJson,
  type Skippable,
  type TestState,
  withGvisorState,
  withHostDir,
} from "../helpers.js";
import { makeTar, type TarEntry } from "../tar-fixtures.js";

/**
 * Hostile seeds and ids. Archives are refused before anything is written, naming the
 * entry; directory seeds carry symlinks as links the guest cannot follow to host files;
 * ids are validated before they touch a path.
 */

type Ctx = TestState & { host: string };

/** A fresh state dir on the gVisor engine, and a scratch dir for host-side files. */
function withState(t: Skippable, fn: (c: Ctx) => Promise<void>): Promise<void> {
  return withGvisorState(t, (c) => withHostDir("pyro-sec-host-", (host) => fn({ ...c, host })));
}

async function sha(path: string): Promise<string> {
  return createHash("sha256")
    .update(await readFile(path))
    .digest("hex");
}

async function workspaceDirs(stateDir: string): Promise<string[]> {
  return readdir(join(stateDir, "workspaces")).catch(() => []);
}

test("hostile archives are refused before anything is written, naming the entry", async (t) => {
  await withState(t, async ({ env, stateDir, host }) => {
    const tag = basename(host);
    const passwdBefore = await sha("/etc/passwd");
    const outside = join(host, "outside");
    await mkdir(outside);
    const absTarget = `/tmp/${tag}-abs/x`;
    const cases: { name: string; entries: TarEntry[]; entry: string; why: RegExp; gzip?: boolean }[] = [
      {
        name: "dotdot",
        entries: [
          { name: "ok.txt", body: "ok" },
          { name: `../${tag}-evil`, body: "evil" },
        ],
        entry: `../${tag}-evil`,
        why: /escapes/,
      },
      {
        name: "deep-dotdot",
        entries: [{ name: `a/../../${tag}-evil2`, body: "evil" }],
        entry: `a/../../${tag}-evil2`,
        why: /escapes/,
        gzip: true,
      },
      {
        name: "absolute",
        entries: [{ name: absTarget, body: "evil" }],
        entry: absTarget,
        why: /absolute path/,
      },
      {
        name: "symlink-abs",
        entries: [
          { name: "passwd", type: "symlink", linkname: "/etc/passwd" },
          { name: "passwd", body: "root::0:0::/:/bin/sh\n" },
        ],
        entry: "passwd",
        why: /symlink to an absolute path/,
      },
      {
        name: "symlink-rel",
        entries: [
          { name: "out", type: "symlink", linkname: "../../outside" },
          { name: "out/x", body: "evil" },
        ],
        entry: "out",
        why: /symlink pointing outside/,
      },
      {
        name: "hardlink",
        entries: [{ name: "pw", type: "link", linkname: "/etc/passwd" }],
        entry: "pw",
        why: /hardlink to a path outside/,
      },
      {
        name: "chardev",
        entries: [
          { name: "ok.txt", body: "ok" },
          { name: "null", type: "character-device", devmajor: 1, devminor: 3 },
        ],
        entry: "null",
        why: /device file/,
      },
      {
        name: "symlink-chain",
        entries: [
          { name: "x", type: "directory" },
          { name: "x/up", type: "symlink", linkname: ".." },
          { name: "x/up2", type: "symlink", linkname: "up/.." },
          { name: "stolen", type: "link", linkname: "x/up2/secret" },
        ],
        entry: "x/up2",
        why: /outside the destination through other symlinks/,
      },
    ];
    const results = await Promise.all(
      cases.map(async (c) => {
        const file = await makeTar(join(host, `${c.name}${c.gzip ? ".tar.gz" : ".tar"}`), c.entries, c.gzip);
        return { c, r: await runCli(["workspace", "create", "debian:12", "--seed-path", file], { env }) };
      }),
    );
    for (const { c, r } of results) {
      assert.notEqual(r.code, 0, `${c.name} was accepted: ${r.stdout}`);
      assert.equal(r.stdout, "", c.name);
      assert.ok(
        r.stderr.includes(`entry ${JSON.stringify(c.entry)}`),
        `${c.name}: error does not name the entry: ${r.stderr}`,
      );
      assert.match(r.stderr, c.why, c.name);
      assert.match(r.stderr, /nothing was written/, c.name);
    }
    const json = await runCliJson<{ error: { code: string } }>(
      ["workspace", "create", "debian:12", "--seed-path", join(host, "hardlink.tar")],
      { env },
    );
    assert.equal(json.json.error.code, "seed_rejected");
    assert.deepEqual(await workspaceDirs(stateDir), [], "a refused create leaves no workspace directory");
    assert.ok(
      !existsSync(join(host, "..", `${tag}-evil`)) && !existsSync(join(stateDir, "..", `${tag}-evil`)),
    );
    assert.ok(
      !existsSync(join(stateDir, `${tag}-evil`)) && !existsSync(join(stateDir, "workspaces", `${tag}-evil`)),
    );
    assert.ok(!existsSync(`/tmp/${tag}-abs`), "an absolute entry was written");
    assert.deepEqual(await readdir(outside), []);
    assert.equal(await sha("/etc/passwd"), passwdBefore);
  });
});

test("sync push refuses hostile archives into a running workspace and writes nothing", async (t) => {
  await withState(t, async ({ env, host }) => {
    const created = await runCli(["workspace", "create", "debian:12", "--id-only"], { env });
    assert.equal(created.code, 0, created.stderr);
    const id = created.stdout.trim();
    try {
      await runCli(["workspace", "exec", id, "--", "sh", "-c", "echo keep > keep.txt"], { env });
      const evil = await makeTar(
        join(host, "evil.tgz"),
        [
          { name: "fine.txt", body: "fine" },
          { name: "../../etc/evil", body: "x" },
        ],
        true,
      );
      const link = await makeTar(join(host, "link.tar"), [
        { name: "l", type: "symlink", linkname: "/etc" },
        { name: "l/evil", body: "x" },
      ]);
      for (const src of [evil, link]) {
        const r = await runCli(["workspace", "sync", "push", id, src], { env });
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /entry "(\.\.\/\.\.\/etc\/evil|l)"/);
      }
      const ls = await runCli(
        [
          "workspace",
          "exec",
          id,
          "--json",
          "--",
          "sh",
          "-c",
          "ls -A /workspace; ls /etc/evil 2>&1 | head -1",
        ],
        { env },
      );
      const out = (JSON.parse(ls.stdout) as { stdout: string }).stdout;
      assert.match(out, /^keep\.txt\n/, "nothing from the refused archives reached /workspace");
      assert.match(out, /No such file/);
      const st = await runCliJson<{ command_count: number }>(["workspace", "status", id], { env });
      assert.equal(st.json.command_count, 2, "refused pushes run no commands");
    } finally {
      await runCli(["workspace", "delete", id], { env });
    }
  });
});

test("a seed directory's symlinks to host files are copied as links the guest cannot follow", async (t) => {
  await withState(t, async ({ env, host }) => {
    const secret = join(host, "host-secret.txt");
    await writeFile(secret, "HOST SECRET 1234\n");
    const seed = join(host, "seed");
    await mkdir(seed);
    await writeFile(join(seed, "ok.txt"), "ok\n");
    await symlink(secret, join(seed, "abs-link"));
    await symlink("../host-secret.txt", join(seed, "rel-link"));
    await symlink("/etc/passwd", join(seed, "passwd-link"));
    const created = await runCliJson<{
      workspace_id: string;
      workspace_seed: { entry_count: number; bytes_written: number };
    }>(["workspace", "create", "debian:12", "--seed-path", seed], { env });
    assert.equal(created.code, 0, created.stderr);
    const id = created.json.workspace_id;
    try {
      assert.deepEqual(created.json.workspace_seed.entry_count, 4);
      assert.deepEqual(
        created.json.workspace_seed.bytes_written,
        3,
        "symlink targets are not counted as content",
      );
      const script = [
        'for l in abs-link rel-link passwd-link; do test -L $l && echo "$l is a link to $(readlink $l)"; done',
        "cat abs-link rel-link 2>/dev/null || echo UNREADABLE",
        "grep -c . passwd-link",
      ].join("; ");
      const r = await runCli(["workspace", "exec", id, "--json", "--", "sh", "-c", script], { env });
      const out = (JSON.parse(r.stdout) as { stdout: string }).stdout;
      assert.match(out, new RegExp(`abs-link is a link to ${secret}`));
      assert.match(out, /rel-link is a link to \.\.\/host-secret\.txt/);
      assert.match(out, /passwd-link is a link to \/etc\/passwd/);
      assert.match(out, /UNREADABLE/);
      assert.doesNotMatch(out, /HOST SECRET/, "the guest read a host file through a seeded symlink");
      // passwd-link resolves inside the guest, to the guest's own /etc/passwd.
      const both = await runCli(
        ["workspace", "exec", id, "--", "sh", "-c", "cmp passwd-link /etc/passwd && echo SAME"],
        { env },
      );
      assert.equal(both.stdout, "SAME\n", both.stderr);
    } finally {
      await runCli(["workspace", "delete", id], { env });
    }
  });
});

test("bad seed paths and ids: clear errors, exit 2 for malformed input, non-zero for unknown ids", async (t) => {
  await withState(t, async ({ env, stateDir, host }) => {
    await writeFile(join(host, "seed.zip"), "PK\u0003\u0004 not really a zip");
    await writeFile(join(host, "junk.tar"), "definitely not a tar archive\n".repeat(30));
    const long = "w".repeat(10_000);
    const cases: [string[], number, RegExp][] = [
      [
        ["workspace", "create", "debian:12", "--seed-path", join(host, "nope")],
        2,
        /seed path does not exist/,
      ],
      [
        ["workspace", "create", "debian:12", "--seed-path", join(host, "seed.zip")],
        2,
        /seed\.zip is a file of an unsupported type/,
      ],
      [["workspace", "create", "debian:12", "--seed-path", join(host, "junk.tar")], 1, /not a readable tar/],
      [["workspace", "create", "debian:99"], 2, /unknown environment "debian:99"/],
      [["workspace", "status", "../x"], 2, /malformed workspace id "\.\.\/x"/],
      [["workspace", "status", ""], 2, /malformed workspace id ""/],
      [["workspace", "status", long], 2, /malformed workspace id "w{60}…"/],
      [["workspace", "exec", "../../etc", "--", "true"], 2, /malformed workspace id/],
      [["workspace", "logs", "ws_/../../x"], 2, /malformed workspace id/],
      [["workspace", "delete", "ws_0123456789ABCDEF"], 2, /malformed workspace id/],
      [["workspace", "sync", "push", "..", host], 2, /malformed workspace id/],
      [["workspace", "status", "ws_0123456789abcdef"], 1, /no workspace with id ws_0123456789abcdef/],
      [["workspace", "exec", "ws_0123456789abcdef", "--", "true"], 1, /no workspace with id/],
      [["workspace", "logs", "ws_0123456789abcdef"], 1, /no workspace with id/],
      [["workspace", "delete", "ws_0123456789abcdef"], 1, /no workspace with id/],
      [["workspace", "sync", "push", "ws_0123456789abcdef", host], 1, /no workspace with id/],
      [["workspace", "exec", "ws_0123456789abcdef"], 2, /missing command/],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args, { env })));
    results.forEach((r, i) => {
      const [args, code, re] = cases[i]!;
      const what = args.map((a) => (a.length > 40 ? `${a.slice(0, 10)}…` : a)).join(" ");
      assert.equal(r.code, code, `${what}: ${r.stderr}`);
      assert.match(r.stderr, re, what);
      assert.ok(r.stderr.length < 600, `${what}: error is not short: ${r.stderr.length} chars`);
      assert.doesNotMatch(r.stderr, /internal error|at .*\.js:\d+/, `${what}: stack trace`);
    });
    assert.deepEqual(await workspaceDirs(stateDir), []);
  });
});
