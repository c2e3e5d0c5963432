// VmManager over the fake engine (test/unit/fake-engine.ts): the lifecycle, the crash
// recovery of an interrupted start, the reaper and delete, without runsc or a VM.
import assert from "node:assert/strict";
import { mkdir, utimes } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, test } from "node:test";
import { RunInput, VmCreateInput, VmExecInput } from "../../src/contract/vm.js";
import { PyroError } from "../../src/core/errors.js";
import { newId } from "../../src/core/ids.js";
import { currentOwner } from "../../src/sandbox/owner.js";
import { readJson, writeJsonAtomic } from "../../src/util/json-store.js";
import { VmManager } from "../../src/vms/manager.js";
import { code, deadOwner, editRecord as editRecordAt, FakeEngine, fakeDeps, gone } from "./fake-engine.js";

let engine: FakeEngine;
let vms: VmManager;
let vmsDir: string;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  engine = new FakeEngine("qemu");
  const f = await fakeDeps(engine);
  vms = new VmManager(f.deps);
  vmsDir = f.deps.paths.vmsDir;
  cleanup = f.cleanup;
});
afterEach(() => cleanup());

const recPath = (id: string) => join(vmsDir, id, "vm.json");
const editRecord = (id: string, change: (r: Record<string, unknown>) => void) =>
  editRecordAt(recPath(id), change);

test("create writes a record and starts nothing; the engine comes from the registry passed in", async () => {
  const vm = await vms.create(VmCreateInput.parse({}));
  assert.equal(vm.state, "created");
  assert.equal(vm.execution_mode, "qemu");
  assert.equal(engine.count("create"), 0);
  assert.equal((await readJson<{ engine: string }>(recPath(vm.vm_id)))?.engine, "qemu");
  assert.deepEqual(
    (await vms.list()).map((v) => v.vm_id),
    [vm.vm_id],
  );
});

test("exec starts the VM on the engine, runs the command, then deletes the VM and its sandbox", async () => {
  const vm = await vms.create(VmCreateInput.parse({}));
  const r = await vms.exec(VmExecInput.parse({ vm_id: vm.vm_id, command: ["echo", "hi"] }));
  assert.equal(r.exit_code, 0);
  // The fake prints the argv it was given (the command, behind the shell wrapper of toArgv).
  assert.match(r.stdout, /echo hi\n$/);
  assert.equal(engine.count("create", vm.vm_id), 1);
  assert.deepEqual(engine.calls.find((c) => c.op === "exec")?.argv?.slice(-2), ["echo", "hi"]);
  // The contract: a VM used by vm_exec is gone after its command.
  assert.equal(engine.sandboxes.size, 0);
  assert.ok(await gone(join(vmsDir, vm.vm_id)));
  assert.equal(await code(vms.status(vm.vm_id)), "not_found");
});

test("a failed start leaves the VM failed with the engine's reason and no sandbox", async () => {
  const vm = await vms.create(VmCreateInput.parse({}));
  engine.failNextCreate = true;
  assert.equal(await code(vms.start(vm.vm_id)), "engine_failure");
  const s = await vms.status(vm.vm_id);
  assert.equal(s.state, "failed");
  assert.match(s.reason ?? "", /start failed: fake engine: create of/);
  assert.equal(engine.sandboxes.size, 0);
});

test("status fails a running VM whose sandbox died", async () => {
  const vm = await vms.create(VmCreateInput.parse({}));
  assert.equal((await vms.start(vm.vm_id)).state, "running");
  engine.kill(vm.vm_id);
  const s = await vms.status(vm.vm_id);
  assert.equal(s.state, "failed");
  assert.equal(s.reason, "fake engine: sandbox killed");
  // Written, not only shown.
  assert.equal((await readJson<{ state: string }>(recPath(vm.vm_id)))?.state, "failed");
});

test("crash recovery: a start whose process died (intent, no handle) is failed by the reaper and its orphan removed", async () => {
  const vm = await vms.create(VmCreateInput.parse({}));
  await editRecord(vm.vm_id, (r) => {
    r.state = "starting";
    r.owner = deadOwner();
  });
  // What the killed start had made: a sandbox no record holds a handle to.
  engine.leaveOrphan({ id: vm.vm_id, sandboxDir: join(vmsDir, vm.vm_id, "sandbox") });
  assert.deepEqual(await vms.reap(), [vm.vm_id]);
  assert.equal(engine.sandboxes.has(vm.vm_id), false);
  assert.equal(engine.count("removeOrphan", vm.vm_id), 1);
  const s = await vms.status(vm.vm_id);
  assert.equal(s.state, "failed");
  assert.match(s.reason ?? "", /^interrupted: the pyro process starting it \(pid \d+\) died$/);
  // Failed is not the end: it starts again.
  assert.equal((await vms.start(vm.vm_id)).state, "running");
});

test("a start in progress (live owner) is neither reaped nor deleted", async () => {
  const vm = await vms.create(VmCreateInput.parse({}));
  await editRecord(vm.vm_id, (r) => {
    r.state = "starting";
    r.owner = currentOwner();
  });
  assert.deepEqual(await vms.reap(), []);
  assert.equal(await code(vms.delete(vm.vm_id)), "invalid_state");
  assert.equal((await vms.status(vm.vm_id)).state, "starting");
});

