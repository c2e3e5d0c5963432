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
  binary: z
    .string()
    .nullable()
    .describe("The program the engine drives (gVisor: runsc) as found; null when not found or none."),
  version: z.string().nullable().describe("What that program says its version is (`runsc --version`)."),
  features: z
    .array(z.object({ name: z.string(), enabled: z.boolean(), detail: z.string() }))
    .describe(
      "What that version enables (gVisor: `netstack`, its own network stack in the sandbox's namespace, from release-20240807.0; `systrap_idle`, idle sandboxes that park, from release-20260622.0); empty where the engine has none to report.",
    ),
});
/** One check of the kubernetes engine's cluster (engines/kubernetes/doctor.ts). */
export const KubernetesCheck = z.object({
  name: z.enum(["api", "rbac", "runtime_class", "sandbox_crds", "warm_pool"]),
  status: z.enum(["ok", "warn", "fail"]),
  detail: z.string(),
  fix: z.string().nullable(),
});
export const KubernetesReport = z
  .object({
    source: z.string().describe("Where the config came from: a kubeconfig path, or in-cluster."),
    context: z.string().nullable(),
    server: z.string().nullable(),
    namespace: z.string(),
    runtime_class: z
      .string()
      .nullable()
      .describe("PYRO_K8S_RUNTIME_CLASS (default gvisor); null when set empty."),
    server_version: z.string().nullable(),
    missing_permissions: z
      .array(z.string())
      .describe(
        "Grants of deploy/kubernetes/role.yaml this identity lacks, as `kubectl auth can-i` names them.",
      ),
    crds: z.array(z.string()).describe("The agent-sandbox kinds the namespace serves at v1beta1."),
    workload: z
      .enum(["sandbox", "pod"])
      .nullable()
      .describe(
        "What sandboxes become: agent-sandbox Sandboxes when served (PYRO_K8S_MODE=auto), plain Pods otherwise; null when none can start.",
      ),
    warm_pool: z
      .boolean()
      .describe("PYRO_K8S_WARM_POOL names a SandboxWarmPool that exists and has a ready sandbox."),
    checks: z.array(KubernetesCheck),
    ok: z.boolean(),
  })
  .describe("The kubernetes engine's cluster checks (with PYRO_ENGINE=kubernetes; null otherwise).");

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
    route: z
      .enum(["netstack", "host-stack"])
      .nullable()
      .describe(
        "How the default engine's sandboxes with network reach their network namespace: `netstack` (gVisor's own TCP/IP stack, runsc --network=sandbox: the guest's socket calls end in the sandbox), `host-stack` (the host kernel's stack inside the namespace, for a runsc that refuses netstack; PYRO_GVISOR_NET_ROUTE overrides); null when that engine has no such choice or no network here.",
      ),
  }),
  paths: z.object({ cache_dir: z.string(), state_dir: z.string(), environments_dir: z.string() }),
  sandbox_priority: z
    .object({ nice: z.number().int(), detail: z.string() })
    .describe("The CPU niceness sandbox processes run at (PYRO_SANDBOX_NICE; 0: pyro's own)."),
  gvisor_platform: z
    .object({ platform: z.string(), source: z.enum(["default", "PYRO_RUNSC_PLATFORM"]), detail: z.string() })
    .describe(
      "The gVisor platform sandboxes start with (runsc --platform): pyro's measured default, or PYRO_RUNSC_PLATFORM's.",
    ),
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
  kubernetes: KubernetesReport.nullable(),
  environment_state: EnvironmentState.nullable()
    .optional()
    .describe("With --environment: warm, cold or stale."),
});

export type DoctorResultT = z.infer<typeof DoctorResult>;
export type KubernetesReportT = z.infer<typeof KubernetesReport>;
