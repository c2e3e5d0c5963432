import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { Pyro, PyroError } from "../../src/index.js";
import {
  CLI,
  runCli,
  runCliJson,
  runCliJsonGuest,
  skipped,
  type TestState,
  testEnv,
  withGvisorState,
  withHostDir,
} from "../helpers.js";

/**
 * Issue 13, secrets, through the three faces against real gVisor (and QEMU where it runs):
 * a secret printed by `cat /run/pyro-secrets/TOKEN; echo $TOKEN` (and split across output
 * chunks, and written by a shell, a service, a file) appears nowhere: not in stdout, the
 * logs, --json, output_read, shell reads, service logs, file reads, diffs, errors, MCP
 * results, nor anywhere in pyro's state directory (grepped recursively, output logs included).
 */

/** A value no test output could contain by chance. */
const fresh = (tag: string) => `${tag}-${randomBytes(12).toString("hex")}`;

/** Files under `dir` that contain any of `values` (grep -r, binary files too). */
function grepState(dir: string, values: string[]): string[] {
  const args = ["-rlaF", "--devices=skip", ...values.flatMap((v) => ["-e", v]), dir];
  const r = spawnSync("grep", args, { encoding: "utf8" });
  assert.ok(r.status === 0 || r.status === 1, `grep failed: ${r.stderr}`);
  return r.stdout.split("\n").filter(Boolean);
}

function assertNone(text: string, values: string[], where: string): void {
  for (const v of values)
    assert.ok(!text.includes(v), `a secret value leaked into ${where}: ${text.slice(0, 400)}`);
}

const PRINT = 'cat /run/pyro-secrets/TOKEN; echo; echo "$TOKEN"';
/** grepState reads every file, the workspace's sparse disk image too: keep it small. */
const SMALL_DISK = ["--disk-mib", "64"];

