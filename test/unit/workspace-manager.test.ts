// WorkspaceManager over the fake engine (test/unit/fake-engine.ts): create, exec, crash
// recovery of an interrupted create, the reaper and delete, without runsc or a VM.
import assert from "node:assert/strict";
import { mkdir, utimes } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, test } from "node:test";
import {
  WorkspaceCreateInput,
  WorkspaceExecInput,
  WorkspaceLogsInput,
} from "../../src/contract/workspace.js";
import { newId } from "../../src/core/ids.js";
import { currentOwner } from "../../src/sandbox/owner.js";
import { readJson } from "../../src/util/json-store.js";
import { WorkspaceManager } from "../../src/workspaces/manager.js";
import { code, deadOwner, editRecord as editRecordAt, FakeEngine, fakeDeps, gone } from "./fake-engine.js";

let engine: FakeEngine;
let ws: WorkspaceManager;
let wsDir: string;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  engine = new FakeEngine("qemu");
  const f = await fakeDeps(engine);
  ws = new WorkspaceManager(f.deps);
  wsDir = f.deps.paths.workspacesDir;
  cleanup = f.cleanup;
});
afterEach(() => cleanup());

const recPath = (id: string) => join(wsDir, id, "workspace.json");
const editRecord = (id: string, change: (r: Record<string, unknown>) => void) =>
  editRecordAt(recPath(id), change);

const create = () => ws.create(WorkspaceCreateInput.parse({ disk_mib: 64 }));
const exec = (workspace_id: string, command: string[]) =>
  ws.exec(WorkspaceExecInput.parse({ workspace_id, command }));

test("create starts a sandbox on the engine passed in, sharing the workspace's files/", async () => {
  const w = await create();
  assert.equal(w.state, "running");
  assert.equal(w.execution_mode, "qemu");
  const sb = engine.sandboxes.get(w.workspace_id);
  assert.ok(sb?.running);
  assert.equal(sb.spec.workspaceDir, join(wsDir, w.workspace_id, "files"));
  assert.equal(sb.spec.sandboxDir, join(wsDir, w.workspace_id, "sandbox"));
  const rec = await readJson<{ state: string; owner: unknown; handle: { id: string } }>(
    recPath(w.workspace_id),
  );
  assert.equal(rec?.state, "running");
  assert.equal(rec?.owner, null);
  assert.equal(rec?.handle.id, w.workspace_id);
});

test("a create whose engine fails leaves nothing behind", async () => {
  engine.failNextCreate = true;
  assert.equal(await code(create()), "engine_failure");
  assert.deepEqual(await ws.list(), []);
  assert.equal(engine.sandboxes.size, 0);
});

test("exec runs in the sandbox, in /workspace, and is logged with its output", async () => {
  const w = await create();
  engine.command = (req) => ({ exitCode: 3, stdout: "out\n", stderr: `cwd=${req.cwd}\n` });
  const r = await exec(w.workspace_id, ["make", "test"]);
  assert.equal(r.exit_code, 3);
  assert.equal(r.stdout, "out\n");
  assert.equal(r.stderr, "cwd=/workspace\n");
  assert.equal(r.sequence, 1);
  assert.deepEqual(engine.calls.find((c) => c.op === "exec")?.argv?.slice(-2), ["make", "test"]);
  const logs = await ws.logs(
    WorkspaceLogsInput.parse({ workspace_id: w.workspace_id, include_output: true }),
  );
  assert.equal(logs.command_count, 1);
  assert.equal(logs.commands[0]?.exit_code, 3);
  assert.equal(logs.commands[0]?.stdout, "out\n");
  assert.equal((await ws.status(w.workspace_id)).command_count, 1);
});

test("status fails a running workspace whose sandbox died, and exec then says sandbox_dead", async () => {
  const w = await create();
  engine.kill(w.workspace_id);
  const s = await ws.status(w.workspace_id);
  assert.equal(s.state, "failed");
  assert.equal(s.reason, "fake engine: sandbox killed");
  assert.equal(await code(exec(w.workspace_id, ["true"])), "sandbox_dead");
});

test("crash recovery: a create whose process died (intent, no handle) is shown failed, refused, then reaped with its orphan", async () => {
  const w = await create();
  const id = w.workspace_id;
  // What a create killed before it wrote the handle leaves: the intent, and a sandbox no
  // record holds (the fake's sandbox from create stays running: an orphan).
  await editRecord(id, (r) => {
    r.state = "creating";
    r.owner = deadOwner();
    r.handle = null;
  });
  const s = await ws.status(id);
  assert.equal(s.state, "failed");
  assert.match(s.reason ?? "", /^interrupted: the pyro process creating it \(pid \d+\) died; delete it$/);
  assert.equal(await code(exec(id, ["true"])), "invalid_state");
  assert.deepEqual(await ws.reap(), [id]);
  assert.equal(engine.sandboxes.has(id), false);
  assert.ok(engine.count("removeOrphan", id) >= 1);
  assert.ok(await gone(join(wsDir, id)));
  assert.equal(await code(ws.status(id)), "not_found");
});

test("a create in progress (live owner) is neither reaped nor deleted", async () => {
  const w = await create();
  await editRecord(w.workspace_id, (r) => {
    r.state = "creating";
    r.owner = currentOwner();
  });
  assert.deepEqual(await ws.reap(), []);
  assert.equal(await code(ws.delete(w.workspace_id)), "invalid_state");
  assert.equal(engine.sandboxes.get(w.workspace_id)?.running, true);
});

test("the reaper expires a workspace past its TTL: sandbox and files go, the tombstone stays", async () => {
  const w = await create();
  const id = w.workspace_id;
  const past = new Date(Date.now() - 1000).toISOString();
  await editRecord(id, (r) => {
    r.expires_at = past;
  });
  assert.deepEqual(await ws.reap(), [id]);
  assert.equal(engine.sandboxes.has(id), false);
  assert.equal(engine.count("destroy", id), 1);
  const s = await ws.status(id);
  assert.equal(s.state, "expired");
  assert.equal(s.reason, `ttl elapsed at ${past}; sandbox and files removed`);
  assert.ok(await gone(join(wsDir, id, "files")));
  assert.equal(await code(exec(id, ["true"])), "expired");
  assert.deepEqual(await ws.reap(), []);
});

test("delete destroys the sandbox and removes the workspace; a second delete is not_found", async () => {
  const w = await create();
  assert.deepEqual(await ws.delete(w.workspace_id), { workspace_id: w.workspace_id, deleted: true });
  assert.equal(engine.sandboxes.size, 0);
  assert.equal(engine.count("destroy", w.workspace_id), 1);
  assert.ok(await gone(join(wsDir, w.workspace_id)));
  assert.equal(await code(ws.delete(w.workspace_id)), "not_found");
  assert.deepEqual(await ws.list(), []);
});

test("the reaper removes an old directory without a record only once no engine runs its sandbox", async () => {
  const id = newId("ws");
  const dir = join(wsDir, id);
  await mkdir(join(dir, "sandbox"), { recursive: true });
  const old = new Date(Date.now() - 3600_000);
  await utimes(dir, old, old);
  engine.leaveOrphan({ id, sandboxDir: join(dir, "sandbox") });
  assert.deepEqual(await ws.reap(), []);
  assert.equal(await gone(dir), false);
  engine.kill(id);
  assert.deepEqual(await ws.reap(), [id]);
  assert.ok(await gone(dir));
});
