import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { MODE_DEFS, MODES } from "../../src/operations/modes.js";
import { PROFILES, profileTools } from "../../src/operations/profiles.js";
import { CLI, REPO, skipped, testEnv } from "../helpers.js";

/**
 * The MCP Inspector CLI's `--strict` check (tool-schema portability: a `type` list, an
 * empty subschema, ...) over the built `pyro mcp serve`, for every profile and every mode:
 * no warning at all (issue #27: 47 on workspace-core, 102 on workspace-full before). The
 * sizes are measured in test/unit/tool-list.test.ts.
 */

const INSPECTOR = join(REPO, "node_modules", ".bin", "mcp-inspector");

function strictList(
  serveArgs: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(
      INSPECTOR,
      [
        "--cli",
        "-q",
        "--format",
        "json",
        "--strict",
        "--method",
        "tools/list",
        "--",
        process.execPath,
        CLI,
        "mcp",
        "serve",
        "--no-project",
        ...serveArgs,
      ],
      { env, cwd: REPO, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) =>
        res({ code: err ? (typeof err.code === "number" ? err.code : null) : 0, stdout, stderr }),
    );
  });
}

const SERVED: [string[], string[]][] = [
  ...PROFILES.map((p): [string[], string[]] => [["--profile", p], profileTools(p)]),
  ...MODES.map((m): [string[], string[]] => [["--mode", m], Object.keys(MODE_DEFS[m].tools)]),
];

test("MCP Inspector --strict: no warnings for any profile or mode", { timeout: 600_000 }, async (t) => {
  if (!existsSync(INSPECTOR)) return skipped(t, "the MCP Inspector (devDependency) is not installed");
  const { env, cleanup } = await testEnv();
  try {
    for (const [args, tools] of SERVED) {
      const r = await strictList(args, env);
      if (r.code !== 0 && /ENOENT|Cannot find module|ERR_/.test(r.stderr))
        return skipped(t, `inspector cannot start here: ${r.stderr.slice(0, 200)}`);
      const warnings = r.stderr.split("\n").filter((l) => /^(Warning|Error)\b/.test(l));
      t.diagnostic(`${args.join(" ")}: ${tools.length} tools, ${warnings.length} --strict warnings`);
      assert.equal(r.code, 0, `${args.join(" ")}: inspector exit ${r.code}: ${r.stderr.slice(0, 2000)}`);
      assert.deepEqual(warnings, [], `${args.join(" ")}: ${r.stderr.slice(0, 2000)}`);
      const listed = (JSON.parse(r.stdout) as { result: { tools: { name: string }[] } }).result.tools;
      assert.deepEqual(
        listed.map((x) => x.name),
        tools,
        `${args.join(" ")} serves its tools`,
      );
    }
  } finally {
    await cleanup();
  }
});
