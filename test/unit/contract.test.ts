import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { test } from "node:test";
import type * as z from "zod";
import type * as F from "../../src/contract/files.js";
import type { WorkspaceLifecycleResult } from "../../src/contract/lifecycle.js";
import type * as P from "../../src/contract/pool.js";
import type * as Snap from "../../src/contract/snapshots.js";
import type { WarmPool } from "../../src/pool/pool.js";
import type {
  CommandOptions,
  DiffOptions,
  ExportOptions,
  NetworkOptions,
  ReadOptions,
  SandboxOptions,
  SecretEnvOptions,
  SecretSource,
  WorkspaceUpdateOptions,
  WriteOptions,
} from "../../src/sdk/pyro.js";
import type {
  ServiceLogsOptions,
  ServiceStartOptions,
  ShellOpenOptions,
  ShellReadOptions,
} from "../../src/sdk/sessions.js";
import type { diffWorkspace } from "../../src/workspaces/diff.js";
import type { exportWorkspace } from "../../src/workspaces/export.js";
import type { editFile, listFiles, readFile, writeFile } from "../../src/workspaces/files.js";
import type { WorkspaceManager } from "../../src/workspaces/manager.js";
import type { applyPatch } from "../../src/workspaces/patch.js";
import type { Snapshots } from "../../src/workspaces/snapshots.js";
import type { summarize } from "../../src/workspaces/summary.js";
import { REPO } from "../helpers.js";

/**
 * The contract layer (src/contract/): the wire schemas sit below every domain folder, so
 * the domain names its inputs and results without importing the operations layer above it,
 * and the SDK's option types are derived from the schemas rather than copied.
 */

const SRC = join(REPO, "src");

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) return tsFiles(p);
    return p.endsWith(".ts") ? [p] : [];
  });
}

/** Every module a file names: imports (`import type` too), re-exports and dynamic imports. */
function specifiers(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s*"([^"]+)"/g)) out.push(m[1]!);
  for (const m of text.matchAll(/\bimport\(\s*"([^"]+)"\s*\)/g)) out.push(m[1]!);
  return out;
}

/** A relative specifier as a path under src/ ("operations/table.ts"); bare ones as they are. */
function target(file: string, spec: string): string {
  if (!spec.startsWith(".")) return spec;
  return relative(SRC, resolve(file, "..", spec)).replace(/\.js$/, ".ts");
}

test("contract/ imports only zod, itself and the core (errors, ids, paths, util)", () => {
  const files = tsFiles(join(SRC, "contract"));
  assert.ok(files.length >= 10, "the contract files are found");
  for (const f of files)
    for (const spec of specifiers(f)) {
      const t = target(f, spec);
      assert.ok(
        t === "zod" ||
          t.startsWith("contract/") ||
          t.startsWith("core/") ||
          t.startsWith("util/") ||
          /^(errors|ids|paths)\.ts$/.test(t),
        `${relative(SRC, f)} imports ${spec}: contract/ may import only zod, contract/ and the core`,
      );
    }
});

test("contract/defaults.ts imports nothing: the CLI fast paths share its values without zod", () => {
  assert.deepEqual(specifiers(join(SRC, "contract", "defaults.ts")), []);
});

test("no domain folder imports the operations layer (its wire schemas are in contract/)", () => {
  // Everything below operations/ in the layer order (docs/architecture.md).
  const faces = new Set(["operations", "tenants", "mcp", "remote", "sdk", "cli", "host"]);
  const domain = tsFiles(SRC).filter((f) => {
    const top = relative(SRC, f).split("/")[0]!;
    return !faces.has(top) && top !== "index.ts";
  });
  assert.ok(domain.some((f) => f.includes(`${"workspaces"}/manager.ts`)));
  const upward = domain.flatMap((f) =>
    specifiers(f)
      .filter((s) => target(f, s).startsWith("operations/"))
      .map((s) => `${relative(SRC, f)} -> ${s}`),
  );
  assert.deepEqual(upward, []);
});

/*
 * The SDK's option types are derived from the schemas (src/sdk/wire-options.ts). These are
 * checked when the tests are type-checked (`npm run typecheck`): each derived type has the
 * fields, types and optionality the hand-written copies had, so the derivation changed no
 * meaning; a schema change that alters an SDK option fails here and must be meant.
 */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Optional<T, K extends keyof T> = Partial<Pick<T, K>> extends Pick<T, K> ? true : false;
type SameShape<A, B> =
  Same<keyof A, keyof B> extends true
    ? false extends {
        [K in keyof A & keyof B]: Same<A[K], B[K]> extends true
          ? Same<Optional<A, K>, Optional<B, K>>
          : false;
      }[keyof A & keyof B]
      ? false
      : true
    : false;
const check = <T extends true>(): T => true as T;

