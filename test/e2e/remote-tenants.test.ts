import assert from "node:assert/strict";
import { test } from "node:test";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import * as z from "zod";
import { Pyro, type PyroError } from "../../src/index.js";
import { workspaceRefFields } from "../../src/operations/refs.js";
import { OPERATIONS, type Operation } from "../../src/operations/table.js";
import { runscList, type TestState, withGvisorState } from "../helpers.js";
import { type Call, createToken, type Json, mcpClient, ok, startHttpServer } from "../remote-helpers.js";

/**
 * Issue 25: tenants of `pyro mcp serve --http` meet through nothing, names included. Tenant
 * A's workspace is reached by tenant B neither by its name nor by its id, in any operation
 * that takes a workspace (walked from the operation table, so operations added later are
 * covered), and the refusal is word for word an unknown reference's; names are per tenant
 * (both may have a `main`, each resolving to its own). One sandbox per tenant: the refusals
 * start nothing.
 */

/** Values for the required fields of an operation, so a call passes validation and reaches the lookup. */
const SAMPLES: unknown[] = ["x", ["true"], 1, true, {}];
function argsFor(op: Operation, ref: string): Json {
  const refs = workspaceRefFields(op.input);
  const args: Json = {};
  for (const [k, t] of Object.entries(op.input.shape as Record<string, z.ZodType>)) {
    if (refs.includes(k)) args[k] = ref;
    else if (!t.safeParse(undefined).success) {
      args[k] = t instanceof z.ZodEnum ? t.options[0] : SAMPLES.find((v) => t.safeParse(v).success);
    }
  }
  assert.ok(op.input.safeParse(args).success, `${op.name}: test arguments ${JSON.stringify(args)} are valid`);
  return args;
}

/** The error with the reference taken out: another tenant's and an unknown one must then be equal. */
async function refusal(call: Call, tool: string, args: Json, ref: string): Promise<Json> {
  const r = await call(tool, args);
  if (r.ok)
    assert.fail(`${tool} ${JSON.stringify(args)} succeeded for another tenant: ${JSON.stringify(r.r)}`);
  assert.ok(r.error, `${tool}: the error as data`);
  const strip = (s: unknown) => (typeof s === "string" ? s.split(ref).join("<REF>") : s);
  return { code: r.error.code, message: strip(r.error.message), hint: strip(r.error.hint) };
}

