import assert from "node:assert/strict";
import { test } from "node:test";
import { WorkspaceCreateInput } from "../../src/contract/workspace.js";
import { PyroError } from "../../src/core/errors.js";
import { GvisorEngine } from "../../src/engines/gvisor/engine.js";
import { networkFromInput } from "../../src/network/input.js";
import { formatPoolKey, keyFor, parsePoolKey, poolConfig, poolKeyId } from "../../src/pool/config.js";
import { poolableWorkspace } from "../../src/pool/workspace-pool.js";

test("#ws keys: a workspace kind of key, told apart from the run's key of the same settings", () => {
  assert.deepEqual(parsePoolKey("debian:12#2x2048#ws"), {
    environment: "debian:12",
    vcpu_count: 2,
    mem_mib: 2048,
    network: false,
    workspace: true,
  });
  for (const k of ["debian:12#ws", "x/y:z#4x512#ws"]) assert.equal(formatPoolKey(parsePoolKey(k)), k);
  assert.notEqual(poolKeyId(parsePoolKey("debian:12#ws")), poolKeyId(parsePoolKey("debian:12")));
  // The directory name is FNV-1a (64-bit) of the key's JSON: the same in every process and
  // release (pools on disk survive upgrades from here on).
  assert.equal(poolKeyId(parsePoolKey("debian:12")), "d89ad76b43eb8c34");
  assert.throws(
    () => parsePoolKey("debian:12#net#ws"),
    (e: unknown) => e instanceof PyroError && /#ws slots have no network/.test(e.message),
  );
  const cfg = poolConfig({ PYRO_POOL_SIZE: "1", PYRO_POOL_KEYS: "debian:12#ws" });
  assert.ok(keyFor(cfg, parsePoolKey("debian:12#ws")));
  assert.equal(keyFor(cfg, parsePoolKey("debian:12")), undefined, "a run never takes a workspace slot");
  const runs = poolConfig({ PYRO_POOL_SIZE: "1", PYRO_POOL_KEYS: "debian:12" });
  assert.equal(keyFor(runs, parsePoolKey("debian:12#ws")), undefined, "nor a workspace a run's sandbox");
});

test("poolableWorkspace: the key's settings, the default disk, network off; secrets, names, labels, TTLs are fine", async () => {
  const ok = async (raw: Record<string, unknown>) => {
    const input = WorkspaceCreateInput.parse(raw);
    return poolableWorkspace(input, await networkFromInput(input));
  };
  assert.equal(await ok({}), true);
  assert.equal(
    await ok({
      seed_path: "/x",
      name: "a",
      labels: { k: "v" },
      ttl_seconds: 60,
      secrets: [{ name: "A", value: "x" }],
    }),
    true,
  );
  assert.equal(await ok({ network_policy: "off" }), true);
  assert.equal(await ok({ disk_mib: 1024 }), false, "another disk size");
  assert.equal(await ok({ network: true }), false);
  assert.equal(await ok({ network_policy: "egress" }), false);
  assert.equal(await ok({ allow_host: ["example.com"] }), false);
  const input = WorkspaceCreateInput.parse({});
  assert.equal(
    poolableWorkspace({ ...input, future_field: "x" } as typeof input, await networkFromInput(input)),
    false,
    "a field the pool does not know",
  );
});

test("gVisor relocate: every host path under the old directory moves, nothing else", () => {
  const e = new GvisorEngine("/s/runsc", {}, "/c");
  const from = "/s/pool/k/making/ws_0123456789abcdef";
  const to = "/s/workspaces/ws_0123456789abcdef";
  const h = e.relocate(
    {
      engine: "gvisor",
      id: "ws_0123456789abcdef",
      sandboxDir: `${from}/sandbox`,
      workspaceDir: `${from}/files`,
      data: {
        ctlDir: `${from}/sandbox/ctl`,
        runDir: `${from}/sandbox/run`,
        containerId: "pyro-ws_0123456789abcdef",
        flags: { binary: "/usr/bin/runsc", global: [] },
        other: `${from}x/y`,
        pid: 7,
      },
    },
    from,
    to,
  );
  assert.equal(h.sandboxDir, `${to}/sandbox`);
  assert.equal(h.workspaceDir, `${to}/files`);
  // The engine's own data (a test of the engine may look inside it).
  const d = h.data as Record<string, unknown>;
  assert.equal(d.ctlDir, `${to}/sandbox/ctl`);
  assert.equal(d.runDir, `${to}/sandbox/run`);
  assert.equal(d.other, `${from}x/y`, "a sibling with the same prefix is not inside");
  assert.equal(d.containerId, "pyro-ws_0123456789abcdef");
  assert.equal(d.pid, 7);
});
