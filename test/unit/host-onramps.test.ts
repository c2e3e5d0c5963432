import assert from "node:assert/strict";
import {
  chmod,
  copyFile,
  lstat,
  mkdir,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { VERSION } from "../../src/core/version.js";
import { CLIENT_SPECS, CLIENTS, type ClientName, type Launch, type Where } from "../../src/host/clients.js";
import {
  checkLaunch,
  connect,
  doctor,
  mergedConfig,
  pyroLauncher,
  repair,
  serverLaunch,
} from "../../src/host/onramps.js";
import { readTomlServer, writeTomlServer } from "../../src/host/toml.js";
import { codexTable, SHAPES } from "../fixtures/host-configs/shapes.js";
import { REPO, tempDir } from "../helpers.js";

/**
 * `pyro host connect` against each client's documented config shape, in a temporary HOME
 * (never the real ~/.claude.json): the documented example file gets pyro's entry, keeps
 * its own server, validates against the documented shape, is backed up, and a second run
 * changes nothing.
 */

const FIXTURES = join(REPO, "test", "fixtures", "host-configs");
const fixtureFile = (c: ClientName) => join(FIXTURES, c === "codex" ? "codex.toml" : `${c}.json`);
const OTHER: Record<ClientName, string> = {
  "claude-code": "shared-server",
  codex: "server-name",
  cursor: "server-name",
  vscode: "memory",
  opencode: "my-local-mcp-server",
};

/** A stand-in `pyro` that answers --version like the real one (doctor runs it). */
async function fakePyro(dir: string): Promise<Launch> {
  const script = join(dir, "fake-pyro", "main.js");
  await mkdir(dirname(script), { recursive: true });
  await writeFile(script, `process.stdout.write(${JSON.stringify(`${VERSION}\n`)});\n`);
  return { command: process.execPath, args: [script] };
}

async function sandbox(): Promise<{ where: Where; root: string; done: () => Promise<void> }> {
  const root = await tempDir("pyro-host-");
  const home = join(root, "home");
  const cwd = join(root, "project");
  await mkdir(home, { recursive: true });
  await mkdir(cwd, { recursive: true });
  return {
    root,
    where: { home, cwd, env: { HOME: home, PATH: process.env.PATH ?? "" }, platform: "linux" },
    done: () => rm(root, { recursive: true, force: true }),
  };
}

/** pyro's entry in a written config, read with the documented shape's rules. */
function entryIn(c: ClientName, text: string): Launch | undefined {
  if (c === "codex") return codexTable(text, "pyro");
  const doc = SHAPES[c].parse(JSON.parse(text)) as Record<string, Record<string, unknown>>;
  const spec = CLIENT_SPECS[c];
  if (spec.format !== "json") return undefined;
  return spec.launch(doc[spec.key]?.pyro);
}

const backups = async (path: string) =>
  (await readdir(dirname(path))).filter((f) => f.startsWith(`${path.split("/").pop()}.pyro-backup-`));

for (const name of CLIENTS) {
  test(`host connect ${name}: the documented file keeps its server, gets pyro, is backed up; again changes nothing`, async () => {
    const { where, root, done } = await sandbox();
    try {
      const c = CLIENT_SPECS[name];
      const launch = serverLaunch(await fakePyro(root), "workspace-core");
      for (const scope of ["user", "project"] as const) {
        const path = c.file(scope, where);
        assert.ok(path.startsWith(root), `${path} is inside the temporary HOME/project`);
        await mkdir(dirname(path), { recursive: true });
        await copyFile(fixtureFile(name), path);
        const original = await readFile(path, "utf8");
        // The fixture itself is what the docs describe.
        if (name === "codex") assert.ok(codexTable(original, OTHER[name]));
        else SHAPES[name].parse(JSON.parse(original));

        const first = await connect(c, scope, launch, where);
        assert.equal(first.changed, true);
        assert.equal(first.created, false);
        const written = await readFile(path, "utf8");
        assert.deepEqual(entryIn(name, written), launch, "pyro's entry, in the documented shape");
        // The documented example's own server is still there, untouched.
        if (name === "codex") {
          assert.ok(written.startsWith(original.trimEnd()), "the original TOML is kept byte for byte");
          assert.deepEqual(readTomlServer(written, OTHER[name]), {
            command: "npx",
            args: ["-y", "mcp-server"],
          });
        } else {
          const before = JSON.parse(original) as Record<string, Record<string, unknown>>;
          const after = JSON.parse(written) as Record<string, Record<string, unknown>>;
          const key = (c as { key: string }).key;
          assert.deepEqual(after[key]![OTHER[name]], before[key]![OTHER[name]]);
          for (const k of Object.keys(before)) if (k !== key) assert.deepEqual(after[k], before[k]);
        }
        const b = await backups(path);
        assert.equal(b.length, 1, "one backup");
        assert.equal(await readFile(join(dirname(path), b[0]!), "utf8"), original);

        const again = await connect(c, scope, launch, where);
        assert.equal(again.changed, false, "re-running changes nothing");
        assert.equal(await readFile(path, "utf8"), written);
        assert.equal((await backups(path)).length, 1, "and makes no new backup");
      }
    } finally {
      await done();
    }
  });
}

test("host connect into no file creates one in the client's shape (VS Code: servers + type stdio)", async () => {
  const { where, root, done } = await sandbox();
  try {
    const launch = serverLaunch(await fakePyro(root), "vm-run");
    for (const name of CLIENTS) {
      const c = CLIENT_SPECS[name];
      const r = await connect(c, c.defaultScope, launch, where);
      assert.equal(r.created, true);
      assert.equal(r.backup, null);
      assert.deepEqual(entryIn(name, await readFile(r.path, "utf8")), launch, name);
    }
    const vscode = JSON.parse(await readFile(join(where.cwd, ".vscode", "mcp.json"), "utf8"));
    assert.deepEqual(Object.keys(vscode), ["servers"]);
    assert.equal(vscode.servers.pyro.type, "stdio");
    const opencode = JSON.parse(
      await readFile(join(where.home, ".config", "opencode", "opencode.json"), "utf8"),
    );
    assert.equal(opencode.$schema, "https://opencode.ai/config.json");
    assert.deepEqual(opencode.mcp.pyro.command, [launch.command, ...launch.args]);
  } finally {
    await done();
  }
});

test("a file pyro cannot parse (JSON with comments) is refused and left alone", async () => {
  const { where, root, done } = await sandbox();
  try {
    const c = CLIENT_SPECS.vscode;
    const path = c.file("project", where);
    await mkdir(dirname(path), { recursive: true });
    const text = '{\n  // mine\n  "servers": {}\n}\n';
    await writeFile(path, text);
    await assert.rejects(
      connect(c, "project", serverLaunch(await fakePyro(root), "workspace-core"), where),
      (e: Error) => {
        assert.match(e.message, /not plain JSON/);
        assert.match((e as { hint?: string }).hint ?? "", /"servers":\{"pyro"/);
        return true;
      },
    );
    assert.equal(await readFile(path, "utf8"), text);
    assert.deepEqual(await backups(path), []);
  } finally {
    await done();
  }
});

test("Codex TOML: an existing pyro table is updated in place; its env and other tables survive", () => {
  const text = [
    'model = "o3"',
    "",
    "[mcp_servers.pyro]",
    'command = "/old/node"',
    "args = [",
    '  "/old/main.js",',
    '  "mcp", "serve",',
    "]",
    'env = { "PYRO_HOME" = "/srv/pyro" }',
    "",
    "[mcp_servers.pyro.env_extra]",
    'X = "1"',
    "",
    "[mcp_servers.other]",
    'command = "other"',
    "",
  ].join("\n");
  assert.deepEqual(readTomlServer(text, "pyro"), {
    command: "/old/node",
    args: ["/old/main.js", "mcp", "serve"],
  });
  const launch = { command: "/usr/bin/node", args: ["/new/main.js", "mcp", "serve", "--profile", "vm-run"] };
  const next = writeTomlServer(text, "pyro", launch);
  assert.deepEqual(readTomlServer(next, "pyro"), launch);
  assert.match(next, /env = \{ "PYRO_HOME" = "\/srv\/pyro" \}/);
  assert.match(next, /\[mcp_servers\.pyro\.env_extra\]\nX = "1"/);
  assert.deepEqual(readTomlServer(next, "other"), { command: "other", args: [] });
  assert.ok(next.startsWith('model = "o3"\n\n[mcp_servers.pyro]\ncommand = "/usr/bin/node"\nargs = ['));
  assert.equal(mergedConfig(CLIENT_SPECS.codex, "x", next, launch), next, "idempotent");
});

test("host doctor: ok for a working entry, stale once pyro moved; repair re-points it and keeps its flags", async () => {
  const { where, root, done } = await sandbox();
  try {
    const old = await fakePyro(join(root, "old"));
    const c = CLIENT_SPECS["claude-code"];
    await connect(c, "user", serverLaunch(old, "vm-run", ["--allow-path", "/srv/p"]), where);
    let report = await doctor(where, old, ["claude-code", "cursor"]);
    const entry = () => report.find((e) => e.client === "claude-code" && e.scope === "user")!;
    assert.equal(entry().status, "ok", entry().detail);
    assert.equal(entry().profile, "vm-run");
    assert.equal(report.find((e) => e.client === "cursor")!.status, "not_configured");
    assert.equal(entry().client_installed, false, "no `claude` on this PATH");
    const bin = join(root, "bin");
    await mkdir(bin);
    await writeFile(join(bin, "cursor"), "#!/bin/sh\n", { mode: 0o755 });
    const withCursor = await doctor({ ...where, env: { ...where.env, PATH: bin } }, old, ["cursor"]);
    assert.equal(withCursor[0]!.client_installed, true);

    await rm(join(root, "old"), { recursive: true });
    report = await doctor(where, old, ["claude-code"]);
    assert.equal(entry().status, "stale");
    assert.match(entry().detail, /does not exist/);

    const self = await fakePyro(join(root, "new"));
    const [r] = await repair(c, ["user", "project"], self, where);
    assert.equal(r!.changed, true);
    assert.deepEqual(r!.args, [
      ...self.args,
      "mcp",
      "serve",
      "--profile",
      "vm-run",
      "--allow-path",
      "/srv/p",
    ]);
    report = await doctor(where, self, ["claude-code"]);
    assert.equal(entry().status, "ok", entry().detail);
    await assert.rejects(repair(CLIENT_SPECS.cursor, ["user"], self, where), /no pyro entry to repair/);

    // An entry whose pyro answers with another version is stale too.
    const other = join(root, "other.js");
    await writeFile(other, 'process.stdout.write("0.0.1\\n");\n');
    await chmod(other, 0o644);
    await connect(
      c,
      "user",
      serverLaunch({ command: process.execPath, args: [other] }, "workspace-core"),
      where,
    );
    report = await doctor(where, self, ["claude-code"]);
    assert.equal(entry().status, "stale");
    assert.match(entry().detail, /pyro 0\.0\.1/);
  } finally {
    await done();
  }
});

test("--npx hands npx this pyro's package dir (pyro-mcp is not on the registry); host doctor flags the registry form", async () => {
  const npx = pyroLauncher({ npx: true });
  assert.equal(npx.command, "npx");
  assert.equal(npx.args.length, 3);
  assert.equal(npx.args[0], "-y");
  assert.equal(npx.args[2], "pyro", "the package's own bin");
  assert.ok(!npx.args.includes("pyro-mcp"), "never the unpublished registry name");
  const dir = npx.args[1]!.replace(/^--package=/, "");
  const pkg = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as {
    name: string;
    bin: Record<string, string>;
  };
  assert.equal(pkg.name, "pyro-mcp");
  assert.ok(pkg.bin.pyro, "the dir npx gets has the pyro bin");

  const { where, root, done } = await sandbox();
  try {
    const bin = join(root, "bin");
    await mkdir(bin);
    await writeFile(join(bin, "npx"), "#!/bin/sh\n", { mode: 0o755 });
    const env = { ...where.env, PATH: bin };
    const self = await fakePyro(root);
    const ok = await checkLaunch(serverLaunch(npx, "vm-run"), env, self);
    assert.equal(ok.status, "ok", ok.detail);
    const registry = await checkLaunch(
      serverLaunch({ command: "npx", args: ["-y", "pyro-mcp"] }, "vm-run"),
      env,
      self,
    );
    assert.equal(registry.status, "broken");
    assert.match(registry.detail, /not on the npm registry.*pyro host repair/);
    const moved = await checkLaunch(
      serverLaunch({ command: "npx", args: ["-y", `--package=${join(root, "gone")}`, "pyro"] }, "vm-run"),
      env,
      self,
    );
    assert.equal(moved.status, "stale");
    assert.match(moved.detail, /does not exist/);
  } finally {
    await done();
  }
});

test("examples/mcp: each client's example file has the documented shape", async () => {
  const dir = join(REPO, "examples", "mcp");
  const files: [ClientName, string][] = [
    ["claude-code", "claude-code.mcp.json"],
    ["claude-code", "claude_desktop_config.json"],
    ["cursor", "cursor.mcp.json"],
    ["vscode", "vscode.mcp.json"],
    ["opencode", "opencode.json"],
    ["codex", "codex.config.toml"],
  ];
  for (const [client, file] of files) {
    const text = await readFile(join(dir, file), "utf8");
    const entry = entryIn(client, text);
    assert.ok(entry, `${file} has a pyro entry`);
    assert.deepEqual(entry.args.slice(0, 2), ["mcp", "serve"], file);
    assert.equal(entry.command, "pyro", file);
  }
});

test("a symlinked config is written through the link; a new user-scope file is private", async () => {
  const { where, root, done } = await sandbox();
  try {
    const launch = serverLaunch(await fakePyro(root), "workspace-core");
    const dotfiles = join(root, "dotfiles");
    await mkdir(dotfiles);
    await copyFile(fixtureFile("claude-code"), join(dotfiles, "claude.json"));
    await symlink(join(dotfiles, "claude.json"), join(where.home, ".claude.json"));
    const r = await connect(CLIENT_SPECS["claude-code"], "user", launch, where);
    assert.equal(r.changed, true);
    assert.ok((await lstat(join(where.home, ".claude.json"))).isSymbolicLink(), "still a link");
    assert.deepEqual(entryIn("claude-code", await readFile(join(dotfiles, "claude.json"), "utf8")), launch);
    assert.equal((await backups(join(dotfiles, "claude.json"))).length, 1, "backed up beside the real file");

    const fresh = await connect(CLIENT_SPECS.cursor, "user", launch, where);
    assert.equal((await stat(fresh.path)).mode & 0o777, 0o600);
    const shared = await connect(CLIENT_SPECS.cursor, "project", launch, where);
    assert.equal((await stat(shared.path)).mode & 0o777, 0o644);
  } finally {
    await done();
  }
});

test("host connect --mode writes `mcp serve --mode NAME`; doctor --mode calls another job's entry stale", async () => {
  const { where, root, done } = await sandbox();
  try {
    const self = await fakePyro(root);
    const c = CLIENT_SPECS["claude-code"];
    const launch = serverLaunch(self, { mode: "repro-fix" });
    assert.deepEqual(launch.args.slice(-4), ["mcp", "serve", "--mode", "repro-fix"]);
    await connect(c, "user", launch, where);
    const entry = async (mode?: "repro-fix" | "review-eval") =>
      (await doctor(where, self, ["claude-code"], mode ? { mode } : {})).find((e) => e.configured)!;
    const plain = await entry();
    assert.equal(plain.status, "ok");
    assert.equal(plain.mode, "repro-fix");
    assert.equal(plain.profile, null);
    assert.equal((await entry("repro-fix")).status, "ok");
    const other = await entry("review-eval");
    assert.equal(other.status, "stale");
    assert.match(other.detail, /serves mode repro-fix, not mode review-eval/);
    // A profile entry is another job's too; an unknown mode is broken.
    await connect(c, "user", serverLaunch(self, "workspace-core"), where);
    assert.match((await entry("review-eval")).detail, /serves profile workspace-core, not mode review-eval/);
    await connect(
      c,
      "user",
      { command: self.command, args: [...self.args, "mcp", "serve", "--mode", "nope"] },
      where,
    );
    const bad = await entry();
    assert.equal(bad.status, "broken");
    assert.match(bad.detail, /unknown mode "nope"/);
  } finally {
    await done();
  }
});
