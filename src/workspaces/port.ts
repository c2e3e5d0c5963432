import type {
  WorkspaceCreateInputT,
  WorkspaceStatusResultT,
  WorkspaceUpdateInputT,
} from "../contract/workspace.js";
import type { Engine, SandboxHandle, SandboxSpec } from "../engines/types.js";
import type { CallContext } from "../sandbox/context.js";
import type { RecordStore } from "../sandbox/record-store.js";
import type { SecretValue } from "../secrets/redactor.js";
import type { Guest } from "./guest.js";
import type { PreparedFiles, WorkspaceRecord } from "./record.js";

/**
 * What a workspace capability (shells, services, snapshots, the file tools…) may ask of "the
 * workspace": the one narrow port the manager lends them, so no capability imports the
 * manager and the manager imports none of them. Each capability takes the slice it uses
 * (below); the manager builds the port once (`WorkspaceManager.port`).
 */
export interface WorkspacePort {
  /** The records: load one, update it under its lock (RecordStore). */
  readonly records: RecordStore<WorkspaceRecord>;
  /** The workspace's state directory on the host. */
  dir(id: string): string;
  /** The engine that made the workspace's sandbox. */
  engineFor(rec: WorkspaceRecord): Engine;
  /** The sandbox spec create used (`restart`: a fresh sandbox on the kept files). */
  spec(rec: WorkspaceRecord, restart: boolean): Promise<SandboxSpec>;
  /**
   * A workspace that can take commands, or the error saying why not. The recovery hooks are
   * not run: a capability that calls this has run its own recovery first (snapshots).
   */
  usable(id: string): Promise<WorkspaceRecord>;
  /** The same after the recovery hooks: what exec and sync push check before they act. */
  running(id: string): Promise<WorkspaceRecord>;
  /** Records that the workspace's sandbox died (`failed`, with the reason). */
  markFailed(id: string, reason: string): Promise<void>;
  /** Activity at `at` (ms): moves the idle expiry and tells the sandbox. */
  touch(id: string, at: number): Promise<WorkspaceRecord>;
  /** A running workspace's sandbox for the file tools, with its host directory and baseline. */
  open(id: string): Promise<OpenedWorkspace>;
  /** A running workspace's sandbox for shells and services; counts as activity. */
  attach(id: string): Promise<AttachedWorkspace>;
  status(id: string): Promise<WorkspaceStatusResultT>;
  update(input: WorkspaceUpdateInputT): Promise<WorkspaceStatusResultT>;
  /** A new workspace whose files come from `fill` (fork), through create's own steps. */
  createFrom(
    input: WorkspaceCreateInputT,
    engine: Engine,
    fill: PreparedFiles,
    ctx?: CallContext,
  ): Promise<WorkspaceStatusResultT>;
  delete(id: string): Promise<{ workspace_id: string; deleted: boolean }>;
}

/** Shells and services: a running sandbox, and the published ports of services (status, update). */
export type SessionPort = Pick<WorkspacePort, "attach" | "status" | "update">;
/** Snapshots, reset and fork: records, engines and specs, and create/delete for forks. */
export type SnapshotPort = Pick<
  WorkspacePort,
  "records" | "dir" | "engineFor" | "spec" | "usable" | "createFrom" | "delete"
>;
/** The file tools, diff, export and summary: the guest of a running workspace. */
export type FilesPort = Pick<WorkspacePort, "open">;

/**
 * An intent hook: finishes (or undoes) a multi-step operation whose pyro process died,
 * before the workspace is used or shown (manager.usable, status). Returns whether it
 * recovered something; throws when the workspace must not be used now (a live reset).
 * Capabilities with intents of their own (snapshots.ts) register one with the manager.
 */
export type RecoveryHook = (id: string) => Promise<boolean>;

export interface OpenedWorkspace {
  guest: Guest;
  /** The workspace's state directory on the host. */
  dir: string;
  /** Its baseline (what diff and export --changed-only compare against). */
  baseline: string;
}

/**
 * What `attach` lends shells and services: the running sandbox, the environment's Env and
 * User, and the workspace's secrets (names, and their values for redaction).
 */
export interface AttachedWorkspace {
  workspaceId: string;
  /** The workspace's state directory on the host. */
  dir: string;
  engine: Engine;
  handle: SandboxHandle;
  env: Record<string, string>;
  user?: { uid: number; gid: number };
  /** pyro's cache (where the static sandbox init is found or built). */
  cacheDir: string;
  /** Names of the workspace's secrets (for secret_env and the supervisor's redaction). */
  secretNames: string[];
  /** Their values (read back once per process), to redact what pyro writes itself. */
  secretValues: () => Promise<SecretValue[]>;
}
