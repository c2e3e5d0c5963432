#!/usr/bin/env node
// Builds the `pyro` executable:
//   dist/cli/pyro.cjs       the CLI's commands in one CommonJS file (esbuild)
//   dist/cli/pyro-mcp.cjs   `pyro mcp serve` (the MCP SDK: a third of the code), loaded only for it
//   dist/cli/pyro-demo.cjs  `pyro demo` (the SDK and, through it, the MCP server too)
//   dist/cli/main.js        a small launcher that compiles a bundle with a V8 code cache
// Start-up is most of what `pyro run` adds over raw runsc (see bench/): one file instead of
// ~200 module loads, a code cache instead of re-parsing the JavaScript each run, and only the
// code the command needs (read, deserialized and initialised each run: ~1 ms per 100 KB).
// `pyro --version` is answered by the launcher alone. The caches live in pyro's cache dir; a
// stale or foreign one is just ignored by V8.
import { chmod, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { build } from "esbuild";

const common = {
  bundle: true,
  format: "cjs",
  platform: "node",
  target: "node20",
  sourcemap: true,
  packages: "bundle",
  // ESM-only code that locates files next to itself keeps working inside the CJS bundle.
  define: { "import.meta.url": "__pyroImportMetaUrl" },
  banner: { js: 'const __pyroImportMetaUrl = require("node:url").pathToFileURL(__filename).href;' },
  logLevel: "warning",
};

/**
 * The main bundle's lazy imports of whole faces (`await import("./serve.js")`) become loads of
 * their own bundle through the launcher (with its code cache), instead of being compiled in.
 */
const LAZY = {
  "./serve.js": "pyro-mcp.cjs",
  "./demo.js": "pyro-demo.cjs",
  "./mcp-client.js": "pyro-mcp-client.cjs",
};
const LAZY_IMPORTERS = {
  "./serve.js": "src/cli/main.ts",
  "./demo.js": "src/cli/main.ts",
  "./mcp-client.js": "src/remote/client.ts",
};
const lazyBundles = {
  name: "lazy-bundles",
  setup(b) {
    b.onResolve({ filter: /^\.\/(serve|demo|mcp-client)\.js$/ }, (args) =>
      args.importer.endsWith(LAZY_IMPORTERS[args.path])
        ? { path: LAZY[args.path], namespace: "lazy-bundle" }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "lazy-bundle" }, (args) => ({
      // Only the launcher (main.js) runs pyro.cjs, and it provides __pyroLoad.
      contents: `module.exports = globalThis.__pyroLoad(${JSON.stringify(args.path)});`,
      loader: "js",
    }));
  },
};

/**
 * Modules most commands never call, loaded on first use instead of at start-up: `tar` (129 KB,
 * ~2-4 ms to initialise; seeds, sync, export, images) and `node:http` (the Firecracker API
 * client). Every name pyro imports from them is a wrapper that requires the real module when
 * called; the real one is still in the bundle.
 */
const LAZY_MODULES = {
  tar: {
    names: ["c", "t", "x", "r", "u", "create", "extract", "list", "replace", "update"],
    classes: ["Parser", "Pack", "Unpack", "Header", "ReadEntry", "WriteEntry"],
  },
  "node:http": { names: ["request"], classes: [] },
};
const lazyModules = {
  name: "lazy-modules",
  setup(b) {
    b.onResolve({ filter: /^(tar|node:http)$/ }, (args) =>
      args.importer.includes("/src/") && args.namespace === "file"
        ? { path: args.path, namespace: "lazy-module", pluginData: { resolveDir: args.resolveDir } }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "lazy-module" }, (args) => {
      const { names, classes } = LAZY_MODULES[args.path];
      const lines = [
        "let real;",
        `const load = () => (real ??= require(${JSON.stringify(args.path)}));`,
        ...names.map((n) => `export const ${n} = (...a) => load().${n}(...a);`),
        ...classes.map(
          (n) =>
            `export const ${n} = new Proxy(function () {}, { construct: (_t, a) => new (load().${n})(...a) });`,
        ),
      ];
      return { contents: lines.join("\n"), loader: "js", resolveDir: args.pluginData.resolveDir };
    });
  },
};

