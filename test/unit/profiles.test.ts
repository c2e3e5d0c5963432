import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { after, test } from "node:test";
import { Client } from "@modelcontextprotocol/client";
import { InMemoryTransport } from "@modelcontextprotocol/server";
import { PyroError } from "../../src/core/errors.js";
import { createServer } from "../../src/mcp/server.js";
import { errorForFace } from "../../src/operations/hints.js";
import {
  DEFAULT_PROFILE,
  PROFILES,
  parseProfile,
  profileTools,
  textForTools,
} from "../../src/operations/profiles.js";
import { OPERATIONS } from "../../src/operations/table.js";
import { Runtime } from "../../src/runtime/runtime.js";
import { tempDir } from "../helpers.js";

/** Profiles in-process: which tools each serves, and that nothing a model reads names a tool it lacks. */

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function runtime(): Promise<Runtime> {
  const home = await tempDir("pyro-profiles-unit-");
  dirs.push(home);
  return new Runtime({ env: { ...process.env, PYRO_HOME: home, PYRO_CACHE_DIR: "", PYRO_STATE_DIR: "" } });
}

const ALL_TOOLS: string[] = OPERATIONS.filter((o) => o.mcp).map((o) => o.name);

test("profiles: vm-run < workspace-core (the default) < workspace-full (under 40) < all = every tool", () => {
  assert.equal(DEFAULT_PROFILE, "workspace-core");
  assert.deepEqual(profileTools("vm-run"), ["vm_run", "output_read"]);
  const core = profileTools("workspace-core");
  for (const t of [
    "vm_run",
    "workspace_create",
    "workspace_list",
    "workspace_status",
    "workspace_exec",
    "workspace_delete",
  ])
    assert.ok(core.includes(t), `workspace-core has ${t}`);
  for (const t of ["workspace_sync_push", "vm_create", "vm_reap_expired"])
    assert.ok(!core.includes(t), `workspace-core leaves out ${t}`);
  const full = profileTools("workspace-full");
  for (const t of core) assert.ok(full.includes(t), `workspace-full has ${t}`);
  assert.ok(full.length < 40, `workspace-full serves ${full.length} tools (hosts choose worse past ~40)`);
  assert.deepEqual(
    ALL_TOOLS.filter((t) => !full.includes(t)),
    [
      "vm_create",
      "vm_start",
      "vm_exec",
      "vm_stop",
      "vm_delete",
      "vm_status",
      "vm_network_info",
      "vm_reap_expired",
      "vm_list",
      "workspace_sync_push",
      "workspace_snapshot_delete",
    ],
    "workspace-full leaves out the vm_* lifecycle, sync push and snapshot delete",
  );
  assert.deepEqual(profileTools("all"), ALL_TOOLS);
  assert.deepEqual(profileTools(), core);
  for (const p of PROFILES)
    for (const t of profileTools(p)) assert.ok(ALL_TOOLS.includes(t), `${p}: ${t} is a tool`);
});

test("parseProfile: default, valid names, and a typo answered with the nearest profile", () => {
  assert.equal(parseProfile(undefined), "workspace-core");
  assert.equal(parseProfile("vm-run"), "vm-run");
  assert.throws(
    () => parseProfile("workspace-ful"),
    (e: PyroError) =>
      e.code === "invalid_argument" &&
      /did you mean `workspace-full`/.test(e.message) &&
      /vm-run/.test(e.hint ?? ""),
  );
});

test("textForTools drops the clauses that name a tool the profile lacks", () => {
  const only = new Set(["vm_run"]);
  assert.equal(
    textForTools(
      "Run it. This is the default: prefer vm_run; use workspace_* only for repeated commands. Bye.",
      only,
    ),
    "Run it. This is the default: prefer vm_run. Bye.",
  );
  assert.equal(textForTools("Then call workspace_sync_push. Done.", new Set(["workspace_create"])), "Done.");
  // Field names that look like tools are not tools.
  assert.equal(textForTools("Pass vm_id and workspace_id.", only), "Pass vm_id and workspace_id.");
});

/** Every tool name anywhere in a text (descriptions, schemas, instructions). */
function toolNamesIn(text: string): string[] {
  return ALL_TOOLS.filter((t) => new RegExp(`\\b${t}\\b`).test(text));
}

for (const profile of PROFILES) {
  test(`createServer({ profile: "${profile}" }): its tools, and no description names a tool it lacks`, async () => {
    const server = createServer({ runtime: await runtime(), log: () => undefined, profile });
    const [a, b] = InMemoryTransport.createLinkedPair();
    await server.connect(a);
    const client = new Client({ name: "unit", version: "0" });
    await client.connect(b);
    try {
      const { tools } = await client.listTools();
      const names = tools.map((t) => t.name);
      assert.deepEqual(names, profileTools(profile));
      const served = new Set(names);
      const seen = JSON.stringify({ tools, instructions: client.getInstructions() });
      const strays = toolNamesIn(seen).filter((t) => !served.has(t));
      assert.deepEqual(strays, [], `${profile} mentions tools it does not serve`);
      if (!served.has("workspace_create")) assert.doesNotMatch(seen, /workspace_\*/);
    } finally {
      await client.close();
      await server.close();
    }
  });
}

test("hints name a tool only when the profile serves it; otherwise the operator's command", () => {
  const e = new PyroError("seed_rejected", "bad", [
    "push it again with ",
    { op: "workspace_sync_push", args: { workspace_id: "ws_1" } },
  ]);
  assert.match(errorForFace(e, "mcp").hint ?? "", /the `workspace_sync_push` tool/);
  const core = new Set(profileTools("workspace-core"));
  const hint = errorForFace(e, "mcp", core).hint ?? "";
  assert.doesNotMatch(hint, /workspace_sync_push/);
  assert.match(hint, /`pyro workspace sync push ws_1` \(the operator runs this on the host\)/);
});

test("createServer refuses an unknown profile before serving", () => {
  assert.throws(
    () => createServer({ profile: "everything", log: () => undefined }),
    /unknown profile "everything"/,
  );
});