test("the reaper expires a VM past its TTL: sandbox destroyed, tombstone kept until delete", async () => {
  const vm = await vms.create(VmCreateInput.parse({}));
  await vms.start(vm.vm_id);
  const past = new Date(Date.now() - 1000).toISOString();
  await editRecord(vm.vm_id, (r) => {
    r.expires_at = past;
  });
  assert.deepEqual(await vms.reap(), [vm.vm_id]);
  assert.equal(engine.sandboxes.has(vm.vm_id), false);
  const s = await vms.status(vm.vm_id);
  assert.equal(s.state, "expired");
  assert.equal(s.reason, `ttl elapsed at ${past}`);
  assert.equal(await code(vms.exec(VmExecInput.parse({ vm_id: vm.vm_id, command: ["true"] }))), "expired");
  // Reaped once: the next round has nothing to do.
  assert.deepEqual(await vms.reap(), []);
  assert.deepEqual(await vms.delete(vm.vm_id), { vm_id: vm.vm_id, deleted: true });
});

test("delete destroys the running sandbox and removes the VM; a second delete is not_found", async () => {
  const vm = await vms.create(VmCreateInput.parse({}));
  await vms.start(vm.vm_id);
  assert.equal(engine.sandboxes.size, 1);
  assert.deepEqual(await vms.delete(vm.vm_id), { vm_id: vm.vm_id, deleted: true });
  assert.equal(engine.sandboxes.size, 0);
  assert.ok(await gone(join(vmsDir, vm.vm_id)));
  assert.equal(await code(vms.delete(vm.vm_id)), "not_found");
  assert.deepEqual(await vms.list(), []);
});

test("the reaper removes what a killed one-shot run left, through the engine its marker names", async () => {
  const id = newId("vm");
  const dir = join(vmsDir, id);
  await mkdir(dir, { recursive: true });
  await writeJsonAtomic(join(dir, "oneshot.json"), { owner: deadOwner(), engine: "qemu" });
  engine.leaveOrphan({ id, sandboxDir: dir });
  // A live run's marker is left alone.
  const live = newId("vm");
  await mkdir(join(vmsDir, live), { recursive: true });
  await writeJsonAtomic(join(vmsDir, live, "oneshot.json"), { owner: currentOwner(), engine: "qemu" });
  const old = new Date(Date.now() - 3600_000);
  await utimes(join(vmsDir, live), old, old);
  assert.deepEqual(await vms.reap(), [id]);
  assert.equal(engine.sandboxes.has(id), false);
  assert.ok(await gone(dir));
  assert.equal(await gone(join(vmsDir, live)), false);
});

// ---- one-shot runs in flight (vm_list kind "run", vm_delete ends one) ----

/** Makes the fake's one-shot run block until its signal aborts; resolves once it has started. */
function blockingRuns(): Promise<string> {
  return new Promise((started) => {
    engine.runOnce = async (spec, req) => {
      started(spec.id);
      await new Promise((_, reject) => {
        const stop = () => reject(new PyroError("cancelled", "run cancelled; the sandbox was removed"));
        if (req.signal?.aborted) stop();
        else req.signal?.addEventListener("abort", stop, { once: true });
      });
      throw new Error("unreachable");
    };
  });
}

test("a one-shot run in flight is listed as a run, with its owner, age and command", async () => {
  const started = blockingRuns();
  const stop = new AbortController();
  const run = vms.run(RunInput.parse({ command: ["sleep", "30"], timeout_seconds: 60 }), {
    tenant: "tok_0123456789abcdef",
    signal: stop.signal,
  });
  const id = await started;
  const [entry] = await vms.list();
  assert.equal(entry?.vm_id, id);
  assert.equal(entry?.kind, "run");
  assert.equal(entry?.state, "running");
  assert.equal(entry?.owner, "tok_0123456789abcdef");
  assert.equal(entry?.command, "sleep 30");
  assert.ok(entry!.age_seconds >= 0 && entry!.age_seconds < 60);
  assert.equal(Date.parse(entry!.expires_at) - Date.parse(entry!.created_at), 60_000);
  // The caller's own cancel: the run ends and is no longer listed.
  stop.abort();
  assert.equal(await code(run), "cancelled");
  assert.deepEqual(await vms.list(), []);
  assert.ok(await gone(join(vmsDir, id)));
});

test("vm_delete of a run this process runs ends it, and its caller is told who ended it", async () => {
  const started = blockingRuns();
  const run = vms.run(RunInput.parse({ command: ["sleep", "30"] }));
  const id = await started;
  const [entry] = await vms.list();
  assert.equal(entry?.owner, null, "a local caller's run has no tenant");
  assert.deepEqual(await vms.delete(id), { vm_id: id, deleted: true });
  await assert.rejects(run, /ended by vm_delete/);
  assert.deepEqual(await vms.list(), []);
  assert.equal(await code(vms.delete(id)), "not_found", "once ended, the id is gone");
});

test("vm_delete of a run another process runs ends it through the engine; a dead runner's run is listed as failed", async () => {
  const id = newId("vm");
  await mkdir(join(vmsDir, id), { recursive: true });
  const marker = {
    owner: currentOwner(),
    engine: "qemu",
    started_at: new Date(Date.now() - 5_000).toISOString(),
    environment: "debian:12",
    command: "sleep 30",
    timeout_seconds: 30,
  };
  await writeJsonAtomic(join(vmsDir, id, "oneshot.json"), marker);
  const [entry] = await vms.list();
  assert.equal(entry?.kind, "run");
  assert.ok(entry!.age_seconds >= 4, `age ${entry?.age_seconds}`);
  assert.deepEqual(await vms.delete(id), { vm_id: id, deleted: true });
  assert.equal(engine.count("removeOrphan", id), 1);
  assert.ok(await gone(join(vmsDir, id)));

  const dead = newId("vm");
  await mkdir(join(vmsDir, dead), { recursive: true });
  await writeJsonAtomic(join(vmsDir, dead, "oneshot.json"), { ...marker, owner: deadOwner() });
  const [failed] = await vms.list();
  assert.equal(failed?.state, "failed");
  assert.match(failed?.reason ?? "", /interrupted/);
});
