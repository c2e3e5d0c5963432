import { join } from "node:path";
import { toPyroError } from "../core/errors.js";
import type { Engine, EngineName, OneShotOutcome, ProbeResult } from "./types.js";

/** `ls /` fails on runsc builds whose statx breaks on directories; the marker proves output gets out. */
const PROBE_ARGV = ["/bin/sh", "-c", "ls / >/dev/null && echo pyro-probe-ok"];

/** What an engine that did not get as far as running a command can do: nothing yet. */
export const NO_CAPABILITIES: ProbeResult["capabilities"] = {
  vm_boot: false,
  guest_exec: false,
  guest_network: false,
};

/** A probe's "no": which engine, why (and what to do), and what it found on the way. */
export function unavailable(
  engine: EngineName,
  detail: string,
  extra?: Record<string, unknown>,
): ProbeResult {
  return {
    engine,
    available: false,
    detail,
    capabilities: { ...NO_CAPABILITIES },
    ...(extra ? { extra } : {}),
  };
}

export type ProbeRun =
  | { ok: boolean; outcome: OneShotOutcome; error?: undefined }
  | { ok: false; outcome?: undefined; error: string };

/**
 * The real test every engine probe ends with: one command in a throwaway sandbox of that
 * engine, under a deadline. Never throws; the engine words the result.
 */
export async function runProbeCommand(
  engine: Pick<Engine, "runOnce">,
  opts: { rootfs: string; scratchDir: string; memMib: number; timeoutMs: number },
): Promise<ProbeRun> {
  const id = `probe${process.pid}${Date.now().toString(36)}`;
  try {
    const outcome = await engine.runOnce(
      {
        id,
        environment: "probe",
        rootfs: opts.rootfs,
        sandboxDir: join(opts.scratchDir, id),
        vcpuCount: 1,
        memMib: opts.memMib,
        network: false,
      },
      { argv: PROBE_ARGV, timeoutMs: opts.timeoutMs },
    );
    return { ok: outcome.exitCode === 0 && outcome.stdout.includes("pyro-probe-ok"), outcome };
  } catch (e) {
    return { ok: false, error: toPyroError(e).message };
  }
}
