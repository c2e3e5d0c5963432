import * as z from "zod";
import { EnvironmentState } from "./environments.js";

/** Wire schemas of `pyro doctor` (doctor/). */

export const DoctorInput = z.object({
  environment: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .describe("Also say whether this environment is warm, cold or stale (see `pyro prepare`)."),
  fresh: z
    .boolean()
    .default(false)
    .describe(
      "Probe every engine again, even when nothing the last probes depended on changed (they are reused for a day otherwise).",
    ),
});

export const EngineReport = z.object({
  engine: z.enum(["firecracker", "qemu", "gvisor", "kubernetes", "host"]),
  available: z.boolean(),
  detail: z.string(),
  probe_ms: z.number().nullable(),
  capabilities: z.object({ vm_boot: z.boolean(), guest_exec: z.boolean(), guest_network: z.boolean() }),
});
export const DoctorResult = z.object({
  platform: z.object({
    os: z.string(),
    arch: z.string(),
    kernel: z.string(),
    node: z.string(),
    user: z.string(),
    root: z.boolean(),
  }),
  kvm: z.object({
    exists: z.boolean(),
    readable: z.boolean(),
    writable: z.boolean(),
    boots: z.boolean().nullable(),
    detail: z.string(),
  }),
  engines: z.array(EngineReport),
  default_engine: z.string().nullable(),
  capabilities: z.object({ vm_boot: z.boolean(), guest_exec: z.boolean(), guest_network: z.boolean() }),
  networking: z.object({
    default: z.literal("none"),
    available_modes: z.array(z.string()),
    detail: z.string(),
  }),
  paths: z.object({ cache_dir: z.string(), state_dir: z.string(), environments_dir: z.string() }),
  sandbox_priority: z
    .object({ nice: z.number().int(), detail: z.string() })
    .describe("The CPU niceness sandbox processes run at (PYRO_SANDBOX_NICE; 0: pyro's own)."),
  environments: z.array(z.object({ name: z.string(), installed: z.boolean() })),
  shared_cache: z
    .object({
      dirs: z.array(z.string()),
      environments: z.array(z.string()),
      filled: z.boolean(),
      detail: z.string(),
    })
    .describe(
      "The read-only environment cache set-up fills for every user (PYRO_SHARED_CACHE, default /var/cache/pyro): which catalog environments it holds; filled when it holds them all.",
    ),
  host_tools: z.record(z.string(), z.string().nullable()),
  ok: z.boolean(),
  problems: z.array(z.string()),
  probes_cached_at: z
    .string()
    .nullable()
    .describe(
      "When the engine probes this report shows ran, if an earlier run's were reused (nothing they depend on changed); null when they ran now.",
    ),
  environment_state: EnvironmentState.nullable()
    .optional()
    .describe("With --environment: warm, cold or stale."),
});

export type DoctorResultT = z.infer<typeof DoctorResult>;