test("CLI: create with all three sources, exec/logs/output read/shell/service/file/diff/errors redacted, 0400, state dir clean", async (t) => {
  await withGvisorState(t, async (c) => {
    await withHostDir("pyro-secret-file-", async (host) => {
      const token = fresh("tok");
      const key = fresh("key");
      const fromEnv = fresh("env");
      const values = [token, key, fromEnv];
      await writeFile(join(host, "key.txt"), `${key}\n`);
      const env = { ...c.env, MY_SECRET_VAR: fromEnv };
      const created = await runCliJson<{ workspace_id: string; secrets: { name: string; bytes: number }[] }>(
        [
          "workspace",
          "create",
          "debian:12",
          ...SMALL_DISK,
          "--secret",
          `TOKEN=${token}`,
          "--secret-file",
          `KEY=${join(host, "key.txt")}`,
          "--secret-env",
          "FROM_ENV=MY_SECRET_VAR",
        ],
        { env, timeoutMs: 600_000 },
      );
      assert.equal(created.code, 0, created.stderr);
      const ws = created.json.workspace_id;
      assert.deepEqual(created.json.secrets, [
        { name: "TOKEN", bytes: token.length },
        { name: "KEY", bytes: key.length + 1 },
        { name: "FROM_ENV", bytes: fromEnv.length },
      ]);
      try {
        // Plain mode: the live stream to stdout.
        const plain = await runCli(
          ["workspace", "exec", ws, "--secret-env", "TOKEN", "--", "sh", "-c", PRINT],
          {
            env,
          },
        );
        assert.equal(plain.code, 0, plain.stderr);
        assert.equal(plain.stdout, "[REDACTED:TOKEN]\n[REDACTED:TOKEN]\n");
        assertNone(plain.stdout + plain.stderr, values, "plain exec output");

        // --json, a value split across two writes (two chunks), the trimmed file value, stderr,
        // and a value in the command line itself.
        const split = `printf %s "\${TOKEN%????????}"; sleep 0.3; printf '%s\\n' "\${TOKEN#\${TOKEN%????????}}"; cat /run/pyro-secrets/KEY; printf '%s' "$(cat /run/pyro-secrets/KEY)" >&2; echo "$X ${fromEnv}"`;
        const j = await runCliJsonGuest<Record<string, unknown>>(
          [
            "workspace",
            "exec",
            ws,
            "--secret-env",
            "TOKEN",
            "--secret-env",
            "X=FROM_ENV",
            "--",
            "sh",
            "-c",
            split,
          ],
          { env },
        );
        assert.equal(j.code, 0, j.stderr);
        assert.equal(
          j.json.stdout,
          "[REDACTED:TOKEN]\n[REDACTED:KEY]\n[REDACTED:FROM_ENV] [REDACTED:FROM_ENV]\n",
        );
        assert.equal(j.json.stderr, "[REDACTED:KEY]");
        assert.match(String(j.json.command), /\[REDACTED:FROM_ENV\]/);
        assertNone(JSON.stringify(j.json) + j.stderr, values, "exec --json");

        // Mode 0400, owned by the command user, in the sandbox (not on the host's disk).
        const mode = await runCli(
          [
            "workspace",
            "exec",
            ws,
            "--",
            "stat",
            "-c",
            "%a %U %n",
            "/run/pyro-secrets/TOKEN",
            "/run/pyro-secrets/KEY",
          ],
          { env },
        );
        assert.equal(mode.stdout, "400 root /run/pyro-secrets/TOKEN\n400 root /run/pyro-secrets/KEY\n");
        // Without --secret-env the variable is not set: per call only.
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion
        const unset = await runCli(["workspace", "exec", ws, "--", "sh", "-c", 'echo "[${TOKEN:-unset}]"'], {
          env,
        });
        assert.equal(unset.stdout, "[unset]\n");

        const logs = await runCliJson<Record<string, unknown>>(
          ["workspace", "logs", ws, "--include-output"],
          { env },
        );
        assert.equal(logs.code, 0, logs.stderr);
        assert.match(JSON.stringify(logs.json), /REDACTED:TOKEN/);
        assertNone(JSON.stringify(logs.json), values, "workspace logs");
        const page = await runCli(["output", "read", `${ws}:2`], { env });
        assert.equal(page.code, 0, page.stderr);
        assert.match(page.stdout, /\[REDACTED:TOKEN\]/);
        assertNone(page.stdout, values, "output read");

        // A shell: typed input echoes, the variable and the file, read back.
        const open = await runCliJsonGuest<{ shell_id: string }>(
          ["workspace", "shell", "open", ws, "--secret-env", "TOKEN"],
          { env },
        );
        assert.equal(open.code, 0, open.stderr);
        const sh = open.json.shell_id;
        const w = await runCli(
          ["workspace", "shell", "write", ws, sh, "--input", `${PRINT}; echo done-$((6*7))`, "--newline"],
          { env },
        );
        assert.equal(w.code, 0, w.stderr);
        let shellOut = "";
        for (let i = 0; i < 50 && !/done-42/.test(shellOut); i++) {
          const r = await runCliJson<{ output: string }>(
            ["workspace", "shell", "read", ws, sh, "--plain", "--wait-for-idle-ms", "200"],
            { env },
          );
          shellOut = r.json.output;
        }
        assert.match(shellOut, /\[REDACTED:TOKEN\]\r?\n\[REDACTED:TOKEN\]/);
        assertNone(shellOut, values, "shell read");
        await runCli(["workspace", "shell", "close", ws, sh], { env });

        // A service with the secret in its environment.
        const svc = await runCliJsonGuest<{ state: string }>(
          [
            "workspace",
            "service",
            "start",
            ws,
            "svc",
            "--secret-env",
            "SVC_TOKEN=TOKEN",
            "--ready-file",
            "/tmp/up",
            "--",
            "sh",
            "-c",
            'echo "svc $SVC_TOKEN"; cat /run/pyro-secrets/KEY; touch /tmp/up; sleep 60',
          ],
          { env },
        );
        assert.equal(svc.code, 0, svc.stderr);
        const slogs = await runCliJson<{ output: string }>(["workspace", "service", "logs", ws, "svc"], {
          env,
        });
        assert.equal(slogs.json.output, "svc [REDACTED:TOKEN]\n[REDACTED:KEY]\n");
        await runCli(["workspace", "service", "stop", ws, "svc"], { env });

        // Files: read and diff of a file holding a value; an error that would quote one.
        await runCli(
          ["workspace", "exec", ws, "--", "sh", "-c", "cp /run/pyro-secrets/TOKEN /workspace/leak.txt"],
          { env },
        );
        const read = await runCliJson<{ content: string }>(["workspace", "file", "read", ws, "leak.txt"], {
          env,
        });
        assert.equal(read.json.content, "[REDACTED:TOKEN]");
        const diff = await runCliJson<Record<string, unknown>>(["workspace", "diff", ws], { env });
        assert.match(JSON.stringify(diff.json), /REDACTED:TOKEN/);
        assertNone(JSON.stringify(diff.json), values, "diff");
        const err = await runCliJson<{ error: { message: string } }>(
          ["workspace", "file", "read", ws, `missing-${token}`],
          { env },
        );
        assert.notEqual(err.code, 0);
        assert.match(err.json.error.message, /REDACTED:TOKEN/);
        assertNone(JSON.stringify(err.json) + err.stderr, values, "an error");
        // The guest's own copy under /workspace is the user's data on the host's disk (the
        // workspace's disk image): overwritten in place and removed, so what is left is what
        // pyro wrote.
        await runCli(["workspace", "exec", ws, "--", "sh", "-c", "shred -u -z /workspace/leak.txt && sync"], {
          env,
        });

        // Nothing pyro keeps holds a value: records, command logs, output files, rings.
        assert.deepEqual(grepState(c.stateDir, values), [], "the state dir holds a secret value");
        const status = await runCliJson<Record<string, unknown>>(["workspace", "status", ws], { env });
        assertNone(JSON.stringify(status.json), values, "status");
      } finally {
        const d = await runCli(["workspace", "delete", ws], { env });
        assert.equal(d.code, 0, d.stderr);
      }
      assert.deepEqual(grepState(c.stateDir, values), []);
    });
  });
});

