import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { gvisorSkipReason, REPO, skipped, withHostDir } from "../helpers.js";
import { packTarball, registryUnreachable, sh } from "../pack.js";

/**
 * A TypeScript project as a new user starts one: the packed tarball installed beside
 * TypeScript (the newest from the registry, and the version this repository pins), a
 * tsconfig with default settings (no "types", no skipLibCheck: pyro's .d.ts files are
 * checked), one ES module and one CommonJS module importing `pyro-mcp`. Both type-check,
 * compile and run; with runsc, they create a workspace, exec in it and delete it.
 * pyro's own dependencies come from npm's cache when it has them (--prefer-offline).
 */

const pinned = (
  JSON.parse(await readFile(join(REPO, "node_modules", "typescript", "package.json"), "utf8")) as {
    version: string;
  }
).version;

const PROGRAM = (
  kind: string,
) => `import { Pyro, PyroError, VERSION, type WorkspaceExecResult } from "pyro-mcp";

async function main(): Promise<void> {
  const out: { kind: string; version: string; exec?: string; error?: string } = { kind: "${kind}", version: VERSION };
  const pyro = new Pyro();
  if (process.env.CONSUMER_SANDBOX === "1") {
    const ws = await pyro.createWorkspace({ environment: "debian:12" });
    try {
      const r: WorkspaceExecResult = await ws.exec("echo consumer-${kind}");
      out.exec = r.stdout;
    } finally {
      await ws.delete();
    }
  }
  try {
    await pyro.statusWorkspace("ws_00000000000000000000000000");
  } catch (e) {
    out.error = e instanceof PyroError ? e.code : \`not a PyroError: \${String(e)}\`;
  }
  console.log(JSON.stringify(out));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
`;

for (const ts of ["latest", pinned]) {
  test(`a fresh project with TypeScript ${ts}: ESM and CommonJS type-check and run`, {
    timeout: 600_000,
  }, async (t) => {
    const version = (JSON.parse(await readFile(join(REPO, "package.json"), "utf8")) as { version: string })
      .version;
    await withHostDir("pyro-consumer-", async (tmp) => {
      if (!existsSync(join(REPO, "dist", "index.d.ts")))
        return skipped(t, "pyro is not built (npm run build)");
      const tarball = await packTarball(tmp);
      const project = join(tmp, "project");
      await sh("mkdir", ["-p", project]);
      await writeFile(
        join(project, "package.json"),
        `${JSON.stringify({ name: "consumer", private: true, type: "module" }, null, 2)}\n`,
      );
      // Default settings: nothing beyond where files go and strictness (no "types", no skipLibCheck).
      await writeFile(
        join(project, "tsconfig.json"),
        `${JSON.stringify({ compilerOptions: { module: "nodenext", strict: true, outDir: "out" }, files: ["esm.ts", "cjs.cts"] }, null, 2)}\n`,
      );
      await writeFile(join(project, "esm.ts"), PROGRAM("esm"));
      await writeFile(join(project, "cjs.cts"), PROGRAM("cjs"));
      const install = await sh(
        "npm",
        ["install", "--prefer-offline", "--no-audit", "--no-fund", tarball, `typescript@${ts}`],
        { cwd: project, timeoutMs: 300_000 },
      );
      if (install.code !== 0 && registryUnreachable(install.stderr))
        return skipped(
          t,
          `the npm registry cannot be reached for typescript@${ts}: ${install.stderr.trim().split("\n").at(-1)}`,
        );
      assert.equal(install.code, 0, install.stderr);
      const tsVersion = (
        await sh(join(project, "node_modules", ".bin", "tsc"), ["--version"], { cwd: project })
      ).stdout;
      if (ts !== "latest") assert.match(tsVersion, new RegExp(`Version ${ts.replace(/\./g, "\\.")}\\b`));

      const tsc = await sh(join(project, "node_modules", ".bin", "tsc"), ["-p", "."], {
        cwd: project,
        timeoutMs: 240_000,
      });
      assert.equal(
        tsc.code,
        0,
        `tsc (${tsVersion.trim()}) in a default project:\n${tsc.stdout}${tsc.stderr}`,
      );

      const sandbox = !(await gvisorSkipReason());
      const state = join(tmp, "state");
      for (const [kind, file] of [
        ["esm", "esm.js"],
        ["cjs", "cjs.cjs"],
      ] as const) {
        const r = await sh(process.execPath, [join("out", file)], {
          cwd: project,
          env: { ...process.env, PYRO_STATE_DIR: state, CONSUMER_SANDBOX: sandbox ? "1" : "0" },
          timeoutMs: 180_000,
        });
        assert.equal(r.code, 0, `${kind}: ${r.stderr}`);
        const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as Record<string, string>;
        assert.equal(out.kind, kind);
        assert.equal(out.version, version);
        assert.match(out.error ?? "", /^[a-z_]+$/, "a PyroError, by instanceof, with its code");
        if (sandbox) assert.equal(out.exec, `consumer-${kind}\n`);
      }
      if (!sandbox) t.diagnostic(`no sandbox round trip: ${await gvisorSkipReason()}`);
    });
  });
}
