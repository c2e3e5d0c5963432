import assert from "node:assert/strict";
import { test } from "node:test";
import { Pyro, WorkspaceHandle } from "../../src/index.js";

/**
 * The SDK handle mirrors the runtime's Workspace facade (ws.files, ws.snapshots,
 * ws.lifecycle): each namespaced member calls the same Pyro method, with the same input, as
 * the flat handle method it stands for. No sandbox: Pyro's methods are recorded, not run.
 */
test("WorkspaceHandle namespaces call the flat methods' operations", async () => {
  const calls: [string, unknown[]][] = [];
  const pyro = new Pyro();
  const record =
    (name: string, result: unknown = {}) =>
    (...args: unknown[]) => {
      calls.push([name, args]);
      return Promise.resolve(result);
    };
  const stub = pyro as unknown as Record<string, unknown>;
  const status = { workspace_id: "ws_0123456789abcdef", state: "running" };
  stub.diffWorkspace = record("diffWorkspace");
  stub.exportWorkspace = record("exportWorkspace");
  stub.applyWorkspacePatch = record("applyWorkspacePatch");
  stub.resetWorkspace = record("resetWorkspace");
  stub.statusWorkspace = record("statusWorkspace", status);
  stub.forkWorkspace = record("forkWorkspace", { workspaces: [status] });
  for (const step of ["stop", "start", "pause", "resume"])
    stub[`${step}Workspace`] = record(`${step}Workspace`, { ...status, action: step });
  const ws = new WorkspaceHandle(pyro, status as never);
  const id = status.workspace_id;

  await ws.files.diff({ stat: true });
  await ws.files.export("./out", { changedOnly: true });
  await ws.files.applyPatch("--- a\n+++ b\n", { check: true });
  await ws.snapshots.reset("s1");
  const forks = await ws.snapshots.fork({ count: 1 });
  for (const step of ["stop", "start", "pause", "resume"] as const) await ws.lifecycle[step]();

  assert.deepEqual(calls, [
    ["diffWorkspace", [id, { stat: true }]],
    ["exportWorkspace", [id, { output: "./out", changedOnly: true }]],
    ["applyWorkspacePatch", [id, { patch: "--- a\n+++ b\n", check: true }]],
    ["resetWorkspace", [id, { snapshot: "s1" }]],
    // reset refreshes the handle's status, as the flat reset does.
    ["statusWorkspace", [id]],
    ["forkWorkspace", [id, { count: 1 }]],
    ["stopWorkspace", [id]],
    ["startWorkspace", [id]],
    ["pauseWorkspace", [id]],
    ["resumeWorkspace", [id]],
  ]);
  assert.ok(forks[0] instanceof WorkspaceHandle);
  // The lifecycle namespace updates status like the flat methods.
  assert.equal(ws.status.state, "running");
  assert.equal("action" in ws.status, false);
});