test("CLI: bad names, short values and unknown secret_env names are refused, naming the name and never the value", async (t) => {
  await withGvisorState(t, async (c) => {
    const value = fresh("v");
    const bad = await runCliJson<{ error: { message: string } }>(
      ["workspace", "create", "debian:12", "--secret", `1BAD-NAME=${value}`],
      { env: c.env },
    );
    assert.equal(bad.code, 2);
    assert.match(bad.json.error.message, /secret name "1BAD-NAME" is not valid/);
    assertNone(JSON.stringify(bad.json), [value], "the error");
    const short = await runCliJson<{ error: { message: string } }>(
      ["workspace", "create", "debian:12", "--secret", "PIN=123"],
      { env: c.env },
    );
    assert.equal(short.code, 2);
    assert.match(short.json.error.message, /secret PIN is 3 bytes; at least 4/);
    const noEnv = await runCliJson<{ error: { message: string } }>(
      ["workspace", "create", "debian:12", "--secret-env", "NOT_SET_ANYWHERE_42"],
      { env: c.env },
    );
    assert.match(noEnv.json.error.message, /NOT_SET_ANYWHERE_42 is not set/);
    const noEq = await runCli(["workspace", "create", "debian:12", "--secret", "JUSTANAME"], { env: c.env });
    assert.equal(noEq.code, 2);
    assert.match(noEq.stderr, /--secret needs NAME=VALUE/);
    // A workspace without that secret.
    const ws = await runCliJson<{ workspace_id: string }>(["workspace", "create", "debian:12"], {
      env: c.env,
    });
    try {
      const e = await runCliJsonGuest<{ error: { message: string } }>(
        ["workspace", "exec", ws.json.workspace_id, "--secret-env", "TOKEN", "--", "true"],
        { env: c.env },
      );
      assert.equal(e.code, 2);
      assert.match(e.json.error.message, /has no secret TOKEN/);
    } finally {
      await runCli(["workspace", "delete", ws.json.workspace_id], { env: c.env });
    }
  });
});

