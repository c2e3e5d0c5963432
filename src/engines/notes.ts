import type { ExecutionMode } from "./types.js";

/**
 * What a result should say about how the engine honoured the request, where it differs from
 * what was asked. gVisor cannot show the guest fewer than 2 CPUs (runsc's minimum; measured
 * with and without --cpu-num-from-quota), so a vcpu_count of 1 is a CPU-time quota only.
 */
export function resultNotes(mode: ExecutionMode | null, vcpuCount: number): string[] {
  const notes: string[] = [];
  if (mode === "gvisor" && vcpuCount < 2)
    notes.push(
      `gVisor shows the guest at least 2 CPUs (nproc); vcpu_count=${vcpuCount} is enforced as a CPU-time quota`,
    );
  if (mode === "host_compat") notes.push("ran on the host WITHOUT isolation (allow_host_compat)");
  return notes;
}
