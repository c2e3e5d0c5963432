import assert from "node:assert/strict";
import { test } from "node:test";
import { PyroError } from "../../src/core/errors.js";
import {
  claimedName,
  formatPoolKey,
  keyFor,
  parseClaimedName,
  parsePoolKey,
  poolConfig,
  poolKeyId,
} from "../../src/pool/config.js";
import { poolableRun } from "../../src/pool/run.js";

test("pool keys: ENV[#VCPUxMEM][#net], defaults 1 vCPU / 1024 MiB / no network", () => {
  assert.deepEqual(parsePoolKey("debian:12"), {
    environment: "debian:12",
    vcpu_count: 1,
    mem_mib: 1024,
    network: false,
  });
  assert.deepEqual(parsePoolKey(" ghcr.io/org/img:1.2#2x2048#net "), {
    environment: "ghcr.io/org/img:1.2",
    vcpu_count: 2,
    mem_mib: 2048,
    network: true,
  });
  for (const k of ["debian:12", "debian:12#2x2048", "debian:12#net", "x/y:z#4x512#net"])
    assert.equal(formatPoolKey(parsePoolKey(k)), k, "format is the inverse of parse");
  for (const bad of ["", "#net", "debian:12#2", "debian:12#fast", "debian:12#0x1024", "debian:12#1x64"])
    assert.throws(
      () => parsePoolKey(bad),
      (e: unknown) => e instanceof PyroError && /PYRO_POOL_KEYS/.test(e.message),
    );
});

test("poolKeyId: a path-safe digest that tells every setting apart", () => {
  const ids = ["debian:12", "debian:12#net", "debian:12#2x1024", "debian:12-build"].map((k) =>
    poolKeyId(parsePoolKey(k)),
  );
  for (const id of ids) assert.match(id, /^[0-9a-f]{16}$/);
  assert.equal(new Set(ids).size, ids.length);
});

test("poolConfig: on by default (2 of debian:12), 0 turns it off; sizes, keys and idle time from the environment, nonsense refused", () => {
  const def = poolConfig({});
  assert.equal(def.size, 2);
  assert.equal(def.idleSeconds, 900);
  assert.deepEqual(def.keys.map(formatPoolKey), ["debian:12"], "one-shot runs of the default environment");
  assert.ok(keyFor(def, parsePoolKey("debian:12")), "a plain run is pooled out of the box");
  assert.equal(keyFor(def, parsePoolKey("debian:12#ws")), undefined, "workspaces stay opt-in (#ws)");
  const off = poolConfig({ PYRO_POOL_SIZE: "0" });
  assert.equal(keyFor(off, parsePoolKey("debian:12")), undefined, "size 0: no pool at all");
  const on = poolConfig({
    PYRO_POOL_SIZE: "2",
    PYRO_POOL_KEYS: "debian:12, debian:12#2x2048",
    PYRO_POOL_IDLE_SECONDS: "60",
  });
  assert.equal(on.size, 2);
  assert.equal(on.idleSeconds, 60);
  assert.ok(keyFor(on, parsePoolKey("debian:12")));
  assert.ok(keyFor(on, parsePoolKey("debian:12#2x2048")));
  assert.equal(keyFor(on, parsePoolKey("debian:12#net")), undefined, "another network setting: no pool");
  assert.equal(keyFor(on, parsePoolKey("debian:12#1x2048")), undefined);
  assert.throws(() => poolConfig({ PYRO_POOL_SIZE: "two" }), /PYRO_POOL_SIZE/);
  assert.throws(() => poolConfig({ PYRO_POOL_SIZE: "-1" }), /PYRO_POOL_SIZE/);
  assert.throws(() => poolConfig({ PYRO_POOL_IDLE_SECONDS: "1" }), /PYRO_POOL_IDLE_SECONDS/);
});

test("a claim's file name carries its deadline and pid, and nothing else parses as one", () => {
  const n = claimedName("vm_0123456789abcdef", 1_800_000_000_500, 4242);
  assert.equal(n, "vm_0123456789abcdef.1800000001.4242.json");
  assert.deepEqual(parseClaimedName(n), {
    id: "vm_0123456789abcdef",
    deadlineMs: 1_800_000_001_000,
    pid: 4242,
  });
  for (const bad of [
    "vm_0123456789abcdef.json",
    "../x.1.2.json",
    "vm_0123.1.2.json",
    "vm_0123456789abcdef.1.2.json.tmp",
  ])
    assert.equal(parseClaimedName(bad), undefined);
});

test("poolableRun: only runs that ask for nothing a pooled sandbox lacks", () => {
  const base = { environment: "debian:12", command: ["true"], vcpu_count: 1, mem_mib: 1024, network: false };
  assert.equal(poolableRun(base), true);
  assert.equal(
    poolableRun({ ...base, timeout_seconds: 5, max_output_bytes: 100, allow_host_compat: false }),
    true,
  );
  assert.equal(poolableRun({ ...base, secrets: ["A"] }), false, "a field the pool does not know");
  assert.equal(poolableRun({ ...base, secrets: [] }), true, "an empty one is nothing asked");
  assert.equal(poolableRun({ ...base, publish_ports: [8080] }), false);
  assert.equal(poolableRun({ ...base, network_policy: "egress" }), false);
});

test("#qemu keys: parsed, formatted back, hashed apart from gVisor's, matched by engine", () => {
  const q = parsePoolKey("debian:12#2x2048#qemu");
  assert.equal(q.engine, "qemu");
  assert.equal(formatPoolKey(q), "debian:12#2x2048#qemu");
  const g = parsePoolKey("debian:12#2x2048");
  assert.notEqual(poolKeyId(q), poolKeyId(g));
  const cfg = { size: 1, keys: [q], idleSeconds: 900 };
  const want = { environment: "debian:12", vcpu_count: 2, mem_mib: 2048, network: false };
  assert.equal(keyFor(cfg, want), undefined, "a gVisor run does not take a microVM");
  assert.deepEqual(keyFor(cfg, { ...want, engine: "qemu" }), q);
  assert.throws(() => parsePoolKey("debian:12#ws#qemu"), /#ws slots are gVisor sandboxes/);
});