test("SDK: streamed chunks never carry a value, even split across chunks; secretEnv per call", async (t) => {
  await withGvisorState(t, async (c) => {
    const token = fresh("sdk");
    const pyro = new Pyro({ env: c.env });
    const ws = await pyro.createWorkspace({
      environment: "debian:12",
      diskMib: 64,
      secrets: [{ name: "TOKEN", value: token }],
    });
    try {
      const chunks: Buffer[] = [];
      const r = await ws.exec(
        // Half the value, a pause (a chunk boundary), the rest, and the file.
        // biome-ignore lint/suspicious/noTemplateCurlyInString: shell expansions
        'printf %s "${TOKEN%??????????}"; sleep 0.3; printf "%s\\n" "${TOKEN#${TOKEN%??????????}}"; cat /run/pyro-secrets/TOKEN',
        { secretEnv: ["TOKEN"], onStdout: (b) => chunks.push(b) },
      );
      assert.equal(r.exit_code, 0, r.stderr);
      for (const ch of chunks)
        assertNone(ch.toString("latin1"), [token, token.slice(0, 10)], "a streamed chunk");
      assert.equal(Buffer.concat(chunks).toString(), "[REDACTED:TOKEN]\n[REDACTED:TOKEN]");
      assert.equal(r.stdout, "[REDACTED:TOKEN]\n[REDACTED:TOKEN]");
      // Binary output around a value.
      const bin = await ws.exec([
        "sh",
        "-c",
        "printf '\\377\\000'; cat /run/pyro-secrets/TOKEN; printf '\\376'",
      ]);
      assert.equal(bin.stdout_encoding, "base64");
      assert.deepEqual(
        Buffer.from(bin.stdout, "base64"),
        Buffer.concat([Buffer.from([0xff, 0]), Buffer.from("[REDACTED:TOKEN]"), Buffer.from([0xfe])]),
      );
      await assert.rejects(
        () => ws.exec("true", { secretEnv: ["OTHER"] }),
        (e: unknown) => e instanceof PyroError && /has no secret OTHER/.test(e.message),
      );
      assert.deepEqual(grepState(c.stateDir, [token]), []);
    } finally {
      await ws.delete();
    }
  });
});

