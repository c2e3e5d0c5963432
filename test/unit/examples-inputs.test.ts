import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { REPO } from "../helpers.js";

/**
 * The examples are written to be copied: they import `pyro-mcp` as a user's project would
 * (tsconfig.json's `paths` resolves it to src/ in this repository), and run as scripts they
 * say which input is missing, in one message, instead of dying with a stack trace.
 */

function runExample(
  file: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(
      process.execPath,
      ["--import", "tsx", join("examples", file)],
      { cwd: REPO, env, timeout: 60_000 },
      (err, stdout, stderr) =>
        res({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

test("every example imports pyro-mcp, not the repository's sources", async () => {
  const files = (await readdir(join(REPO, "examples"))).filter((f) => f.endsWith(".ts"));
  assert.ok(files.length >= 6);
  for (const f of files) {
    const text = await readFile(join(REPO, "examples", f), "utf8");
    assert.doesNotMatch(text, /from "\.\.?\/(src|dist)\//, `${f} imports the checkout by path`);
    assert.match(text, /from "pyro-mcp";/, `${f} imports pyro-mcp`);
  }
});

const withoutKeys = (): NodeJS.ProcessEnv => {
  const env = { ...process.env };
  for (const k of ["OPENAI_API_KEY", "AI_GATEWAY_API_KEY", "VERCEL_OIDC_TOKEN"]) delete env[k];
  return env;
};

for (const [file, missing] of [
  ["openai_responses_vm_run.ts", "OPENAI_API_KEY"],
  ["vercel_ai_vm_run.ts", "AI_GATEWAY_API_KEY"],
] as const) {
  test(`${file} without ${missing} names it, with no stack trace`, { timeout: 90_000 }, async () => {
    const r = await runExample(file, withoutKeys());
    assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
    assert.match(
      r.stderr,
      new RegExp(`^${file.replace(".", "\\.")}: ${missing} is not set: export ${missing}=`, "m"),
    );
    assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
  });
}