test("tenants over HTTP: names are per tenant; another tenant's name or id is not_found like an unknown one, in every workspace operation", async (t) => {
  await withGvisorState(t, async (c: TestState) => {
    const a = await createToken(c.env, "tenant-a");
    const b = await createToken(c.env, "tenant-b");
    const server = await startHttpServer(c.env, ["--profile", "all"]);
    const clients: Client[] = [];
    try {
      const A = await mcpClient(server.url, a.token);
      const B = await mcpClient(server.url, b.token);
      clients.push(A.client, B.client);

      // Every MCP operation with a workspace reference field, all of them served here.
      const served = new Set((await B.client.listTools()).tools.map((x) => x.name));
      const walked = (OPERATIONS as readonly Operation[]).filter(
        (op) => op.mcp && workspaceRefFields(op.input).length > 0,
      );
      assert.ok(walked.length >= 30, `${walked.length} operations take a workspace`);
      for (const op of walked) assert.ok(served.has(op.name), `${op.name} is a tool of the all profile`);

      // A: one workspace called "secret", with a marker, a command, a shell and a snapshot.
      const wsA = ok(await A.call("workspace_create", { name: "secret" })).workspace_id as string;
      ok(await A.call("workspace_file_write", { workspace_id: "secret", path: "marker", content: "A\n" }));
      assert.equal(
        ok(await A.call("workspace_exec", { workspace_id: "secret", command: "cat marker" })).stdout,
        "A\n",
      );
      const shellA = ok(await A.call("shell_open", { workspace_id: "secret" })).shell_id as string;
      ok(await A.call("workspace_snapshot_create", { workspace_id: "secret", name: "snap-a" }));

      // B, by A's name and by A's id, in every operation: refused exactly as an unknown one.
      const fakeId = "ws_0000000000000000";
      for (const op of walked) {
        const byName = await refusal(B.call, op.name, argsFor(op, "secret"), "secret");
        assert.equal(byName.code, "not_found", `${op.name} by name: ${JSON.stringify(byName)}`);
        assert.deepEqual(
          byName,
          await refusal(B.call, op.name, argsFor(op, "no-such-name"), "no-such-name"),
          `${op.name}: another tenant's name answers as an unknown name`,
        );
        const byId = await refusal(B.call, op.name, argsFor(op, wsA), wsA);
        assert.equal(byId.code, "not_found", `${op.name} by id: ${JSON.stringify(byId)}`);
        assert.deepEqual(
          byId,
          await refusal(B.call, op.name, argsFor(op, fakeId), fakeId),
          `${op.name}: another tenant's id answers as an unknown id`,
        );
      }
      assert.deepEqual(
        await refusal(B.call, "output_read", { output_id: `${wsA}:1` }, wsA),
        await refusal(B.call, "output_read", { output_id: `${fakeId}:1` }, fakeId),
      );
      assert.deepEqual(ok(await B.call("workspace_list")).workspaces, [], "B lists none of A's");

      // B's own "secret" (the name A has: names are per tenant); A's shell and snapshot are
      // unknown in it, as any other shell id or snapshot name.
      const wsB = ok(await B.call("workspace_create", { name: "secret" })).workspace_id as string;
      assert.notEqual(wsB, wsA);
      ok(await B.call("workspace_file_write", { workspace_id: "secret", path: "marker", content: "B\n" }));
      for (const [tool, field, theirs, unknown, extra] of [
        ["shell_read", "shell_id", shellA, "sh_000000000000", {}],
        ["shell_close", "shell_id", shellA, "sh_000000000000", {}],
        ["workspace_snapshot_delete", "name", "snap-a", "snap-none", {}],
        ["workspace_fork", "snapshot", "snap-a", "snap-none", {}],
        ["workspace_reset", "snapshot", "snap-a", "snap-none", {}],
      ] as const) {
        const mine = await refusal(
          B.call,
          tool,
          { workspace_id: "secret", [field]: theirs, ...extra },
          theirs,
        );
        assert.equal(mine.code, "not_found", `${tool}: ${JSON.stringify(mine)}`);
        assert.deepEqual(
          mine,
          await refusal(B.call, tool, { workspace_id: "secret", [field]: unknown, ...extra }, unknown),
          `${tool}: A's ${field} in B's workspace answers as an unknown one`,
        );
      }

      // Both rename theirs to "main" (update checks names per tenant too); each "main" is its own.
      ok(await A.call("workspace_update", { workspace_id: "secret", name: "main" }));
      ok(await B.call("workspace_update", { workspace_id: "secret", name: "main" }));
      assert.equal(
        ok(await A.call("workspace_exec", { workspace_id: "main", command: "cat marker" })).stdout,
        "A\n",
      );
      assert.equal(
        ok(await B.call("workspace_exec", { workspace_id: "main", command: "cat marker" })).stdout,
        "B\n",
      );
      assert.equal(ok(await A.call("workspace_status", { workspace_id: "main" })).workspace_id, wsA);
      assert.equal(ok(await B.call("workspace_status", { workspace_id: "main" })).workspace_id, wsB);
      const listed = async (call: Call) =>
        ok(await call("workspace_list")).workspaces.map((w: Json) => [w.workspace_id, w.name]);
      assert.deepEqual(await listed(A.call), [[wsA, "main"]]);
      assert.deepEqual(await listed(B.call), [[wsB, "main"]]);
      // Within one tenant a name is still unique.
      const dup = await A.call("workspace_create", { name: "main" });
      assert.equal(dup.ok, false);
      if (!dup.ok) {
        assert.equal(dup.code, "invalid_argument");
        assert.match(dup.text, new RegExp(`"main" is taken by workspace ${wsA}`));
      }
    } finally {
      for (const cl of clients) await cl.close().catch(() => undefined);
      assert.equal(await server.stop(), 0, server.log().slice(-2000));
    }

    // A local caller (no tenant) has its own namespace: the tenants' "main" is not its name.
    const local = new Pyro({ env: c.env });
    await assert.rejects(
      () => local.statusWorkspace("main"),
      (e: PyroError) => e.code === "not_found" && /no workspace named "main"/.test(e.message),
    );
    for (const w of await local.listWorkspaces()) await local.deleteWorkspace(w.workspace_id);
    assert.deepEqual(await runscList(c.stateDir), []);
  });
});