/**
 * The fast paths' bundles, which the launcher tries before the CLI: a few small modules
 * instead of the whole CLI, so no zod and no commander in them, and no engine registry
 * (test/unit/fast-bundles.test.ts builds them with `--fast-only` and checks both, and a size cap).
 */
const FAST = [
  // `pyro run` from the warm pool, tried first when a pool is configured (src/cli/fast-run.ts).
  { entry: "src/cli/fast-run.ts", out: "pyro-fast.cjs" },
  // `pyro workspace exec` likewise (src/cli/fast-exec.ts): its own bundle, since it needs the
  // record lock (src/util/lock.ts) that a pooled run does not.
  { entry: "src/cli/fast-exec.ts", out: "pyro-fast-exec.cjs" },
  // `pyro workspace list [--json]` (src/cli/fast-list.ts): read-only, called every second by
  // scripts and dashboards, where loading the CLI was most of its cost.
  { entry: "src/cli/fast-list.ts", out: "pyro-fast-list.cjs" },
];

// `--fast-only DIR` (for the test): the fast bundles alone, into DIR, each with esbuild's
// account of what went into it (DIR/<bundle>.meta.json).
const fastOnly = process.argv.indexOf("--fast-only");
if (fastOnly >= 0) {
  const dir = process.argv[fastOnly + 1];
  if (!dir) throw new Error("--fast-only needs a directory");
  for (const f of FAST) {
    const r = await build({ ...common, entryPoints: [f.entry], outfile: join(dir, f.out), metafile: true });
    await writeFile(join(dir, `${f.out}.meta.json`), JSON.stringify(r.metafile));
  }
  process.exit(0);
}

await build({
  ...common,
  entryPoints: ["src/cli/main.ts"],
  outfile: "dist/cli/pyro.cjs",
  plugins: [lazyBundles, lazyModules],
});
await build({
  ...common,
  entryPoints: ["src/cli/serve.ts"],
  outfile: "dist/cli/pyro-mcp.cjs",
  plugins: [lazyBundles],
});
await build({
  ...common,
  entryPoints: ["src/cli/demo.ts"],
  outfile: "dist/cli/pyro-demo.cjs",
  plugins: [lazyBundles],
});
for (const f of FAST) await build({ ...common, entryPoints: [f.entry], outfile: join("dist/cli", f.out) });
await build({
  ...common,
  entryPoints: ["src/remote/mcp-client.ts"],
  outfile: "dist/cli/pyro-mcp-client.cjs",
});

