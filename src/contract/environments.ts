import * as z from "zod";
import { ExecutionModeSchema, environment } from "./common.js";
import { DEFAULT_ENVIRONMENT } from "./defaults.js";

/** Wire schemas of environments (environments/) and prepare (runtime/prepare.ts). */

export const EnvNameInput = z.object({ environment });
export const EnvPruneInput = z.object({
  all: z.boolean().default(false).describe("Also remove installed catalog environments."),
});

export const PrepareInput = z.object({
  environment: environment.default(DEFAULT_ENVIRONMENT),
  network: z
    .boolean()
    .default(false)
    .describe("Warm a sandbox with network access (as network=true calls get)."),
  force: z.boolean().default(false).describe("Prepare again even when the environment is already warm."),
});
export const EnvInfo = z.object({
  name: z.string(),
  kind: z.enum(["catalog", "image", "recipe"]),
  description: z.string(),
  digest: z.string().nullable(),
  installed: z.boolean(),
  path: z.string().nullable(),
  size_bytes: z.number().nullable(),
  built_at: z.string().nullable(),
  recipe: z.object({ suite: z.string(), variant: z.string(), packages: z.array(z.string()) }).nullable(),
  config: z
    .object({
      env: z.record(z.string(), z.string()),
      working_dir: z.string().nullable(),
      uid: z.number(),
      gid: z.number(),
    })
    .nullable(),
});
export const EnvListResult = z.object({ environments: z.array(EnvInfo) });
export const EnvPullResult = z.object({
  environment: EnvInfo,
  pulled: z.boolean(),
  bytes_downloaded: z.number(),
  layers_downloaded: z.number(),
  layers_cached: z.number(),
});
export const EnvBuildInput = z.object({
  recipe_path: z
    .string()
    .min(1)
    .max(4096)
    .describe("Path of a JSON recipe file (relative paths resolve against the current directory)."),
});
export const EnvBuildResult = z.object({
  environment: EnvInfo,
  built: z.boolean(),
  duration_ms: z.number(),
});
export const EnvPruneResult = z.object({ removed: z.array(z.string()), bytes_freed: z.number() });

export const WarmState = z.enum(["warm", "cold", "stale"]);
export const PrepareResult = z.object({
  environment: z.string(),
  state: WarmState,
  pulled: z.boolean().describe("Whether the environment was built (or fetched) by this call."),
  warm_run_ms: z
    .number()
    .int()
    .nullable()
    .describe("The throwaway sandbox's run; null when it was already warm."),
  execution_mode: ExecutionModeSchema.nullable(),
  detail: z.string(),
});
export const EnvironmentState = z.object({ name: z.string(), state: WarmState, detail: z.string() });

export type EnvInfoT = z.infer<typeof EnvInfo>;
export type PrepareInputT = z.infer<typeof PrepareInput>;
export type PrepareResultT = z.infer<typeof PrepareResult>;
