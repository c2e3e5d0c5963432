import type { Readable } from "node:stream";
import type { NetworkSpec } from "../network/policy.js";
import type { NetworkInfo } from "../network/types.js";

export type { NetworkInfo } from "../network/types.js";

/** The execution engines pyro knows, best isolation first. `host` is the unisolated fallback. */
export type EngineName = "firecracker" | "qemu" | "gvisor" | "kubernetes" | "host";

/** What `run`/`exec` results call the engine: the engine's name, or `host_compat`. */
export type ExecutionMode = "firecracker" | "qemu" | "gvisor" | "kubernetes" | "host_compat";

export interface SandboxSpec {
  /** pyro's id for the sandbox (vm_… or ws_…); engines derive their own names from it. */
  id: string;
  environment: string;
  /** Root filesystem of the environment (shared, never written). */
  rootfs: string;
  /** A private directory for this sandbox's engine files (bundle, sockets, logs). */
  sandboxDir: string;
  /** Host directory shown to the guest as /workspace, if any. */
  workspaceDir?: string;
  vcpuCount: number;
  memMib: number;
  network: boolean;
  /** With network: the policy (egress when absent); see network/policy.ts. */
  net?: NetworkSpec;
  /** When the sandbox must be gone; engines that can enforce it without pyro running do. */
  expiresAt?: string;
  /** The user processes run as (an OCI image's User); root when absent. */
  user?: { uid: number; gid: number };
  /**
   * Start again on the files a `halt` kept (workspace start): engines with their own disk
   * (QEMU) boot it as it is, without seeding it or touching the shared boot snapshots.
   */
  restart?: boolean;
}

/** Plain serialisable data: persisted with the VM/workspace so a later process re-attaches. */
export interface SandboxHandle {
  engine: EngineName;
  id: string;
  sandboxDir: string;
  workspaceDir?: string;
  /**
   * Engine-specific data (runsc container id and flags, qemu pids and sockets…), opaque to
   * everything outside `engines/`: only the engine that made it parses it (its `handle.ts`),
   * and what other code needs of it is a capability of `Engine` (or `engines/channel.ts`).
   * Typed `object` so nothing else can read a field of it without a cast, and a test
   * (test/unit/engine-boundary.test.ts) fails on reads of it elsewhere.
   */
  data: object;
}

/**
 * Facts about an engine that the code above it asks instead of comparing engine names (a
 * new engine states its own, and nothing outside `engines/` changes).
 */
export interface EngineTraits {
  /** Commands run in a sandbox of their own (false: host_compat, the host itself). */
  readonly isolated: boolean;
  /**
   * The guest's /workspace is the host's `files/` directory, shared live (gVisor, host);
   * false where the guest has its own disk holding a copy (QEMU, Firecracker).
   */
  readonly sharedWorkspaceDir: boolean;
  /**
   * `files/` can be a mounted ext4 image of the workspace's disk size, shared into the
   * sandbox (the disk limit is enforced on the host): gVisor.
   */
  readonly diskImage: boolean;
  /**
   * Special files (FIFOs, sockets, devices) made in /workspace exist only in the guest (the
   * gVisor gofer emulates them), so a host walk of `files/` cannot see them.
   */
  readonly guestOnlySpecialFiles: boolean;
  /** How /run/pyro-secrets is made in the guest (secrets/guest.ts MATERIALISE). */
  readonly secretsMount: "overlay" | "tmpfs";
  /** The sandbox's network is QEMU's user-mode stack, not a namespace of pyro's. */
  readonly userNetwork: boolean;
  /** The egress policy is enforced (a network namespace with nftables): what doctor reports. */
  readonly egressPolicy: boolean;
  /** Shells and services run as processes the engine's exec starts (QEMU's guest agent). */
  readonly sessionsOverExec: boolean;
  /** The warm pool can keep ready sandboxes of this engine (src/pool/). */
  readonly pool: boolean;
}

/**
 * What an engine has when it says nothing: no isolation and none of the optional behaviours.
 * Each engine spreads it and names only what it has, so a new trait is off until an engine
 * claims it.
 */
export const NO_TRAITS: EngineTraits = {
  isolated: false,
  sharedWorkspaceDir: false,
  diskImage: false,
  guestOnlySpecialFiles: false,
  secretsMount: "tmpfs",
  userNetwork: false,
  egressPolicy: false,
  sessionsOverExec: false,
  pool: false,
};

export interface ExecRequest {
  argv: string[];
  cwd?: string;
  env?: Record<string, string>;
  /** Run as this user (an OCI image's User); the sandbox's default (root) when absent. */
  user?: { uid: number; gid: number };
  timeoutMs: number;
  /** How much of each stream the outcome's stdout/stderr strings hold (in memory). */
  maxOutputBytes?: number;
  signal?: AbortSignal;
  /**
   * Every chunk of the command's output, live, as raw bytes, beyond maxOutputBytes too: the
   * runtime logs the full output to a file and streams it to the faces through these.
   */
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** Bytes for the command's stdin (else /dev/null): how file contents travel in. */
  stdin?: Buffer;
}

export interface DetachedRequest {
  argv: string[];
  cwd?: string;
  env?: Record<string, string>;
  user?: { uid: number; gid: number };
}

export interface ExecOutcome {
  exitCode: number;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  timedOut: boolean;
  /** The sandbox was at its process limit while the command ran (gVisor: forks failed). */
  tooManyProcesses?: boolean;
  execMs: number;
  /** stdout as bytes, binary-safe (file contents and archives travel out this way). */
  stdoutBytes?: Buffer;
}

export interface OneShotOutcome extends ExecOutcome {
  bootMs: number;
}

export type SandboxState = "running" | "stopped" | "missing";

