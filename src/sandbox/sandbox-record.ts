import * as z from "zod";
import { PyroError } from "../core/errors.js";
import type { EngineName, SandboxHandle } from "../engines/types.js";
import { ignore } from "../util/best-effort.js";
import type { EngineRegistry } from "./engines.js";

/**
 * What every sandbox record (VM or workspace) shares and how it is checked on load: a record
 * is read back by later processes, maybe after a crash or a hand edit, and its paths drive
 * deletes, so nothing in it is trusted before it passes these checks.
 */
export const OwnerSchema = z.object({
  pid: z.number().int().positive(),
  start: z.number().int().nonnegative(),
});

export const HandleSchema = z.object({
  engine: z.enum(["firecracker", "qemu", "gvisor", "kubernetes", "host"]),
  id: z.string(),
  sandboxDir: z.string(),
  workspaceDir: z.string().optional(),
  // Engine-specific and opaque here: each engine parses its own (engines/<engine>/handle.ts).
  data: z.custom<object>((v) => typeof v === "object" && v !== null && !Array.isArray(v), {
    message: "handle data must be a JSON object",
  }),
});

export function asHandle(h: z.infer<typeof HandleSchema>): SandboxHandle {
  return h as SandboxHandle;
}

/**
 * Ends a record's sandbox and checks that it is gone: through the handle when the record has
 * one, else (interrupted create, damaged record) by asking the record's engine, or every
 * engine that could have made it when the record cannot say. Throws rather than let a
 * delete report success over a live sandbox. `what` names it in errors ("VM vm_…").
 */
export async function removeRecordSandbox(
  what: string,
  id: string,
  sandboxDir: string,
  rec: { engine: EngineName | null; handle: z.infer<typeof HandleSchema> | null } | undefined,
  engines: EngineRegistry,
): Promise<void> {
  const known = rec?.engine ? engines.byName(rec.engine) : undefined;
  if (rec?.handle) {
    if (!known)
      throw new PyroError("engine_unavailable", `engine ${rec.engine} is not available in this build`);
    const handle = asHandle(rec.handle);
    await known.destroy(handle);
    if (
      (
        await known
          .inspect(handle)
          .catch(ignore("inspect failed after destroy: the sandbox is not seen running"))
      )?.state === "running"
    )
      throw new PyroError("engine_failure", `the sandbox of ${what} is still running after delete`);
  }
  for (const engine of known ? [known] : engines.all()) await engine.removeOrphan(id, sandboxDir);
}

/** The fields a record's status shows as they are stored, for both kinds of sandbox. */
interface SizedRecord<S extends string> {
  environment: string;
  state: S;
  reason: string | null;
  created_at: string;
  expires_at: string;
  vcpu_count: number;
  mem_mib: number;
}

/**
 * The part of a status view that VMs and workspaces share, in the wire order (environment
 * through mem_mib), so each manager's `view` adds only what is its own.
 */
export function sizedView<S extends string>(r: SizedRecord<S>): SizedRecord<S> {
  return {
    environment: r.environment,
    state: r.state,
    reason: r.reason,
    created_at: r.created_at,
    expires_at: r.expires_at,
    vcpu_count: r.vcpu_count,
    mem_mib: r.mem_mib,
  };
}
