import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { PyroError } from "../../src/core/errors.js";
import { newId } from "../../src/core/ids.js";
import { decodeFrames } from "../../src/engines/gvisor/exec-channel.js";
import type { ExecOutcome } from "../../src/engines/types.js";
import { RecordStore } from "../../src/sandbox/record-store.js";
import { type ExecRecord, plainExec, runLoggedExec, WORKSPACE_ROOT } from "../../src/workspaces/exec-flow.js";
import { tempDir } from "../helpers.js";

/**
 * workspaces/exec-flow.ts, the one exec of WorkspaceManager.exec and the CLI's fast path,
 * without a sandbox: the sequence with a stand-in command, and the fast path's plain case
 * against a stand-in of the sandbox init's exec channel (frames as guest/sandbox-init.c sends
 * them). The e2e tests (fast-exec.test.ts, workspace.test.ts) run both against gVisor.
 */

let root: string;
before(async () => {
  root = await tempDir("pyro-unit-exec-flow-");
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const frame = (type: string, body: string) => {
  const b = Buffer.from(body);
  const h = Buffer.alloc(5);
  h.write(type, 0, "latin1");
  h.writeUInt32LE(b.length, 1);
  return Buffer.concat([h, b]);
};

/** A stand-in exec channel: answers every command with `out` on stdout and exit `code`. */
async function fakeChannel(
  socket: string,
  out: string,
  code: number,
): Promise<{ server: Server; seen: [string, string][] }> {
  const seen: [string, string][] = [];
  const server = createServer((c) => {
    let rest: Buffer = Buffer.alloc(0);
    c.on("data", (chunk: Buffer) => {
      rest = decodeFrames(Buffer.concat([rest, chunk]), (t, b) => {
        seen.push([t, b.toString()]);
        if (t === "G") c.end(Buffer.concat([frame("1", out), frame("X", String(code))]));
      });
    });
  });
  await new Promise<void>((res) => server.listen(socket, res));
  return { server, seen };
}

type Rec = ExecRecord & Record<string, unknown>;

/** A running gVisor workspace's record on disk, as create writes it (fields the flow reads). */
async function workspace(over: Record<string, unknown> = {}, data: Record<string, unknown> = {}) {
  const id = newId("ws");
  const dir = join(root, id);
  await mkdir(join(dir, "ctl"), { recursive: true });
  const socket = join(dir, "exec.sock");
  const rec = {
    workspace_id: id,
    environment: "debian:12",
    engine: "gvisor",
    state: "running",
    reason: null,
    created_at: new Date().toISOString(),
    expires_at: new Date(Date.now() + 3_600_000).toISOString(),
    ttl_seconds: 7200,
    vcpu_count: 1,
    mem_mib: 1024,
    execution_mode: "gvisor",
    command_count: 0,
    last_command: null,
    handle: {
      engine: "gvisor",
      id,
      sandboxDir: join(dir, "sandbox"),
      workspaceDir: join(dir, "files"),
      data: {
        containerId: `pyro-${id}`,
        execSocket: socket,
        pid: process.pid,
        ctlDir: join(dir, "ctl"),
        ...data,
      },
    },
    ...over,
  };
  await writeFile(join(dir, "workspace.json"), JSON.stringify(rec));
  return { id, dir, socket };
}

const readRec = async (dir: string) => JSON.parse(await readFile(join(dir, "workspace.json"), "utf8")) as Rec;
const commandFiles = async (dir: string) => readdir(join(dir, "commands")).catch(() => [] as string[]);

const request = (command: string[]) => ({
  command,
  shown: command.join(" "),
  maxOutputBytes: 16384,
  signal: new AbortController().signal,
  live: {},
});

test("the fast path's plain exec runs over the channel and logs it as the full path does", async () => {
  const { id, dir, socket } = await workspace();
  const { server, seen } = await fakeChannel(socket, "hi\n", 3);
  try {
    const exec = plainExec(root, id, 30);
    assert.ok(exec, "a plain workspace is the fast path's");
    const r = await exec.run(request(["echo", "hi"]));
    assert.ok(r);
    assert.equal(r.workspace_id, id);
    assert.equal(r.sequence, 1);
    assert.equal(r.command, "echo hi");
    assert.equal(r.exit_code, 3);
    assert.equal(r.stdout, "hi\n");
    assert.equal(r.execution_mode, "gvisor");
    // In /workspace, the argv as given.
    assert.deepEqual(
      seen.filter(([t]) => t === "A").map(([, b]) => b),
      ["echo", "hi"],
    );
    assert.equal(seen.find(([t]) => t === "C")?.[1], WORKSPACE_ROOT);
    // The log entry, its output, the record counting it, the sandbox told its new expiry.
    const after = await readRec(dir);
    assert.equal(after.command_count, 1);
    assert.equal(after.last_command?.exit_code, 3);
    assert.ok(Date.parse(after.expires_at) > Date.now() + 7_000_000, "activity moved the idle expiry");
    assert.deepEqual((await commandFiles(dir)).sort(), [
      "00000001.json",
      "00000001.stderr",
      "00000001.stdout",
    ]);
    assert.equal(await readFile(join(dir, "commands", "00000001.stdout"), "utf8"), "hi\n");
    const expiry = Number((await readFile(join(dir, "ctl", "expires_at"), "utf8")).trim());
    assert.equal(expiry, Math.ceil(Date.parse(after.expires_at) / 1000));
  } finally {
    server.close();
  }
});

test("the fast path declines anything but the plain case, before anything is written", async () => {
  const dead = spawnSync("true").pid!;
  const cases: [string, Record<string, unknown>, Record<string, unknown>][] = [
    ["another engine", { engine: "qemu" }, {}],
    ["no exec channel", {}, { execSocket: undefined }],
    ["a dead sandbox", {}, { pid: dead }],
    ["stopped", { state: "stopped" }, {}],
    ["secrets", { secrets: [{ name: "TOKEN" }] }, {}],
    ["an image environment", { environment: "docker.io/library/alpine:3" }, {}],
    ["expired", { expires_at: new Date(Date.now() - 1000).toISOString() }, {}],
    ["an expiry to push first", { expires_at: new Date(Date.now() + 20_000).toISOString() }, {}],
    [
      "a handle outside its directory",
      { handle: { engine: "gvisor", id: "x", sandboxDir: "/tmp", data: {} } },
      {},
    ],
    ["a damaged record", { command_count: -1 }, {}],
  ];
  for (const [why, over, data] of cases) {
    const { id, dir } = await workspace(over, data);
    const before = await readFile(join(dir, "workspace.json"), "utf8");
    assert.equal(plainExec(root, id, 30), undefined, why);
    assert.equal(await readFile(join(dir, "workspace.json"), "utf8"), before, why);
  }
  // A snapshot or reset in progress (or interrupted): the full path recovers it.
  const { id, dir } = await workspace();
  await mkdir(join(dir, "snapshots"));
  await writeFile(join(dir, "snapshots", "op.json"), "{}");
  assert.equal(plainExec(root, id, 30), undefined, "op.json");
  assert.equal(plainExec(root, newId("ws"), 30), undefined, "no such workspace");
});

test("nothing listening on the channel: nothing ran, nothing is logged (the full CLI runs it)", async () => {
  const { id, dir } = await workspace();
  const exec = plainExec(root, id, 30);
  assert.ok(exec);
  assert.equal(await exec.run(request(["true"])), undefined);
  assert.deepEqual(await commandFiles(dir), []);
  assert.equal((await readRec(dir)).command_count, 0);
});

function store(): RecordStore<Rec> {
  return new RecordStore<Rec>({
    root,
    kind: "ws",
    file: "workspace.json",
    idOf: (r) => r.workspace_id,
    notFound: (i) => new PyroError("not_found", i),
    unreadable: (i, why) => new PyroError("invalid_state", `${i}: ${why}`),
    schema: { safeParse: (raw) => ({ success: true, data: raw as Rec }) },
  });
}

const ran: ExecOutcome = {
  exitCode: 0,
  stdout: "",
  stderr: "",
  stdoutTruncated: false,
  stderrTruncated: false,
  timedOut: false,
  execMs: 1,
};

async function logged(id: string, dir: string, run: () => Promise<ExecOutcome | undefined>, extra = {}) {
  const pushed: Rec[] = [];
  const records = store();
  const p = runLoggedExec({
    records,
    rec: await records.load(id),
    dir,
    command: "echo s3cret",
    maxOutputBytes: 16384,
    t0: performance.now(),
    live: {},
    run: async (recorder) => {
      recorder.onStdout(Buffer.from("partial\n"));
      return run();
    },
    pushExpiry: async (r) => {
      pushed.push(r);
    },
    ...extra,
  });
  return { p, pushed };
}

test("a cancelled command is logged as 130 with what it printed; the caller gets the error", async () => {
  const { id, dir } = await workspace();
  const { p, pushed } = await logged(id, dir, async () => {
    throw new PyroError("cancelled", "command cancelled; its processes were killed");
  });
  await assert.rejects(p, (e: PyroError) => e.code === "cancelled");
  const entry = JSON.parse(await readFile(join(dir, "commands", "00000001.json"), "utf8"));
  assert.equal(entry.exit_code, 130);
  assert.equal(await readFile(join(dir, "commands", "00000001.stdout"), "utf8"), "partial\n");
  assert.match(
    await readFile(join(dir, "commands", "00000001.stderr"), "utf8"),
    /\[pyro\] command cancelled/,
  );
  assert.equal(pushed.length, 1, "the new expiry is pushed");
});

test("a sandbox that died marks the workspace failed and leaves no log entry", async () => {
  const { id, dir } = await workspace();
  const { p } = await logged(id, dir, async () => {
    throw new PyroError("sandbox_dead", "sandbox x was killed: out of memory");
  });
  await assert.rejects(p, (e: PyroError) => e.code === "sandbox_dead");
  const rec = await readRec(dir);
  assert.equal(rec.state, "failed");
  assert.equal(rec.reason, "sandbox x was killed: out of memory");
  assert.deepEqual(await commandFiles(dir), []);
});

test("scrubbed text is what is logged; a scrub that fails keeps nothing", async () => {
  const { id, dir } = await workspace();
  const hide = {
    text: (s: string) => s.replaceAll("s3cret", "***"),
    outcome: (o: ExecOutcome) => o,
    error: (e: PyroError) => e,
  };
  const ok = await logged(id, dir, async () => ran, { scrub: async () => hide });
  const r = await ok.p;
  assert.equal(r?.command, "echo ***");
  assert.equal((await readRec(dir)).last_command?.command, "echo ***");
  const bad = await logged(id, dir, async () => ran, {
    scrub: async () => {
      throw new PyroError("invalid_state", "secrets changed");
    },
  });
  await assert.rejects(bad.p, /secrets changed/);
  assert.equal((await readRec(dir)).command_count, 1, "the second command is not logged");
  assert.ok(!(await commandFiles(dir)).some((f) => f.startsWith("running-")), "its output is removed");
});
