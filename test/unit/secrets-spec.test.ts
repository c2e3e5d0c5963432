import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, test } from "node:test";
import { PyroError } from "../../src/core/errors.js";
import { secretsTar, withSecretEnv } from "../../src/secrets/guest.js";
import { parseSecretEnv, resolveSecrets, secretPolicy, secretsFromFlags } from "../../src/secrets/spec.js";
import { tempDir } from "../helpers.js";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const refused = (re: RegExp) => (e: unknown) => e instanceof PyroError && re.test(e.message);

test("CLI flags become the wire's secrets", () => {
  assert.deepEqual(
    secretsFromFlags({ secret: ["A=x=y"], secretFile: ["B=./f"], secretEnv: ["C", "D=VAR"] }),
    [
      { name: "A", value: "x=y" },
      { name: "B", file_path: "./f" },
      { name: "C", from_env: "C" },
      { name: "D", from_env: "VAR" },
    ],
  );
  assert.throws(() => secretsFromFlags({ secret: ["NOVALUE"] }), refused(/--secret needs NAME=VALUE/));
});

test("operator sources: value, file, variable; names, sizes and duplicates checked without quoting values", async () => {
  const dir = await tempDir("pyro-secret-unit-");
  dirs.push(dir);
  await writeFile(join(dir, "k"), "file-value\n");
  const got = await resolveSecrets(
    [
      { name: "A", value: "value-a" },
      { name: "B", file_path: "k" },
      { name: "C", from_env: "V" },
    ],
    { cwd: dir, env: { V: "env-value" } },
  );
  assert.deepEqual(
    got.map((s) => [s.name, s.value.toString(), s.source]),
    [
      ["A", "value-a", { kind: "value", ref: null }],
      ["B", "file-value\n", { kind: "file_path", ref: join(dir, "k") }],
      ["C", "env-value", { kind: "from_env", ref: "V" }],
    ],
  );
  await assert.rejects(
    () => resolveSecrets([{ name: "9x", value: "abcdef" }], {}),
    refused(/"9x" is not valid/),
  );
  await assert.rejects(
    () =>
      resolveSecrets(
        [
          { name: "A", value: "hidden-1" },
          { name: "A", value: "hidden-2" },
        ],
        {},
      ),
    (e: unknown) => refused(/given twice/)(e) && !String((e as Error).message).includes("hidden"),
  );
  await assert.rejects(
    () => resolveSecrets([{ name: "A" }], {}),
    refused(/exactly one of value, file_path, from_env/),
  );
  await assert.rejects(
    () => resolveSecrets([{ name: "A", value: "abc" }], {}),
    refused(/3 bytes; at least 4/),
  );
  await assert.rejects(
    () => resolveSecrets([{ name: "A", value: "x".repeat(70_000) }], {}),
    refused(/70000 bytes; at most 65536/),
  );
});

test("a model names what the operator offered; values only when allowed; never host files or variables", async () => {
  const policy = secretPolicy({ secretEnv: ["TOKEN=OP_VAR"] }, false);
  const ctx = { secretPolicy: policy, env: { OP_VAR: "operator-value" } };
  const [s] = await resolveSecrets([{ name: "TOKEN" }], ctx);
  assert.equal(s!.value.toString(), "operator-value");
  await assert.rejects(
    () => resolveSecrets([{ name: "TOKEN", value: "model-value" }], ctx),
    (e: unknown) =>
      refused(/does not accept secret values/)(e) && !(e as Error).message.includes("model-value"),
  );
  await assert.rejects(
    () => resolveSecrets([{ name: "OTHER" }], ctx),
    refused(/not configured on this server/),
  );
  await assert.rejects(
    () => resolveSecrets([{ name: "TOKEN", file_path: "/etc/shadow" }], ctx),
    refused(/may not name a host file/),
  );
  await assert.rejects(() => resolveSecrets([{ name: "X", from_env: "HOME" }], ctx), refused(/may not name/));
  const open = { secretPolicy: secretPolicy({}, true), env: {} };
  assert.equal(
    (await resolveSecrets([{ name: "M", value: "model-value" }], open))[0]!.value.toString(),
    "model-value",
  );
  assert.throws(() => secretPolicy({ secretEnv: ["bad name"] }, false), refused(/not valid/));
});

test("secret_env: NAME or VAR=NAME, only the workspace's own secrets", () => {
  assert.deepEqual(parseSecretEnv(["TOKEN", "GH=TOKEN"], ["TOKEN"], "ws_x"), [
    ["TOKEN", "TOKEN"],
    ["GH", "TOKEN"],
  ]);
  assert.throws(() => parseSecretEnv(["NOPE"], ["TOKEN"], "ws_x"), refused(/has no secret NOPE/));
  assert.throws(() => parseSecretEnv(["a-b=TOKEN"], ["TOKEN"], "ws_x"), refused(/"a-b" is not valid/));
});

test("withSecretEnv sets exact values (trailing newlines kept) for the wrapped process only", async () => {
  const dir = await tempDir("pyro-secret-env-");
  dirs.push(dir);
  const argv = withSecretEnv(
    ["sh", "-c", 'printf "[%s][%s]" "$T" "$U"'],
    [
      ["T", "A"],
      ["U", "B"],
    ],
  ).map((a) => a.replaceAll("/run/pyro-secrets", dir));
  await writeFile(join(dir, "A"), "with newline\n\n");
  await writeFile(join(dir, "B"), "plain");
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
  assert.equal(r.stdout, "[with newline\n\n][plain]");
  await rm(join(dir, "B"));
  const missing = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
  assert.equal(missing.status, 126);
  assert.match(missing.stderr, /secret B is missing/);
  assert.deepEqual(withSecretEnv(["true"], []), ["true"]);
});

test("the archive that materialises secrets: files 0400 with the owner asked for, exact bytes", async () => {
  const dir = await tempDir("pyro-secret-tar-");
  dirs.push(dir);
  const value = Buffer.from([0, 1, 2, 255, 10, 65]);
  const tar = secretsTar(
    [
      { name: "BIN", value },
      { name: "LONG", value: Buffer.alloc(1500, 0x61) },
    ],
    1234,
    5678,
  );
  const list = spawnSync("tar", ["-tvf", "-"], { input: tar, encoding: "utf8" });
  assert.equal(list.status, 0, list.stderr);
  assert.match(list.stdout, /^-r-------- 1234\/5678\s+6 .* BIN$/m);
  const x = spawnSync("tar", ["-xf", "-", "-C", dir], { input: tar });
  assert.equal(x.status, 0, String(x.stderr));
  assert.deepEqual(await readFile(join(dir, "BIN")), value);
  assert.equal((await readFile(join(dir, "LONG"))).length, 1500);
  assert.equal((await stat(join(dir, "BIN"))).mode & 0o777, 0o400);
});
