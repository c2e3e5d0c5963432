import type { HostAccessPolicy } from "../core/host-paths.js";
import type { PyroPaths } from "../core/paths.js";
import type { EnvironmentStore } from "../environments/store.js";
import type { ExportPolicy } from "../project/export-policy.js";
import type { ProjectSeeder } from "../project/source.js";
import type { SecretPolicy } from "../secrets/spec.js";
import type { EngineRegistry } from "./engines.js";

/** Progress of long work (environment builds, seeding), for terminals and MCP progress. */
export interface Progress {
  message: string;
  /** Step counter, when the work knows it. */
  progress?: number;
  total?: number;
}

export interface CallContext {
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  /**
   * A running command's output, live, as raw bytes (chunk boundaries are arbitrary: a
   * character may span two chunks). Results still carry the bounded view.
   */
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** Directory relative host paths (seed_path, source_path) are resolved against. */
  cwd?: string;
  /**
   * Which host paths the caller may read or write (src/core/host-paths.ts). Undefined is full
   * access: the CLI's and the SDK's caller is the operator. The MCP server sets it.
   */
  hostAccess?: HostAccessPolicy;
  /**
   * Where the caller may export to, and how (src/project/export-policy.ts). Undefined is
   * the operator's freedom (CLI, SDK); the MCP server sets it: a model exports only into the
   * operator's export area.
   */
  exportPolicy?: ExportPolicy;
  /**
   * The project of the MCP server this call came through (`pyro mcp serve` in a git
   * checkout, `--project-path`, `--repo-url`): workspace_create without seed_path seeds from it.
   */
  project?: ProjectSeeder;
  /**
   * Set by the MCP server: the caller is a model, which names secrets the operator offered
   * (and gives values only when the operator allowed it). See src/secrets/spec.ts.
   */
  secretPolicy?: SecretPolicy;
  /**
   * The remote tenant (a token id, `pyro mcp serve --http`) the call acts for: stamped into
   * the records it creates; src/tenants/tenancy.ts keeps other tenants' records out of reach.
   */
  tenant?: string;
}

export interface RuntimeDeps {
  paths: PyroPaths;
  envs: EnvironmentStore;
  env: NodeJS.ProcessEnv;
  /** The engines sandboxes run on (runtime/engine-registry.ts; a fake in unit tests). */
  engines: EngineRegistry;
  /** Makes the state dir private to this user (once per process); before anything is written there. */
  privateState: () => Promise<void>;
}

export function nowIso(): string {
  return new Date().toISOString();
}

export function isoPlusSeconds(seconds: number, from = Date.now()): string {
  return new Date(from + seconds * 1000).toISOString();
}

export function isPast(iso: string): boolean {
  return Date.parse(iso) <= Date.now();
}