test("snapshots: a value written into /workspace is in the snapshot's objects until the last snapshot holding it, or the workspace, is deleted", async (t) => {
  await withGvisorState(t, async (c) => {
    const token = fresh("snap");
    const pyro = new Pyro({ env: c.env });
    const ws = await pyro.createWorkspace({
      environment: "debian:12",
      diskMib: 64,
      secrets: [{ name: "TOKEN", value: token }],
    });
    let deleted = false;
    try {
      const store = join(c.stateDir, "workspaces", ws.workspace_id, "snapshots");
      const write = await ws.exec("cat /run/pyro-secrets/TOKEN > leak.txt");
      assert.equal(write.exit_code, 0, write.stderr);
      // Two snapshots share the one content-addressed object.
      await ws.snapshots.create("s1");
      await ws.snapshots.create("s2");
      const held = grepState(store, [token]);
      assert.equal(held.length, 1, `one object holds the value: ${held.join(", ")}`);
      assert.match(held[0]!, /\/snapshots\/objects\//);
      // The live file goes; the snapshots still hold it until the last one is deleted.
      assert.equal((await ws.exec("rm leak.txt")).exit_code, 0);
      await ws.snapshots.delete("s1");
      assert.deepEqual(grepState(store, [token]), held, "s2 still references the object");
      const freed = await ws.snapshots.delete("s2");
      assert.ok(freed.bytes_freed >= token.length, JSON.stringify(freed));
      assert.deepEqual(grepState(store, [token]), [], "deleting the last snapshot removes the object");
      // Outside the store only the workspace's own disk may still hold it (freed ext4 blocks).
      for (const f of grepState(c.stateDir, [token]))
        assert.match(
          f,
          new RegExp(`/workspaces/${ws.workspace_id}/disk\\.img$`),
          `only the disk image: ${f}`,
        );
      // Deleting the workspace removes every snapshot's objects with it.
      assert.equal((await ws.exec("cat /run/pyro-secrets/TOKEN > again.txt")).exit_code, 0);
      await ws.snapshots.create("s3");
      assert.equal(grepState(store, [token]).length, 1);
      await ws.delete();
      deleted = true;
      assert.deepEqual(grepState(c.stateDir, [token]), [], "nothing of the workspace holds the value");
    } finally {
      if (!deleted) await ws.delete();
    }
  });
});

/** Processes whose command line contains `needle`, and all their descendants. */
async function processTree(needle: string): Promise<{ pid: number; cmd: string }[]> {
  const procs: { pid: number; ppid: number; cmd: string }[] = [];
  for (const p of await readdir("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    const cmd = (await readFile(`/proc/${p}/cmdline`, "utf8").catch(() => "")).replace(/\0/g, " ");
    const stat = await readFile(`/proc/${p}/stat`, "utf8").catch(() => "");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (cmd) procs.push({ pid: Number(p), ppid, cmd });
  }
  const ours = new Set(procs.filter((x) => x.cmd.includes(needle)).map((x) => x.pid));
  for (let grew = true; grew; ) {
    grew = false;
    for (const x of procs)
      if (!ours.has(x.pid) && ours.has(x.ppid)) {
        ours.add(x.pid);
        grew = true;
      }
  }
  return procs.filter((x) => ours.has(x.pid));
}

test("--secret-env NAME=VAR: VAR's value is in no environment of the sandbox's runsc processes (gofer, sandbox, detached exec)", async (t) => {
  await withGvisorState(t, async (c) => {
    const value = fresh("hostvar");
    const env = { ...c.env, PYRO_TEST_HOST_SECRET: value };
    const created = await runCliJson<{ workspace_id: string }>(
      ["workspace", "create", "debian:12", ...SMALL_DISK, "--secret-env", "TOKEN=PYRO_TEST_HOST_SECRET"],
      { env },
    );
    assert.equal(created.code, 0, created.stderr);
    const ws = created.json.workspace_id;
    try {
      // A command, and a service (under gVisor a detached `runsc exec` that stays).
      const ex = await runCliJsonGuest<{ exit_code: number }>(["workspace", "exec", ws, "--", "true"], {
        env,
      });
      assert.equal(ex.code, 0);
      const svc = await runCli(["workspace", "service", "start", ws, "svc", "--", "sleep", "600"], { env });
      assert.equal(svc.code, 0, svc.stderr);
      const procs = await processTree(`--root=${join(c.stateDir, "runsc")}`);
      assert.ok(
        procs.some((p) => p.cmd.startsWith("runsc-gofer")) &&
          procs.some((p) => p.cmd.startsWith("runsc-sandbox")),
        `the sandbox's gofer and sandbox processes were found: ${procs.map((p) => p.cmd.slice(0, 60)).join("; ")}`,
      );
      for (const p of procs) {
        const environ = await readFile(`/proc/${p.pid}/environ`).catch(() => undefined);
        if (environ === undefined) continue; // ended meanwhile
        assert.ok(
          !environ.includes(value),
          `pid ${p.pid} (${p.cmd.slice(0, 60)}) has the value in its environment`,
        );
        assert.ok(
          !environ.includes("PYRO_TEST_HOST_SECRET="),
          `pid ${p.pid} (${p.cmd.slice(0, 60)}) has the variable in its environment`,
        );
      }
    } finally {
      await runCli(["workspace", "delete", ws], { env });
    }
  });
});

test("re-materialise (what stop/start and reset call): captured values, re-read sources, literal values refused", async (t) => {
  await withGvisorState(t, async (c) => {
    const literal = fresh("lit");
    const fromEnv = fresh("env");
    const pyro = new Pyro({ env: { ...c.env, RE_VAR: fromEnv } });
    const ws = await pyro.createWorkspace({
      environment: "debian:12",
      diskMib: 64,
      secrets: [
        { name: "LIT", value: literal },
        { name: "VAR", fromEnv: "RE_VAR" },
      ],
    });
    try {
      const cat = "cat /run/pyro-secrets/LIT /run/pyro-secrets/VAR";
      const m = pyro.runtime.workspaces;
      const captured = await m.captureSecrets(ws.id);
      assert.deepEqual(
        captured.map((s) => [s.name, s.value.toString()]),
        [
          ["LIT", literal],
          ["VAR", fromEnv],
        ],
      );
      // A new sandbox has no /run/pyro-secrets: wiping it stands in for one.
      await ws.exec("rm -rf /run/pyro-secrets");
      assert.notEqual((await ws.exec(cat)).exit_code, 0);
      await m.materialiseSecrets(ws.id, captured);
      const back = await ws.exec(`${cat}; stat -c %a /run/pyro-secrets/LIT`);
      assert.equal(back.stdout, "[REDACTED:LIT][REDACTED:VAR]400\n");
      // Another process, nothing captured: the variable is read again, the literal cannot be.
      await ws.exec("rm -rf /run/pyro-secrets");
      await assert.rejects(
        () => m.materialiseSecrets(ws.id),
        (e: unknown) =>
          e instanceof PyroError &&
          e.code === "invalid_state" &&
          /secret LIT was given as a literal value/.test(e.message),
      );
      assertNone(JSON.stringify(await ws.refresh()), [literal, fromEnv], "status");
    } finally {
      await ws.delete();
    }
    assert.deepEqual(grepState(c.stateDir, [literal, fromEnv]), []);
  });
});

async function mcpClient(c: TestState, args: string[], env: Record<string, string>) {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, "mcp", "serve", "--profile", "workspace-full", "--no-project", ...args],
    env: {
      ...Object.fromEntries(Object.entries(c.env).filter((e): e is [string, string] => e[1] !== undefined)),
      ...env,
    },
    stderr: "pipe",
  });
  const client = new Client({ name: "pyro-secrets-e2e", version: "0" });
  await client.connect(transport);
  const raw = (name: string, args: Record<string, unknown>) =>
    client.callTool({ name, arguments: args }, undefined, { timeout: 600_000 }) as Promise<{
      structuredContent?: Record<string, unknown>;
      isError?: boolean;
      content?: { text: string }[];
    }>;
  const call = async (name: string, a: Record<string, unknown>) => {
    const r = await raw(name, a);
    assert.notEqual(r.isError, true, `${name}: ${r.content?.map((x) => x.text).join("\n")}`);
    return r;
  };
  return { client, raw, call };
}