const { version } = JSON.parse(await readFile("package.json", "utf8"));
const launcher = `#!/usr/bin/env node
// Generated by scripts/bundle-cli.mjs: runs pyro.cjs through a V8 code cache.
// CommonJS (dist/cli/package.json says so): an ES module entry costs every command ~4 ms of
// module-loader start-up.
"use strict";
const { mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } = require("node:fs");
const { createRequire } = require("node:module");
const { homedir } = require("node:os");
const { dirname, join } = require("node:path");
const vm = require("node:vm");

const argv = process.argv;
// Nothing to load for the version (the same answer commander gives).
if (argv.length === 3 && (argv[2] === "--version" || argv[2] === "-V" || argv[2] === "-v")) {
  process.stdout.write(${JSON.stringify(`${version}\n`)});
} else {
  const here = __dirname;
  const env = process.env;
  const cacheRoot =
    env.PYRO_CACHE_DIR ||
    (env.PYRO_HOME ? join(env.PYRO_HOME, "cache") : join(env.XDG_CACHE_HOME || join(env.HOME || homedir(), ".cache"), "pyro-mcp"));
  /** Runs one bundle of dist/cli through its code cache and returns its exports. */
  const load = (name) => {
    const file = join(here, name);
    const st = statSync(file);
    const cachePath = join(cacheRoot, "v8", \`\${name.replace(/\\.cjs$/, "")}-\${process.version}-\${st.size}-\${Math.round(st.mtimeMs)}.bin\`);
    let cached;
    try {
      cached = readFileSync(cachePath);
    } catch {}
    const source = readFileSync(file, "utf8").replace(/^#!.*/, "");
    const script = new vm.Script(
      "(function (exports, require, module, __filename, __dirname) {" + source + "\\n})",
      { filename: file, cachedData: cached, importModuleDynamically: vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER },
    );
    if (env.PYRO_NO_CODE_CACHE !== "1" && (cached === undefined || script.cachedDataRejected)) {
      // Written once the CLI has run, so the functions it used are in the cache too.
      process.once("exit", () => {
        try {
          mkdirSync(dirname(cachePath), { recursive: true });
          const tmp = \`\${cachePath}.\${process.pid}.tmp\`;
          writeFileSync(tmp, script.createCachedData());
          renameSync(tmp, cachePath);
          // Caches of earlier builds of this bundle are never valid again ("pyro-v…" must not
          // match "pyro-mcp-v…"), nor are caches of bundles that no longer exist.
          const prefix = name.replace(/\\.cjs$/, "") + "-v";
          const known = /^(pyro|pyro-mcp|pyro-demo|pyro-mcp-client|pyro-fast|pyro-fast-exec|pyro-fast-list)-v/;
          for (const f of readdirSync(dirname(cachePath)))
            if ((f.startsWith(prefix) || !known.test(f)) && join(dirname(cachePath), f) !== cachePath)
              unlinkSync(join(dirname(cachePath), f));
        } catch {}
      });
    }
    const mod = { exports: {} };
    script.runInThisContext()(mod.exports, createRequire(file), mod, file, dirname(file));
    return mod.exports;
  };
  globalThis.__pyroLoad = load;
  // A one-shot run from the warm pool, a command in a workspace and a list of workspaces need
  // none of the CLI: a fast path answers the plain case, or declines before doing anything
  // and the full CLI runs as always. PYRO_FAST_PATHS=0 turns them off.
  let fastPath;
  if (env.PYRO_FAST_PATHS !== "0")
    try {
      // The pool is on unless PYRO_POOL_SIZE turns it off (pool/config.ts POOL_DEFAULTS).
      const poolSize = (env.PYRO_POOL_SIZE ?? "").trim();
      if (argv[2] === "run" && (poolSize === "" || Number(poolSize) !== 0)) fastPath = load("pyro-fast.cjs").fastRun;
      else if (argv[2] === "workspace" && argv[3] === "exec")
        fastPath = load("pyro-fast-exec.cjs").fastWorkspaceExec;
      else if (argv[2] === "workspace" && argv[3] === "list")
        fastPath = load("pyro-fast-list.cjs").fastWorkspaceList;
    } catch {} // not there (a partial build): the full CLI does the same work
  // Once it has started, its errors are reported: running the command again could run it twice.
  if (!fastPath) load("pyro.cjs");
  else
    fastPath(argv.slice(2), __filename)
      .catch((e) => {
        process.stderr.write(\`pyro: internal error: \${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n\`);
        return 1;
      })
      .then((fast) => {
        if (fast === undefined) return load("pyro.cjs");
        process.exitCode = fast;
        // Nothing left to wait for (output is written synchronously here): leave without
        // tearing the heap down (~4 ms).
        setImmediate(() => {
          if (process.getActiveResourcesInfo().length === 0) process.exit(fast);
        });
      });
}
`;
// dist/cli holds the bundles and the launcher only: tsc's per-module output of src/cli is
// compiled into pyro.cjs and would not load as CommonJS.
for (const f of await readdir("dist/cli")) if (/\.(js|d\.ts)(\.map)?$/.test(f)) await rm(join("dist/cli", f));
await writeFile("dist/cli/package.json", `${JSON.stringify({ type: "commonjs" })}\n`);
await writeFile("dist/cli/main.js", launcher);
await chmod("dist/cli/main.js", 0o755);
