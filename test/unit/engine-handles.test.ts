import assert from "node:assert/strict";
import { test } from "node:test";
import { PyroError } from "../../src/core/errors.js";
import { execChannel, expiryDir, sandboxPid } from "../../src/engines/channel.js";
import { fcData, fcDataLoose } from "../../src/engines/firecracker/handle.js";
import { GvisorEngine } from "../../src/engines/gvisor/engine.js";
import { gvisorData, gvisorDataOrUndefined } from "../../src/engines/gvisor/handle.js";
import { HostEngine } from "../../src/engines/host/engine.js";
import { hostData } from "../../src/engines/host/handle.js";
import { qemuData, qemuDataLoose } from "../../src/engines/qemu/handle.js";
import type { Engine, EngineName, SandboxHandle } from "../../src/engines/types.js";
import { HandleSchema } from "../../src/sandbox/sandbox-record.js";

/**
 * Each engine parses its own handle data (engines/<engine>/handle.ts): what the current
 * engine writes, what older pyro releases wrote (records are never migrated), and damaged
 * data (a hand edit, a torn write) that must be refused by name, not cast and used.
 */

const ID = "ws_0123456789abcdef";
const DIR = `/var/lib/pyro/workspaces/${ID}`;
const handle = (engine: EngineName, data: unknown): SandboxHandle =>
  ({ engine, id: ID, sandboxDir: `${DIR}/sandbox`, data }) as SandboxHandle;
const damaged = (why: RegExp) => (e: unknown) =>
  e instanceof PyroError && e.code === "invalid_state" && why.test(e.message) && e.message.includes(ID);

const FLAGS = { binary: "/usr/bin/runsc", global: ["--root=/r", "--network=none"] };
/** What createSandbox writes today (JSON, as a record holds it). */
const GVISOR_NOW = {
  flags: FLAGS,
  containerId: `pyro-${ID}`,
  ctlDir: `${DIR}/sandbox/ctl`,
  runDir: `${DIR}/sandbox/run`,
  init: true,
  execSocket: `${DIR}/sandbox/sock/exec.sock`,
  memMib: 1024,
  pidsLimit: 512,
  pid: 4242,
};
/** The first release's handle (commit 1acd322): flags and container id, the pid once started. */
const GVISOR_FIRST = { flags: FLAGS, containerId: `pyro-${ID}`, pid: 77 };

test("gVisor handle: today's data parses as written, every field typed", () => {
  const d = gvisorData(handle("gvisor", JSON.parse(JSON.stringify(GVISOR_NOW))));
  assert.deepEqual(d, GVISOR_NOW);
  assert.equal(d.flags?.binary, "/usr/bin/runsc");
});

test("gVisor handle: an old record's data (no init, channel, run dir, limits) still loads", () => {
  const d = gvisorData(handle("gvisor", GVISOR_FIRST));
  assert.equal(d.containerId, `pyro-${ID}`);
  assert.equal(d.init, undefined);
  assert.equal(d.execSocket, undefined);
  // Keys of a newer pyro are kept, not refused.
  const newer = { ...GVISOR_FIRST, later: { x: 1 } };
  assert.deepEqual(gvisorData(handle("gvisor", newer)), newer);
  // No exec channel then: the fast paths leave it to the full path, which uses `runsc exec`.
  assert.equal(execChannel(handle("gvisor", GVISOR_FIRST)), undefined);
  assert.equal(sandboxPid(handle("gvisor", GVISOR_FIRST)), 77);
  assert.equal(new GvisorEngine("/tmp/pyro-test-runsc").hasInit(handle("gvisor", GVISOR_FIRST)), false);
});

test("gVisor handle: damaged data is refused with what is wrong, never cast", () => {
  const cases: [unknown, RegExp][] = [
    [null, /data is not an object/],
    [[1, 2], /data is not an object/],
    [{ flags: FLAGS }, /containerId/],
    [{ ...GVISOR_NOW, containerId: 7 }, /containerId/],
    [{ ...GVISOR_NOW, execSocket: ["x"] }, /execSocket is not a string/],
    [{ ...GVISOR_NOW, pid: "4242" }, /pid is not a whole number/],
    [{ ...GVISOR_NOW, pid: -1 }, /pid is not a whole number/],
    [{ ...GVISOR_NOW, init: "yes" }, /init is not a boolean/],
    [{ ...GVISOR_NOW, flags: { binary: "/usr/bin/runsc" } }, /flags/],
    [{ ...GVISOR_NOW, flags: { binary: "runsc", global: [1] } }, /flags/],
  ];
  for (const [data, why] of cases) {
    assert.throws(() => gvisorData(handle("gvisor", data)), damaged(why), JSON.stringify(data));
    assert.equal(gvisorDataOrUndefined(handle("gvisor", data)), undefined);
    // What the fast paths and the pool see of it: nothing to use.
    assert.equal(execChannel(handle("gvisor", data)), undefined);
    assert.equal(sandboxPid(handle("gvisor", data)), undefined);
  }
});

test("exec channel: a running gVisor sandbox's socket, pid and expiry directory; no other engine's", () => {
  assert.deepEqual(execChannel(handle("gvisor", GVISOR_NOW)), {
    socket: GVISOR_NOW.execSocket,
    pid: 4242,
    ctlDir: GVISOR_NOW.ctlDir,
  });
  assert.equal(expiryDir(handle("gvisor", GVISOR_NOW)), GVISOR_NOW.ctlDir);
  // The same fields under another engine's name mean nothing: that engine does not parse them so.
  for (const e of ["qemu", "firecracker", "host"] as const)
    assert.equal(execChannel(handle(e, GVISOR_NOW)), undefined, e);
  assert.equal(sandboxPid(handle("host", GVISOR_NOW)), undefined);
});

