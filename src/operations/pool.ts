import type * as z from "zod";
import { EmptyInput } from "../contract/common.js";
import { PoolDrainResult, PoolFillResult, PoolStatusResult } from "../contract/pool.js";
import type { Runtime } from "../runtime/runtime.js";
import { op } from "./operation.js";

/** The warm pool's operations (src/pool/): CLI and SDK only; a model has no use for them. */
const POOL_ENV =
  "The pool is configured by environment variables: PYRO_POOL_SIZE (ready sandboxes per key, default 2; 0 turns the pool off), " +
  "PYRO_POOL_KEYS (comma-separated ENV[#VCPUxMEM][#net][#qemu] for runs, #qemu meaning booted QEMU microVMs for PYRO_ENGINE=qemu; ENV[#VCPUxMEM]#ws for workspace create; default debian:12), PYRO_POOL_IDLE_SECONDS (default 900).";

const poolOf = (rt: Runtime) => rt.pool();

export const POOL_OPERATIONS = [
  op({
    name: "pool_status",
    sdk: "poolStatus",
    title: "Show the warm pool",
    description: `The warm pool of pre-started gVisor sandboxes vm_run (and, for #ws keys, workspace_create) takes from: per key, how many are ready, in use and waiting to be destroyed, and the memory (RSS) of a ready one. ${POOL_ENV}`,
    input: EmptyInput,
    result: PoolStatusResult,
    mcp: false,
    readOnly: true,
    cli: {
      path: ["pool", "status"],
      examples: [
        "pyro pool status",
        "PYRO_POOL_SIZE=2 pyro pool status --json",
        "PYRO_POOL_SIZE=2 PYRO_POOL_KEYS=debian:12,debian:12#ws pyro pool fill",
      ],
    },
    handler: (rt) => poolOf(rt).status(),
  }),
  op({
    name: "pool_fill",
    sdk: "fillPool",
    title: "Top the warm pool up",
    description: `Remove stale pool sandboxes and start new ones until every configured key has PYRO_POOL_SIZE ready (what runs detached after each claim). busy: another process held the pool for 30 s. ${POOL_ENV}`,
    input: EmptyInput,
    result: PoolFillResult,
    mcp: false,
    cli: { path: ["pool", "fill"], examples: ["PYRO_POOL_SIZE=2 pyro pool fill", "pyro pool fill --json"] },
    handler: async (rt) => {
      // Field by field: the pool's own result is not the wire's (no busy; undefined when
      // another fill held the lock), and a field it gains must not reach the faces unlisted.
      const r = await poolOf(rt).fill();
      return (
        r
          ? { created: r.created, destroyed: r.destroyed, busy: false }
          : { created: 0, destroyed: 0, busy: true }
      ) satisfies z.output<typeof PoolFillResult>;
    },
  }),
  op({
    name: "pool_drain",
    sdk: "drainPool",
    title: "Empty the warm pool",
    description:
      "Destroy every pooled sandbox and remove the pool's records (a sandbox in use by a running command is left to finish; in_use counts them).",
    input: EmptyInput,
    result: PoolDrainResult,
    mcp: false,
    destructive: true,
    cli: { path: ["pool", "drain"], examples: ["pyro pool drain", "pyro pool drain --json"] },
    handler: (rt) => poolOf(rt).drain(),
  }),
];
