import * as z from "zod";
import {
  allow_host_compat,
  command,
  ExecutionModeSchema,
  environment,
  execFields,
  max_output_bytes,
  mem_mib,
  network,
  timeout_seconds,
  ttl_seconds,
  vcpu_count,
} from "./common.js";
import { DEFAULT_ENVIRONMENT, DEFAULTS, OUTPUT_BUDGET } from "./defaults.js";
import { NetworkInfoSchema, networkRuleFields } from "./network.js";

/** Wire schemas of one-shot runs and the vm_* lifecycle (runtime/vms.ts). */

export const vmId = z.string().max(20_000).describe("VM id as returned by vm_create (vm_…).");

export const RunInput = z.object({
  environment: environment.default(DEFAULT_ENVIRONMENT),
  command,
  vcpu_count: vcpu_count.default(DEFAULTS.vcpu_count),
  mem_mib: mem_mib.default(DEFAULTS.mem_mib),
  timeout_seconds: timeout_seconds.default(DEFAULTS.timeout_seconds),
  ttl_seconds: ttl_seconds.default(DEFAULTS.ttl_seconds),
  network: network.default(false),
  ...networkRuleFields,
  allow_host_compat: allow_host_compat.default(false),
  max_output_bytes: max_output_bytes.default(OUTPUT_BUDGET.default),
});

export const VmCreateInput = z.object({
  environment: environment.default(DEFAULT_ENVIRONMENT),
  vcpu_count: vcpu_count.default(DEFAULTS.vcpu_count),
  mem_mib: mem_mib.default(DEFAULTS.mem_mib),
  ttl_seconds: ttl_seconds.default(DEFAULTS.ttl_seconds),
  network: network.default(false),
  ...networkRuleFields,
  allow_host_compat: allow_host_compat.default(false),
});
export const VmIdInput = z.object({ vm_id: vmId });
export const VmExecInput = z.object({
  vm_id: vmId,
  command,
  timeout_seconds: timeout_seconds.default(DEFAULTS.timeout_seconds),
  max_output_bytes: max_output_bytes.default(OUTPUT_BUDGET.default),
});
export const RunResult = z.object({ vm_id: z.string(), ...execFields, cleaned_up: z.boolean() });
export const VmExecResult = RunResult;

export const VmState = z.enum([
  "created",
  "starting",
  "running",
  "stopped",
  "expired",
  "failed",
  "damaged",
  "deleted",
]);
export const VmStatusResult = z.object({
  vm_id: z.string(),
  environment: z.string(),
  state: VmState,
  reason: z.string().nullable(),
  created_at: z.string(),
  expires_at: z.string(),
  vcpu_count: z.number().int(),
  mem_mib: z.number().int(),
  network: z.boolean(),
  execution_mode: ExecutionModeSchema.nullable(),
});
/** A vm_list entry: a VM, or a one-shot run still running (its sandbox exists only while it runs). */
export const VmListEntry = VmStatusResult.extend({
  kind: z
    .enum(["vm", "run"])
    .describe(
      "vm: made with vm_create; run: a one-shot vm_run still running (vm_delete ends it and removes its sandbox).",
    ),
  owner: z
    .string()
    .nullable()
    .describe("The tenant (token id) that started it over HTTP; null when a local caller did."),
  age_seconds: z.number().int().describe("Seconds since it was created (a run: since it started)."),
  command: z.string().nullable().describe("A run's command; null for a VM."),
});
export const VmListResult = z.object({ vms: z.array(VmListEntry) });
export const VmDeleteResult = z.object({ vm_id: z.string(), deleted: z.boolean() });
export const VmNetworkResult = z.object({
  vm_id: z.string(),
  network: z.boolean(),
  mode: z
    .enum(["none", "namespace", "user", "host"])
    .describe(
      "none: loopback only; namespace: a network namespace of pyro's, the policy enforced by nftables; host: the host's own network (sandboxes made before network policies).",
    ),
  execution_mode: ExecutionModeSchema.nullable(),
  network_info: NetworkInfoSchema.nullable().describe(
    "The policy and addresses the sandbox really has (null when it is not running).",
  ),
});
export const ReapResult = z.object({
  reaped_vms: z.array(z.string()),
  reaped_workspaces: z.array(z.string()),
});

export type RunInputT = z.infer<typeof RunInput>;
export type VmCreateInputT = z.infer<typeof VmCreateInput>;
export type VmExecInputT = z.infer<typeof VmExecInput>;
export type RunResultT = z.infer<typeof RunResult>;
export type VmStatusResultT = z.infer<typeof VmStatusResult>;
export type VmListEntryT = z.infer<typeof VmListEntry>;
export type ReapResultT = z.infer<typeof ReapResult>;
