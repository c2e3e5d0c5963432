/**
 * The contract's plain values: limits, defaults and enumerations that the wire schemas
 * state, kept free of zod so the CLI's fast paths (cli/fast-*.ts, bundled without zod)
 * and the domain code share them with the schemas instead of restating them.
 */

export const LIMITS = {
  vcpuMax: 16,
  memMibMin: 128,
  memMibMax: 65536,
  timeoutMax: 86_400,
  ttlMax: 7 * 86_400,
} as const;

export const DEFAULTS = {
  vcpu_count: 1,
  mem_mib: 1024,
  timeout_seconds: 30,
  ttl_seconds: 600,
  max_ttl_seconds: 86_400,
  network: false,
} as const;

/** The environment a call gets when it names none (environments/catalog.ts builds it). */
export const DEFAULT_ENVIRONMENT = "debian:12";

/** max_output_bytes: the bounded view of both streams of one result (output/view.ts). */
export const OUTPUT_BUDGET = {
  /** Default max_output_bytes: both streams of one result together. */
  default: 16 * 1024,
  min: 1024,
  max: 1024 * 1024,
} as const;

/** output_read's page size (output/store.ts). */
export const READ_LIMIT = { default: 64 * 1024, max: 1024 * 1024 } as const;

/** workspace file list/read/write/edit (workspaces/files.ts). */
export const FILE_LIMITS = {
  /** Default and largest read budget (bytes of content one read returns). */
  readDefault: 256 * 1024,
  readMax: 8 * 1024 * 1024,
  /** Largest content one write or edit takes. */
  writeMax: 16 * 1024 * 1024,
  listDefault: 1000,
  listMax: 20_000,
};

/** workspace_diff (workspaces/diff.ts). */
export const DIFF_LIMITS = {
  /** Files larger than this are compared by content but not shown as text. */
  textMaxBytes: 1024 * 1024,
  /** Bytes of file contents fetched from the guest for one diff. */
  fetchMaxBytes: 256 * 1024 * 1024,
  patchDefault: 64 * 1024,
  patchMax: 4 * 1024 * 1024,
  filesMax: 1000,
};

/**
 * What a sandbox may reach (issue 13). `off`: loopback only. `egress`: outbound to public
 * addresses, nothing private (see network/policy.ts DEFAULT_DENY). `egress+published-ports`:
 * the same, plus guest ports published on the host's 127.0.0.1. The old boolean
 * `network=true` means `egress`.
 */
export const NETWORK_POLICIES = ["off", "egress", "egress+published-ports"] as const;
export type NetworkPolicy = (typeof NETWORK_POLICIES)[number];

/** Secrets: how many per workspace, and per value (tokens and keys, not data: the guest holds them in memory). */
export const MAX_SECRETS = 32;
export const MAX_SECRET_BYTES = 64 * 1024;
/** Where the guest sees a workspace's secrets, one file per name. */
export const SECRETS_DIR = "/run/pyro-secrets";
