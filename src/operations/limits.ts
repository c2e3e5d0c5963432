/**
 * The wire schemas' plain limits and defaults (schemas.ts builds its zod fields from them and
 * re-exports them). A module of its own, without zod, so that the CLI's fast paths
 * (cli/fast-exec.ts, cli/fast-run.ts, bundled without zod) parse their flags against the same
 * numbers instead of copies of them.
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
