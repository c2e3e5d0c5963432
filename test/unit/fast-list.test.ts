import assert from "node:assert/strict";
import { test } from "node:test";
import { parseFastList } from "../../src/cli/fast-list.js";
import { plainRecordShape } from "../../src/workspaces/list-view.js";
import { WorkspaceRecordSchema } from "../../src/workspaces/record.js";

const WS = "ws_0123456789abcdef";
const DIR = `/state/workspaces/${WS}`;

/** A record with every optional field there, as a recent pyro writes it. */
const FULL = {
  workspace_id: WS,
  environment: "debian:12",
  state: "running",
  reason: null,
  created_at: "2026-12-07T10:00:00.000Z",
  expires_at: "2026-12-07T11:00:00.000Z",
  ttl_seconds: 3600,
  max_expires_at: "2026-12-08T10:00:00.000Z",
  last_activity_at: "2026-12-07T10:05:00.000Z",
  vcpu_count: 1,
  mem_mib: 512,
  disk_mib: 4096,
  disk_enforced: true,
  network: true,
  network_spec: {
    policy: "egress+published-ports",
    allow_cidrs: ["10.0.0.0/8"],
    deny_cidrs: [],
    allow_hosts: ["example.com"],
    publish: [{ host_port: 8080, guest_port: 80 }],
  },
  engine: "gvisor",
  execution_mode: "gvisor",
  handle: {
    engine: "gvisor",
    id: WS,
    sandboxDir: `${DIR}/sandbox`,
    workspaceDir: `${DIR}/files`,
    data: { containerId: `pyro-${WS}`, pid: 1234 },
  },
  owner: { pid: 99, start: 12 },
  command_count: 2,
  last_command: {
    sequence: 2,
    command: "make test",
    exit_code: 0,
    started_at: "2026-12-07T10:04:00.000Z",
    duration_ms: 900,
  },
  workspace_seed: {
    mode: "directory",
    seed_path: "/src",
    destination: "/workspace",
    entry_count: 3,
    bytes_written: 120,
    origin_kind: "seed_path",
    origin_ref: null,
    origin_commit: null,
    origin_url: null,
  },
  secrets: [{ name: "TOKEN", bytes: 12, source: { kind: "from_env", ref: "TOKEN" } }],
  tenant: "tok1",
  name: "api",
  labels: { task: "123" },
  pause: null,
  ended_sessions: { shells: ["sh_1"], services: [] },
  a_newer_field: { kept: true },
};

/** The fewest fields a record may have (an older pyro's). */
const MINIMAL = {
  workspace_id: WS,
  environment: "debian:12",
  state: "stopped",
  reason: "stopped by the user",
  created_at: "2026-12-07T10:00:00.000Z",
  expires_at: "2026-12-07T11:00:00.000Z",
  vcpu_count: 1,
  mem_mib: 512,
  network: false,
  engine: "gvisor",
  execution_mode: "gvisor",
  handle: null,
  command_count: 0,
  last_command: null,
  workspace_seed: {
    mode: "empty",
    seed_path: null,
    destination: "/workspace",
    entry_count: 0,
    bytes_written: 0,
  },
};

/** Values a damaged or hand-edited record might hold anywhere. */
const ODD: unknown[] = [
  undefined,
  null,
  0,
  -1,
  1.5,
  2 ** 60,
  "",
  "x",
  "running",
  "gvisor",
  true,
  [],
  ["x"],
  [1],
  {},
  { x: 1 },
];

/** Every record `rec` becomes with one value (at any depth) replaced by an odd one or removed. */
function* mutations(rec: unknown): Generator<unknown> {
  if (Array.isArray(rec)) {
    for (let i = 0; i < rec.length; i++)
      for (const m of [...ODD, ...mutations(rec[i])]) {
        const c = [...rec];
        c[i] = m;
        yield c;
      }
    yield [...rec, ...rec.slice(0, 1).map(() => ({}))];
    return;
  }
  if (rec && typeof rec === "object") {
    const o = rec as Record<string, unknown>;
    for (const k of Object.keys(o))
      for (const m of [...ODD, ...mutations(o[k])]) {
        const c = { ...o };
        if (m === undefined) delete c[k];
        else c[k] = m;
        yield c;
      }
    yield JSON.parse(`{"__proto__": {"x": 1}, ${JSON.stringify(o).slice(1)}`);
  }
}

test("the list fast path's record check takes nothing the record schema refuses", () => {
  for (const base of [FULL, MINIMAL]) {
    assert.ok(WorkspaceRecordSchema.safeParse(base).success, "the sample is a valid record");
    assert.ok(plainRecordShape(base), "a valid record is the fast path's");
  }
  let tried = 0;
  let refused = 0;
  for (const base of [FULL, MINIMAL])
    for (const m of mutations(base)) {
      tried++;
      const schema = WorkspaceRecordSchema.safeParse(m).success;
      if (plainRecordShape(m))
        assert.ok(
          schema,
          `the fast path takes a record the schema refuses: ${JSON.stringify(m).slice(0, 600)}`,
        );
      if (!schema) refused++;
    }
  // Sanity: the mutations did reach what the schema checks.
  assert.ok(tried > 1200 && refused > 1000, `${tried} mutations, ${refused} refused by the schema`);
  // And the handle's path checks stay the record store's (applied by both paths).
  assert.ok(plainRecordShape({ ...FULL, handle: { ...FULL.handle, sandboxDir: "/elsewhere" } }));
});

test("the list fast path takes only the plain command line", () => {
  assert.deepEqual(parseFastList(["workspace", "list"]), { json: false });
  assert.deepEqual(parseFastList(["workspace", "list", "--json"]), { json: true });
  for (const args of [
    ["workspace", "list", "--label", "a=b"],
    ["workspace", "list", "--json", "--json"],
    ["workspace", "list", "--help"],
    ["workspace", "list", "x"],
    ["workspace", "exec", "--json"],
    ["vm", "list"],
  ])
    assert.equal(parseFastList(args), undefined, args.join(" "));
});
