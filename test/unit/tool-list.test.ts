import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { after, test } from "node:test";
import { Client } from "@modelcontextprotocol/client";
import { InMemoryTransport } from "@modelcontextprotocol/server";
import type { PyroError } from "../../src/core/errors.js";
import { createServer } from "../../src/mcp/server.js";
import { MODE_DEFS, MODES } from "../../src/operations/modes.js";
import { PROFILES } from "../../src/operations/profiles.js";
import { compactJsonSchema } from "../../src/operations/schema-compact.js";
import { getOperation, OPERATIONS } from "../../src/operations/table.js";
import { parseSelection } from "../../src/operations/tool-sets.js";
import { Runtime } from "../../src/runtime/runtime.js";
import { tempDir } from "../helpers.js";

/**
 * What a tools/list costs a host (issue #27): bytes on the wire, and the tokens a model
 * reads. The estimator: characters of the JSON of each tool's name, description and
 * inputSchema, divided by 4 (about what tokenizers give for English and JSON; titles,
 * annotations and outputSchemas are for the host and the client's validator, not the model).
 * Goals: the default profile (and vm-run) ≤ 4,000 tokens and ≤ 32 KB; each mode < 2,000
 * tokens; workspace-full < 40 tools. The table is printed either way.
 */

const GOALS = {
  defaultTokens: 4000,
  defaultBytes: 32 * 1024,
  modeTokens: 2000,
  fullTools: 40,
};

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function runtime(): Promise<Runtime> {
  const home = await tempDir("pyro-tool-list-");
  dirs.push(home);
  return new Runtime({ env: { ...process.env, PYRO_HOME: home, PYRO_CACHE_DIR: "", PYRO_STATE_DIR: "" } });
}

type Listed = Awaited<ReturnType<Client["listTools"]>>;

async function served<T>(
  sel: { profile?: string; mode?: string },
  fn: (client: Client, listed: Listed) => Promise<T>,
): Promise<T> {
  // A fixed export area: the export tool's description names it, so its length counts.
  const server = createServer({
    runtime: await runtime(),
    log: () => undefined,
    exportDir: "/srv/pyro-exports",
    ...sel,
  });
  const [a, b] = InMemoryTransport.createLinkedPair();
  await server.connect(a);
  const client = new Client({ name: "tool-list", version: "0" });
  await client.connect(b);
  try {
    return await fn(client, await client.listTools());
  } finally {
    await client.close();
    await server.close();
  }
}

interface Size {
  tools: number;
  bytes: number;
  modelChars: number;
  tokens: number;
  outputBytes: number;
}

function measure(listed: Listed): Size {
  const bytes = Buffer.byteLength(JSON.stringify(listed));
  const model = JSON.stringify(
    listed.tools.map((t) => ({ name: t.name, description: t.description, inputSchema: t.inputSchema })),
  );
  const outputBytes = Buffer.byteLength(JSON.stringify(listed.tools.map((t) => t.outputSchema ?? null)));
  return {
    tools: listed.tools.length,
    bytes,
    modelChars: model.length,
    tokens: Math.ceil(model.length / 4),
    outputBytes,
  };
}

test("tools/list sizes: each profile and mode, against the goals (estimator: model-facing chars / 4)", async (t) => {
  const rows: [string, Size][] = [];
  for (const profile of PROFILES)
    rows.push([`--profile ${profile}`, await served({ profile }, async (_, l) => measure(l))]);
  for (const mode of MODES) rows.push([`--mode ${mode}`, await served({ mode }, async (_, l) => measure(l))]);
  const table = [
    "served                      tools   bytes  outputSchemas  model-facing chars  ~tokens",
    ...rows.map(
      ([name, s]) =>
        `${name.padEnd(26)} ${String(s.tools).padStart(6)} ${String(s.bytes).padStart(7)} ${String(s.outputBytes).padStart(14)} ${String(s.modelChars).padStart(19)} ${String(s.tokens).padStart(8)}`,
    ),
  ].join("\n");
  t.diagnostic(`\n${table}`);
  console.log(table);
  const size = (name: string) => rows.find(([n]) => n === name)![1];
  for (const p of ["--profile workspace-core", "--profile vm-run"]) {
    assert.ok(
      size(p).tokens <= GOALS.defaultTokens,
      `${p}: ${size(p).tokens} tokens > ${GOALS.defaultTokens}`,
    );
    assert.ok(size(p).bytes <= GOALS.defaultBytes, `${p}: ${size(p).bytes} bytes > ${GOALS.defaultBytes}`);
  }
  for (const m of MODES)
    assert.ok(
      size(`--mode ${m}`).tokens < GOALS.modeTokens,
      `--mode ${m}: ${size(`--mode ${m}`).tokens} tokens`,
    );
  assert.ok(size("--profile workspace-full").tools < GOALS.fullTools, "workspace-full is under 40 tools");
  assert.equal(size("--profile all").tools, OPERATIONS.filter((o) => o.mcp).length);
});