test("MCP: names only (operator's --secret-env), values refused unless --allow-secret-values; results redacted", async (t) => {
  await withGvisorState(t, async (c) => {
    const token = fresh("mcp");
    const given = fresh("given");
    const { client, raw, call } = await mcpClient(c, ["--secret-env", "TOKEN=OPERATOR_TOKEN"], {
      OPERATOR_TOKEN: token,
    });
    try {
      const tools = await client.listTools();
      const create = tools.tools.find((x) => x.name === "workspace_create")!;
      const item = (create.inputSchema.properties as Record<string, { items: { properties: object } }>)
        .secrets!.items;
      assert.deepEqual(Object.keys(item.properties), ["name"], "a model is offered names only");

      const refused = await raw("workspace_create", { secrets: [{ name: "TOKEN", value: given }] });
      assert.equal(refused.isError, true);
      const text = refused.content!.map((x) => x.text).join("\n");
      assert.match(text, /does not accept secret values/);
      assertNone(text, [given], "the refusal");
      const unknown = await raw("workspace_create", { secrets: [{ name: "NOPE" }] });
      assert.equal(unknown.isError, true);
      assert.match(unknown.content![0]!.text, /secret NOPE is not configured on this server.*TOKEN/s);
      const hostFile = await raw("workspace_create", {
        secrets: [{ name: "TOKEN", file_path: "/etc/shadow" }],
      });
      assert.equal(hostFile.isError, true);
      assert.match(hostFile.content![0]!.text, /may not name a host file/);

      const ws = String(
        (await call("workspace_create", { disk_mib: 64, secrets: [{ name: "TOKEN" }] })).structuredContent!
          .workspace_id,
      );
      try {
        const r = await call("workspace_exec", { workspace_id: ws, command: PRINT, secret_env: ["TOKEN"] });
        assert.equal(r.structuredContent!.stdout, "[REDACTED:TOKEN]\n[REDACTED:TOKEN]\n");
        const logs = await call("workspace_logs", { workspace_id: ws, include_output: true });
        const page = await call("output_read", { output_id: `${ws}:1` });
        const svc = await call("service_start", {
          workspace_id: ws,
          name: "s",
          command: 'echo "$TOKEN"; sleep 60',
          secret_env: ["TOKEN"],
        });
        const slogs = await call("service_logs", { workspace_id: ws, name: "s" });
        assert.equal(slogs.structuredContent!.output, "[REDACTED:TOKEN]\n");
        await call("service_stop", { workspace_id: ws, name: "s" });
        for (const [where, res] of Object.entries({ r, logs, page, svc, slogs }))
          assertNone(JSON.stringify(res), [token], `MCP ${where}`);
        assert.deepEqual(grepState(c.stateDir, [token]), []);
      } finally {
        await call("workspace_delete", { workspace_id: ws });
      }
    } finally {
      await client.close();
    }

    // With --allow-secret-values a model may send a value, and it is redacted like any other.
    const allowed = await mcpClient(c, ["--allow-secret-values"], {});
    try {
      const ws = String(
        (await allowed.call("workspace_create", { disk_mib: 64, secrets: [{ name: "GIVEN", value: given }] }))
          .structuredContent!.workspace_id,
      );
      try {
        const r = await allowed.call("workspace_exec", {
          workspace_id: ws,
          command: "cat /run/pyro-secrets/GIVEN",
        });
        assert.equal(r.structuredContent!.stdout, "[REDACTED:GIVEN]");
        assertNone(JSON.stringify(r), [given], "MCP exec");
        assert.deepEqual(grepState(c.stateDir, [given]), []);
      } finally {
        await allowed.call("workspace_delete", { workspace_id: ws });
      }
    } finally {
      await allowed.client.close();
    }
  });
});