export interface SandboxInspect {
  state: SandboxState;
  /** Why the sandbox is not running, when it is not. */
  reason?: string;
  pid?: number;
}

export interface ProbeResult {
  engine: EngineName;
  available: boolean;
  /** One line: what works, or what is missing and how to get it. */
  detail: string;
  /** Measured by actually running something (ms), when it ran. */
  probeMs?: number;
  capabilities: { vm_boot: boolean; guest_exec: boolean; guest_network: boolean };
  extra?: Record<string, unknown>;
  /**
   * The program the engine drives (runsc for gVisor) as found, its version, and what that
   * version enables: `pyro doctor` shows it under the engine. Absent when not found.
   */
  runtime?: {
    binary: string;
    version: string;
    features: { name: string; enabled: boolean; detail: string }[];
  };
}

export interface ProbeOptions {
  /** A root filesystem to try a real run with; without it only the binaries are checked. */
  rootfs?: string;
  scratchDir: string;
  deadlineMs?: number;
}

export interface Engine {
  readonly name: EngineName;
  readonly executionMode: ExecutionMode;
  readonly traits: EngineTraits;
  probe(opts: ProbeOptions): Promise<ProbeResult>;
  /** Creates and starts a sandbox whose init idles, ready for exec. */
  create(spec: SandboxSpec): Promise<SandboxHandle>;
  exec(handle: SandboxHandle, req: ExecRequest): Promise<ExecOutcome>;
  /** Unpacks a tar stream at `dest` inside the sandbox (created if missing). */
  putArchive(handle: SandboxHandle, tar: Readable, dest: string): Promise<void>;
  stop(handle: SandboxHandle): Promise<void>;
  /** Removes every trace of the sandbox; idempotent. */
  destroy(handle: SandboxHandle): Promise<void>;
  inspect(handle: SandboxHandle): Promise<SandboxInspect>;
  /** Fast path for create → exec → destroy in one call; always cleans up. */
  runOnce(spec: SandboxSpec, req: ExecRequest): Promise<OneShotOutcome>;
  /**
   * Crash recovery, when no handle was persisted (a pyro process killed while it created the
   * sandbox, or a damaged record): whether anything of the sandbox with this id still runs,
   * and removing it; found from the id and sandbox directory alone. Idempotent.
   */
  orphanAlive(id: string, sandboxDir: string): Promise<boolean>;
  removeOrphan(id: string, sandboxDir: string): Promise<void>;
  /**
   * Long-running processes (shells, services; see workspaces/supervised.ts): the host
   * directory the sandbox shares read-write at `guest`, or undefined when this sandbox has
   * none (made before shells existed, or an engine without them).
   */
  runDir?(handle: SandboxHandle): { host: string; guest: string } | undefined;
  /** Starts argv in the sandbox and returns at once; it outlives this process. */
  spawnDetached?(handle: SandboxHandle, req: DetachedRequest): Promise<void>;
  /**
   * Replaces the policy of a running sandbox that has a network of its own (allow/deny
   * lists, hosts, published ports); what it now has is returned.
   */
  updateNetwork?(handle: SandboxHandle, net: NetworkSpec): Promise<NetworkInfo>;
  /** The sandbox's network as it really is (policy, addresses, published ports). */
  networkInfo?(handle: SandboxHandle): NetworkInfo | undefined;
  /** Moves the expiry the sandbox enforces on itself (see SandboxSpec.expiresAt). */
  setExpiry?(handle: SandboxHandle, expiresAt: string): Promise<void>;
  /**
   * The handle of a running sandbox whose directory (sandboxDir, and workspaceDir beside it)
   * was renamed as a whole: every host path in it rewritten. Engines whose sandbox keeps
   * working across such a rename (gVisor: its gofer holds the bound directories open) have
   * it; the warm pool hands workspace slots out this way (src/pool/workspace-pool.ts).
   */
  relocate?(handle: SandboxHandle, from: string, to: string): SandboxHandle;
  /**
   * Ends every process of the sandbox and frees its memory, keeping what `create` with
   * `restart: true` boots again (QEMU: the disk). Idempotent; absent means `destroy` does it.
   */
  halt?(handle: SandboxHandle): Promise<void>;
  /**
   * For a restart on the same files (reset): ends every process of the sandbox now and lets
   * its removal finish in the background, so the fresh sandbox (`restart: true`) need not
   * wait for it. Absent means `destroy`.
   */
  retire?(handle: SandboxHandle): Promise<void>;
  /**
   * Memory-level pause: saves the running sandbox (memory, processes) into `imageDir` and
   * ends its processes; `resume` brings it back from there with the same processes.
   */
  pause?(handle: SandboxHandle, imageDir: string): Promise<void>;
  resume?(handle: SandboxHandle, imageDir: string, spec: SandboxSpec): Promise<SandboxHandle>;
  /**
   * Freezes every process of the running sandbox in place (gVisor: `runsc pause`, ~20 ms),
   * so its files hold still for a snapshot; `thaw` lets them run on. Thawing a sandbox that
   * is not frozen is no error. Absent: the engine cannot, and snapshots scan a live tree.
   */
  freeze?(handle: SandboxHandle): Promise<void>;
  thaw?(handle: SandboxHandle): Promise<void>;
  /**
   * Waits (bounded) until no engine command a dead pyro process started against this
   * sandbox still runs (gVisor: a `runsc delete` that outlived its parent), so a recovery
   * does not race it. The handle when the record has one, else found from the id.
   */
  settle?(id: string, handle: SandboxHandle | undefined): Promise<void>;
  /**
   * Whether the sandbox runs pyro's own init with its file tools (`/.pyro/init read`):
   * gVisor sandboxes made since the init existed.
   */
  hasInit?(handle: SandboxHandle): boolean;
}
