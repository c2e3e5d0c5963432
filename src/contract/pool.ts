import * as z from "zod";

/** Wire schemas of the warm pool's operations (src/pool/). */
export const PoolKeyStatus = z.object({
  key: z.string(),
  environment: z.string(),
  vcpu_count: z.number().int(),
  mem_mib: z.number().int(),
  network: z.boolean(),
  workspace: z.boolean(),
  configured: z.boolean(),
  ready: z.number().int(),
  in_use: z.number().int(),
  pending_destroy: z.number().int(),
  rss_mib_per_ready: z.number().nullable(),
});
export const PoolStatusResult = z.object({
  size: z.number().int(),
  idle_seconds: z.number().int(),
  keys: z.array(PoolKeyStatus),
});
export const PoolFillResult = z.object({
  created: z.number().int(),
  destroyed: z.number().int(),
  busy: z.boolean(),
});
export const PoolDrainResult = z.object({ destroyed: z.number().int(), in_use: z.number().int() });