test("QEMU: secrets on a tmpfs in the VM (0400), redacted, the state dir (qcow2 overlay included) clean", async (t) => {
  if (process.getuid?.() !== 0) return skipped(t, "qemu tests need root");
  if (!existsSync("/usr/bin/qemu-system-x86_64") && !process.env.PYRO_QEMU)
    return skipped(t, "qemu not installed");
  if (process.env.PYRO_SECRETS_QEMU === "0") return skipped(t, "PYRO_SECRETS_QEMU=0");
  const c = await testEnv({ PYRO_ENGINE: "qemu", PYRO_QEMU_ACCEL: process.env.PYRO_QEMU_ACCEL ?? "tcg" });
  try {
    const token = fresh("qemu");
    const created = await runCliJson<{ workspace_id: string }>(
      ["workspace", "create", "debian:12", "--secret", `TOKEN=${token}`],
      { env: c.env, timeoutMs: 600_000 },
    );
    assert.equal(created.code, 0, created.stderr);
    const ws = created.json.workspace_id;
    try {
      const r = await runCliJsonGuest<{ stdout: string }>(
        [
          "workspace",
          "exec",
          ws,
          "--secret-env",
          "TOKEN",
          "--",
          "sh",
          "-c",
          `${PRINT}; stat -c '%a %U' /run/pyro-secrets/TOKEN; findmnt -n -o FSTYPE /run/pyro-secrets`,
        ],
        { env: c.env, timeoutMs: 120_000 },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.json.stdout, "[REDACTED:TOKEN]\n[REDACTED:TOKEN]\n400 root\ntmpfs\n");
      assert.deepEqual(grepState(c.stateDir, [token]), []);
    } finally {
      await runCli(["workspace", "delete", ws], { env: c.env, timeoutMs: 120_000 });
    }
  } finally {
    await c.cleanup();
  }
});