test("modes: fixed tool lists in job order, fields that exist, instructions naming only their own tools", async () => {
  const allTools = OPERATIONS.filter((o) => o.mcp).map((o) => o.name);
  for (const mode of MODES) {
    const def = MODE_DEFS[mode];
    for (const [name, view] of Object.entries(def.tools)) {
      const op = getOperation(name);
      assert.ok(op.mcp, `${mode}: ${name} is an MCP tool`);
      for (const f of view.fields) assert.ok(f in op.input.shape, `${mode}: ${name} has no field ${f}`);
    }
    await served({ mode }, async (client, listed) => {
      assert.deepEqual(
        listed.tools.map((x) => x.name),
        Object.keys(def.tools),
      );
      for (const tool of listed.tools) {
        const op = getOperation(tool.name);
        const view = def.tools[tool.name]!;
        const required = Object.keys(op.input.shape).filter(
          (f) => !(op.input.shape[f] as { isOptional(): boolean }).isOptional(),
        );
        assert.deepEqual(
          Object.keys(tool.inputSchema.properties ?? {}).sort(),
          [...new Set([...view.fields, ...required])].sort(),
          `${mode}: ${tool.name}'s fields`,
        );
        assert.ok(
          tool.description?.startsWith(view.description),
          `${mode}: ${tool.name} has its mode's description`,
        );
      }
      const text = JSON.stringify({
        tools: listed.tools.map((x) => x.description),
        i: client.getInstructions(),
      });
      const strays = allTools.filter((n) => new RegExp(`\\b${n}\\b`).test(text) && !(n in def.tools));
      assert.deepEqual(strays, [], `${mode} names tools it does not serve`);
    });
  }
});

test("a field a profile or mode leaves out is refused by name, not silently taken", async () => {
  const text = (r: unknown) => JSON.stringify((r as { content: unknown }).content);
  await served({}, async (client, listed) => {
    const vmRun = listed.tools.find((x) => x.name === "vm_run")!;
    assert.ok(!("network_policy" in (vmRun.inputSchema.properties ?? {})));
    const r = await client.callTool({
      name: "vm_run",
      arguments: { command: "true", network_policy: "egress" },
    });
    assert.equal(r.isError, true);
    assert.match(text(r), /network_policy/);
  });
  await served({ mode: "repro-fix" }, async (client) => {
    const r = await client.callTool({
      name: "workspace_exec",
      arguments: { workspace_id: "ws_x", command: "true", max_output_bytes: 2048 },
    });
    assert.equal(r.isError, true);
    assert.match(text(r), /max_output_bytes/);
  });
  await served({ profile: "workspace-full" }, async (_, listed) => {
    const vmRun = listed.tools.find((x) => x.name === "vm_run")!;
    assert.ok("network_policy" in (vmRun.inputSchema.properties ?? {}), "workspace-full keeps every field");
  });
});

test("--profile with --mode is refused; an unknown mode gets the nearest one", () => {
  assert.throws(
    () => parseSelection({ profile: "workspace-core", mode: "inspect" }),
    (e: PyroError) =>
      e.code === "invalid_argument" && /--mode inspect and --profile workspace-core/.test(e.message),
  );
  assert.deepEqual(parseSelection({ mode: "inspect" }), { mode: "inspect" });
  assert.deepEqual(parseSelection({}), { profile: "workspace-core" });
  assert.throws(
    () => createServer({ mode: "repro-fx", log: () => undefined }),
    /unknown mode "repro-fx"; did you mean `repro-fix`/,
  );
});

test("compactJsonSchema: nullable types as single-type anyOf, no empty subschemas, safe-int bounds or output descriptions", () => {
  const out = compactJsonSchema(
    {
      $schema: "x",
      type: "object",
      properties: {
        name: { type: ["string", "null"], description: "n" },
        n: { type: "integer", minimum: -9007199254740991, maximum: 9007199254740991 },
        rec: { type: "object", properties: { a: { type: "string" } }, additionalProperties: {} },
      },
      required: ["name"],
      additionalProperties: false,
    },
    { for: "output", depth: 1 },
  );
  assert.deepEqual(out, {
    type: "object",
    properties: {
      name: { anyOf: [{ type: "string" }, { type: "null" }] },
      n: { type: "integer" },
      rec: { type: "object" },
    },
    required: ["name"],
    additionalProperties: false,
  });
  const input = compactJsonSchema(
    {
      type: "object",
      properties: {
        t: { type: "integer", minimum: 1, maximum: 16, default: 1, description: "CPUs (1-16). Default 1." },
        s: { type: "string", minLength: 1, maxLength: 100, description: "A name." },
      },
    },
    { for: "input" },
  );
  assert.deepEqual(input.properties, {
    t: { type: "integer", minimum: 1, maximum: 16, default: 1, description: "CPUs." },
    s: { type: "string", description: "A name." },
  });
});

test("every published outputSchema still accepts what the operation returns (it is the zod result, outlined)", async () => {
  // The outline keeps each top-level field's type: a record that parses with the zod schema
  // must validate against it. Spot-check with the status result's shape.
  await served({ profile: "all" }, async (_, listed) => {
    for (const tool of listed.tools) {
      const out = tool.outputSchema as { type?: string; properties?: Record<string, unknown> } | undefined;
      assert.equal(out?.type, "object", `${tool.name} has an object outputSchema`);
      const fields = Object.keys(getOperation(tool.name).result.shape).sort();
      assert.deepEqual(
        Object.keys(out?.properties ?? {}).sort(),
        fields,
        `${tool.name}: every result field is listed`,
      );
      assert.doesNotMatch(
        JSON.stringify(out),
        /"type":\[/,
        `${tool.name}: no type lists (Inspector --strict)`,
      );
    }
  });
});