const QEMU_FILES = {
  disk: `${DIR}/sandbox/disk.qcow2`,
  consoleLog: `${DIR}/sandbox/console.log`,
  qemuLog: `${DIR}/sandbox/qemu.log`,
  agentSocket: "/tmp/pyro-q/agent.sock",
  qmpSocket: "/tmp/pyro-q/qmp.sock",
  socketDir: "/tmp/pyro-q",
};
const QEMU_NOW = {
  pid: 999,
  binary: "/usr/bin/qemu-system-x86_64",
  accel: "kvm",
  files: QEMU_FILES,
  marker: "/tmp/pyro-q/qmp.sock",
  boot: { mode: "restore", ms: 310 },
  snapshotKey: "abc",
  warnings: [],
  ctlDir: `${DIR}/sandbox/ctl`,
  watchPid: 1001,
};

test("QEMU handle: today's data, one without a TTL watchdog (older), and damaged data", () => {
  assert.deepEqual(qemuData(handle("qemu", QEMU_NOW)), QEMU_NOW);
  const { ctlDir: _c, watchPid: _w, ...noTtl } = QEMU_NOW;
  assert.equal(qemuData(handle("qemu", noTtl)).ctlDir, undefined);
  assert.equal(sandboxPid(handle("qemu", QEMU_NOW)), 999);
  assert.equal(expiryDir(handle("qemu", QEMU_NOW)), QEMU_NOW.ctlDir);
  assert.equal(expiryDir(handle("qemu", noTtl)), undefined);
  assert.equal(execChannel(handle("qemu", QEMU_NOW)), undefined, "QEMU's commands go through its agent");
  for (const [data, why] of [
    [{ ...QEMU_NOW, pid: "999" }, /pid/],
    [{ ...QEMU_NOW, marker: undefined }, /marker/],
    [{ ...QEMU_NOW, files: { ...QEMU_FILES, qmpSocket: 3 } }, /files/],
    [{ ...QEMU_NOW, watchPid: "1" }, /watchPid/],
    ["qemu", /not an object/],
  ] as [unknown, RegExp][])
    assert.throws(() => qemuData(handle("qemu", data)), damaged(why), JSON.stringify(data));
  // Destroy still finds what it can use of a damaged handle: the process and its files.
  assert.deepEqual(qemuDataLoose(handle("qemu", { pid: 5, marker: "m", files: { socketDir: "/tmp/q" } })), {
    pid: 5,
    marker: "m",
    files: { socketDir: "/tmp/q" },
  });
  assert.deepEqual(qemuDataLoose(handle("qemu", { pid: "5", files: "x" })), {});
});

test("Firecracker handle: today's data and damaged data", () => {
  const files = {
    apiSocket: "/tmp/f/api.sock",
    vsockSocket: "/tmp/f/v.sock",
    disk: "/d",
    consoleLog: "/c",
    socketDir: "/tmp/f",
  };
  const now = { pid: 12, files, marker: "/tmp/f/api.sock", boot: { mode: "cold", ms: 800 } };
  assert.deepEqual(fcData(handle("firecracker", now)), now);
  assert.throws(() => fcData(handle("firecracker", { ...now, files: {} })), damaged(/files/));
  assert.throws(() => fcData(handle("firecracker", { ...now, pid: null })), damaged(/pid/));
  assert.deepEqual(fcDataLoose(handle("firecracker", { pid: 12 })), { pid: 12 });
});

test("host handle: running until stopped; anything else reads as running, as always", async () => {
  assert.deepEqual(hostData(handle("host", { running: true })), { running: true });
  assert.deepEqual(hostData(handle("host", { running: false })), { running: false });
  for (const d of [{}, null, "x", { running: "no" }]) assert.equal(hostData(handle("host", d)).running, true);
  const engine = new HostEngine();
  const h = handle("host", { running: true });
  await engine.stop(h);
  assert.equal((await engine.inspect(h)).state, "stopped");
});

test("records: a stored handle's data is any JSON object (each engine parses its own), nothing else", () => {
  const stored = (data: unknown) => ({ engine: "gvisor", id: ID, sandboxDir: `${DIR}/sandbox`, data });
  for (const data of [GVISOR_NOW, GVISOR_FIRST, QEMU_NOW, {}])
    assert.ok(HandleSchema.safeParse(stored(data)).success, JSON.stringify(data));
  for (const data of [null, [], "x", 3, undefined])
    assert.ok(!HandleSchema.safeParse(stored(data)).success, JSON.stringify(data));
});

test("engines state every trait, and the capabilities the code above asks for are where they belong", () => {
  // As the code above sees them: the Engine interface, capabilities checked by presence.
  const gv: Engine = new GvisorEngine("/tmp/pyro-test-runsc");
  const host: Engine = new HostEngine();
  for (const k of ["freeze", "thaw", "settle", "hasInit", "relocate"] as const)
    assert.equal(typeof gv[k], "function", `gVisor.${k}`);
  assert.equal(host.freeze, undefined, "host_compat has nothing to freeze");
  assert.equal(host.traits.isolated, false);
  assert.equal(gv.traits.isolated, true);
  assert.equal(gv.hasInit?.(handle("gvisor", GVISOR_NOW)), true);
  // A trait-less engine would make every question above it answer `undefined` (falsy) silently.
  for (const e of [gv, host])
    for (const k of [
      "isolated",
      "sharedWorkspaceDir",
      "diskImage",
      "guestOnlySpecialFiles",
      "secretsMount",
      "userNetwork",
      "egressPolicy",
      "sessionsOverExec",
      "pool",
    ])
      assert.notEqual(
        (e.traits as unknown as Record<string, unknown>)[k],
        undefined,
        `${e.name}.traits.${k}`,
      );
});
