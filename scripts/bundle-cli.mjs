#!/usr/bin/env node
// Bundles the CLI entry into dist/cli/main.js (replacing tsc's per-module output for that one
// file). One file instead of ~200 module loads halves `pyro` start-up, which is most of the
// overhead `pyro run` adds over raw runsc (see bench/). Rarely used paths (the MCP server)
// stay separate chunks, loaded only when asked for.
import { build } from "esbuild";

await build({
  entryPoints: ["src/cli/main.ts"],
  outdir: "dist/cli",
  entryNames: "[name]",
  chunkNames: "chunks/[name]-[hash]",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  sourcemap: true,
  packages: "bundle",
  // CommonJS dependencies (write-file-atomic, proper-lockfile…) expect these module globals.
  banner: {
    js: [
      "import { createRequire as __pyroCreateRequire } from 'node:module';",
      "import { fileURLToPath as __pyroFileURLToPath } from 'node:url';",
      "import { dirname as __pyroDirname } from 'node:path';",
      "const require = __pyroCreateRequire(import.meta.url);",
      "const __filename = __pyroFileURLToPath(import.meta.url);",
      "const __dirname = __pyroDirname(__filename);",
    ].join(" "),
  },
  logLevel: "warning",
});
