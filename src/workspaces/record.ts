import * as z from "zod";
import { ExecutionModeSchema } from "../contract/common.js";
import { NetworkSpecRecord } from "../contract/network.js";
import { LastCommand, SeedInfo } from "../contract/workspace.js";
import { HandleSchema, OwnerSchema } from "../sandbox/sandbox-record.js";
import { SecretRecordSchema } from "../secrets/keeper.js";

/**
 * A workspace's stored record (workspace.json): its schema and type, on their own so the
 * manager and every capability (port.ts) share them without importing each other.
 */

/** The seed as stored: records from before the origin fields lack them (see seedView). */
const SeedRecord = SeedInfo.partial({
  origin_kind: true,
  origin_ref: true,
  origin_commit: true,
  origin_url: true,
});

/** The stored seed with its origin filled in for records written before origins existed. */
export function seedView(s: z.infer<typeof SeedRecord>): z.infer<typeof SeedInfo> {
  return {
    ...s,
    origin_kind: s.origin_kind ?? (s.mode === "empty" ? "none" : "seed_path"),
    origin_ref: s.origin_ref ?? null,
    origin_commit: s.origin_commit ?? null,
    origin_url: s.origin_url ?? null,
  };
}

/**
 * The stored record, validated on every load (see RecordStore). `creating` is written before
 * anything else exists, with the creating process as `owner`, so a sandbox whose creator
 * died at any moment is still found, shown and deleted. Loose: fields a newer pyro added
 * survive a read-modify-write by this one.
 */
export const WorkspaceRecordSchema = z.looseObject({
  workspace_id: z.string(),
  environment: z.string(),
  // stopping/starting: a lifecycle step in progress (owner), see lifecycle.ts; paused: see `pause`.
  state: z.enum(["creating", "running", "stopping", "stopped", "starting", "paused", "expired", "failed"]),
  reason: z.string().nullable(),
  created_at: z.string(),
  expires_at: z.string(),
  ttl_seconds: z.number().int().positive().default(600),
  max_expires_at: z.string().optional(),
  last_activity_at: z.string().optional(),
  vcpu_count: z.number().int(),
  mem_mib: z.number().int(),
  disk_mib: z.number().int().positive().default(4096),
  disk_enforced: z.boolean().default(false),
  network: z.boolean(),
  /** The network policy asked for (absent in records made before policies: `network` alone). */
  network_spec: NetworkSpecRecord.optional(),
  engine: z.enum(["firecracker", "qemu", "gvisor", "kubernetes", "host"]),
  execution_mode: ExecutionModeSchema,
  handle: HandleSchema.nullable(),
  owner: OwnerSchema.nullable().optional(),
  command_count: z.number().int().nonnegative(),
  last_command: LastCommand.nullable(),
  workspace_seed: SeedRecord,
  /** Names, sizes and where values came from; never a value (see src/secrets/). */
  secrets: z.array(SecretRecordSchema).optional(),
  // The remote tenant (token id) that created it (src/remote/); absent for local callers.
  tenant: z.string().optional(),
  name: z.string().nullable().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  pause: z.object({ with_memory: z.boolean(), at: z.string() }).nullable().optional(),
  ended_sessions: z
    .object({ shells: z.array(z.string()), services: z.array(z.string()) })
    .nullable()
    .optional(),
});
export type WorkspaceRecord = z.infer<typeof WorkspaceRecordSchema>;

/** Files and baseline for a workspace made from another's state (fork; see createFrom). */
export interface PreparedFiles {
  seed: WorkspaceRecord["workspace_seed"];
  /** More record fields (e.g. where it was forked from). */
  extra?: Record<string, unknown>;
  /** Fills the new, empty files/ directory (while the sandbox starts: no guest command runs yet). */
  into(filesDir: string, signal?: AbortSignal): Promise<void>;
  /** Records the baseline (while the sandbox starts). */
  baseline(wsDir: string): Promise<void>;
}
