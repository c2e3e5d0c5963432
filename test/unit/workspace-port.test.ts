import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { Runtime } from "../../src/runtime/runtime.js";
import { tempDir } from "../helpers.js";

/**
 * The workspace capabilities behind one narrow port (workspaces/port.ts): none of them
 * imports the manager, nothing inside workspaces/ imports in a cycle, snapshot recovery is an
 * intent hook the Runtime registers with the manager, and the Workspace facade binds an id.
 */

const WS_DIR = resolve(import.meta.dirname, "../../src/workspaces");

/** The workspaces/ files each file imports (type imports included). */
function workspaceImports(): Map<string, Set<string>> {
  const files = readdirSync(WS_DIR).filter((f) => f.endsWith(".ts"));
  const edges = new Map<string, Set<string>>();
  for (const f of files) {
    const src = readFileSync(join(WS_DIR, f), "utf8");
    const out = new Set<string>();
    for (const m of src.matchAll(/(?:import|export)\s[^;]*?from\s+"([^"]+)"/gs)) {
      const spec = m[1]!;
      if (!spec.startsWith(".")) continue;
      const target = resolve(dirname(join(WS_DIR, f)), spec.replace(/\.js$/, ".ts"));
      if (dirname(target) === WS_DIR) out.add(target.slice(WS_DIR.length + 1));
    }
    edges.set(f, out);
  }
  return edges;
}

test("only the composition (workspace.ts) imports the manager: capabilities get the port", () => {
  const importers = [...workspaceImports()]
    .filter(([, to]) => to.has("manager.ts"))
    .map(([from]) => from)
    .sort();
  assert.deepEqual(importers, ["workspace.ts"]);
});

test("no import cycle inside workspaces/ (type imports included)", () => {
  const edges = workspaceImports();
  const cycles: string[] = [];
  // Depth-first search with the path on the stack: an edge back into it is a cycle.
  const state = new Map<string, "open" | "done">();
  const visit = (f: string, path: string[]) => {
    state.set(f, "open");
    for (const t of edges.get(f) ?? []) {
      if (state.get(t) === "open") cycles.push([...path.slice(path.indexOf(t)), t].join(" -> "));
      else if (!state.has(t)) visit(t, [...path, t]);
    }
    state.set(f, "done");
  };
  for (const f of edges.keys()) if (!state.has(f)) visit(f, [f]);
  assert.deepEqual(cycles, []);
});

let stateDir: string;
let rt: Runtime;
const id = "ws_0123456789abcdef";
before(async () => {
  stateDir = await tempDir("pyro-unit-port-");
  rt = new Runtime({ env: { ...process.env, PYRO_STATE_DIR: stateDir } });
});
after(async () => {
  const { rm } = await import("node:fs/promises");
  await rm(stateDir, { recursive: true, force: true });
});

/** A stopped workspace record (no sandbox) and a snapshot operation whose process died. */
async function stoppedWorkspaceWithDeadOp(): Promise<string> {
  const dir = join(stateDir, "workspaces", id);
  await mkdir(join(dir, "snapshots"), { recursive: true, mode: 0o700 });
  const now = new Date().toISOString();
  await writeFile(
    join(dir, "workspace.json"),
    JSON.stringify({
      workspace_id: id,
      environment: "debian:12",
      state: "stopped",
      reason: null,
      created_at: now,
      expires_at: new Date(Date.now() + 3_600_000).toISOString(),
      vcpu_count: 1,
      mem_mib: 512,
      network: false,
      engine: "host",
      execution_mode: "host_compat",
      handle: null,
      owner: null,
      command_count: 0,
      last_command: null,
      workspace_seed: {
        mode: "empty",
        seed_path: null,
        destination: "/workspace",
        entry_count: 0,
        bytes_written: 0,
      },
    }),
  );
  // pid 2^22 + 1 is above Linux's pid_max: never alive.
  const opPath = join(dir, "snapshots", "op.json");
  await writeFile(
    opPath,
    JSON.stringify({ op: "delete", name: "s1", owner: { pid: 4_194_305, start: 1 }, started_at: now }),
  );
  return opPath;
}

test("a dead process's snapshot operation is finished by the manager's recovery hook (status)", async () => {
  const opPath = await stoppedWorkspaceWithDeadOp();
  assert.ok(existsSync(opPath));
  const st = await rt.workspaces.status(id);
  assert.equal(st.state, "stopped");
  // Registered by the Runtime (WorkspaceCapabilities): the manager itself knows no snapshots.
  assert.equal(existsSync(opPath), false, "the interrupted operation was recovered");
});

test("the Workspace facade binds the id to every capability namespace", async () => {
  const ws = rt.workspace(id);
  assert.equal(ws.id, id);
  assert.deepEqual(Object.keys(ws.files).sort(), [
    "applyPatch",
    "diff",
    "edit",
    "export",
    "list",
    "push",
    "read",
    "write",
  ]);
  assert.deepEqual(Object.keys(ws.lifecycle).sort(), ["pause", "resume", "start", "stop"]);
  assert.equal((await ws.status()).workspace_id, id);
  assert.deepEqual(await ws.snapshots.list(), { workspace_id: id, snapshots: [] });
  // A stopped workspace has no sandbox: the capability's own error, through the facade.
  await assert.rejects(ws.shells.list(), (e: Error & { code?: string }) => e.code === "invalid_state");
});