test("the SDK's option types keep the fields, types and optionality of the copies they replace", () => {
  const checks = [
    check<SameShape<CommandOptions, { timeoutSeconds?: number; maxOutputBytes?: number }>>(),
    check<SameShape<SecretSource, { name: string; value?: string; filePath?: string; fromEnv?: string }>>(),
    check<SameShape<SecretEnvOptions, { secretEnv?: string[] }>>(),
    check<
      SameShape<
        NetworkOptions,
        {
          networkPolicy?: "off" | "egress" | "egress+published-ports";
          allowCidr?: string[];
          denyCidr?: string[];
          allowHost?: string[];
        }
      >
    >(),
    check<
      SameShape<
        SandboxOptions,
        NetworkOptions & {
          environment?: string;
          vcpuCount?: number;
          memMib?: number;
          ttlSeconds?: number;
          network?: boolean;
          allowHostCompat?: boolean;
        }
      >
    >(),
    check<
      SameShape<
        WorkspaceUpdateOptions,
        NetworkOptions & {
          name?: string;
          labels?: Record<string, string>;
          ttlSeconds?: number;
          maxTtlSeconds?: number;
          publish?: string[];
          clearLabels?: string[];
        }
      >
    >(),
    check<
      SameShape<
        DiffOptions,
        {
          path?: string;
          stat?: boolean;
          nameOnly?: boolean;
          maxBytes?: number;
          cursor?: number;
          includeIgnored?: boolean;
          exclude?: string[];
        }
      >
    >(),
    check<
      SameShape<
        ExportOptions,
        {
          path?: string;
          force?: boolean;
          changedOnly?: boolean;
          includeIgnored?: boolean;
          exclude?: string[];
        }
      >
    >(),
    check<
      SameShape<
        ReadOptions,
        { offset?: number; limit?: number; maxBytes?: number; encoding?: "utf-8" | "base64" }
      >
    >(),
    check<
      SameShape<WriteOptions, { encoding?: "utf-8" | "base64"; mode?: string; createParents?: boolean }>
    >(),
    check<
      SameShape<
        ShellOpenOptions,
        { command?: string | string[]; cwd?: string; cols?: number; rows?: number; secretEnv?: string[] }
      >
    >(),
    check<
      SameShape<
        ShellReadOptions,
        {
          cursor?: number;
          plain?: boolean;
          waitForIdleMs?: number;
          timeoutSeconds?: number;
          maxBytes?: number;
        }
      >
    >(),
    check<
      SameShape<
        ServiceStartOptions,
        {
          cwd?: string;
          readyFile?: string;
          readyTcp?: number;
          readyHttp?: string;
          readyCommand?: string;
          readyTimeoutSeconds?: number;
          secretEnv?: string[];
          publish?: string[];
        }
      >
    >(),
    check<
      SameShape<
        ServiceLogsOptions,
        { tailLines?: number; cursor?: number; follow?: boolean; followSeconds?: number }
      >
    >(),
  ];
  assert.ok(checks.every((c) => c === true));
});

/*
 * Domain results against the wire. Operation handlers are typed `Promise<z.infer<result>>`
 * (operations/table.ts), so tsc already refuses a domain result that lacks a field or has
 * one of the wrong type; it does not refuse an extra field, which would reach every face
 * unlisted and undocumented. These domain functions return their own types (inferred, or
 * interfaces of their folder): each must fit its result schema and add no field to it, in
 * every variant it returns. (WarmPool.fill differs from the wire on purpose; operations/pool.ts
 * maps it field by field.)
 */
type Result<F extends (...a: never[]) => unknown> = Awaited<ReturnType<F>>;
type NoExtra<A, B> = A extends unknown ? ([Exclude<keyof A, keyof B>] extends [never] ? true : false) : never;
type Fits<A, B> = [A] extends [B] ? (false extends NoExtra<A, B> ? false : true) : false;

test("domain results fit their result schema and add no field (checked by typecheck)", () => {
  const checks = [
    check<Fits<Result<typeof listFiles>, z.output<typeof F.WorkspaceFileListResult>>>(),
    check<Fits<Result<typeof readFile>, z.output<typeof F.WorkspaceFileReadResult>>>(),
    check<Fits<Result<typeof writeFile>, z.output<typeof F.WorkspaceFileWriteResult>>>(),
    check<Fits<Result<typeof editFile>, z.output<typeof F.WorkspaceFileEditResult>>>(),
    check<Fits<Result<typeof applyPatch>, z.output<typeof F.WorkspacePatchApplyResult>>>(),
    check<Fits<Result<typeof diffWorkspace>, z.output<typeof F.WorkspaceDiffResult>>>(),
    check<Fits<Result<typeof exportWorkspace>, z.output<typeof F.WorkspaceExportResult>>>(),
    check<Fits<Result<typeof summarize>, z.output<typeof F.WorkspaceSummaryResult>>>(),
    check<Fits<Result<Snapshots["create"]>, z.output<typeof Snap.WorkspaceSnapshotCreateResult>>>(),
    check<Fits<Result<Snapshots["list"]>, z.output<typeof Snap.WorkspaceSnapshotListResult>>>(),
    check<Fits<Result<Snapshots["delete"]>, z.output<typeof Snap.WorkspaceSnapshotDeleteResult>>>(),
    check<Fits<Result<Snapshots["reset"]>, z.output<typeof Snap.WorkspaceResetResult>>>(),
    check<Fits<Result<Snapshots["fork"]>, z.output<typeof Snap.WorkspaceForkResult>>>(),
    check<Fits<Result<WarmPool["status"]>, z.output<typeof P.PoolStatusResult>>>(),
    check<Fits<Result<WarmPool["drain"]>, z.output<typeof P.PoolDrainResult>>>(),
    check<Fits<Result<WorkspaceManager["lifecycleStep"]>, z.output<typeof WorkspaceLifecycleResult>>>(),
  ];
  assert.ok(checks.every((c) => c === true));
});
