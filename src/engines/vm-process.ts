/**
 * What the handles of the two microVM engines (QEMU, Firecracker) share: a VM process found by
 * its pid, a marker only its command line holds (against pid reuse), and its files. Each
 * engine's handle.ts checks its own further fields on top.
 */

/** Why `raw` is no VM process's data (pid, marker, these files), or undefined. */
export function vmProcessProblem(raw: unknown, files: readonly string[]): string | undefined {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) return "data is not an object";
  const d = raw as Record<string, unknown>;
  if (!Number.isInteger(d.pid) || (d.pid as number) < 0) return "data.pid is not a whole number";
  if (typeof d.marker !== "string") return "data.marker is not a string";
  const f = d.files as Record<string, unknown> | undefined;
  if (!f || typeof f !== "object" || !files.every((k) => typeof f[k] === "string"))
    return "data.files is not the VM's files";
  return undefined;
}

/**
 * What destroy can use of a VM handle that may be damaged or half-written: each field only
 * when it has its type (the VM is still found and killed through what is there).
 */
export function vmProcessLoose<F extends { socketDir: string }>(
  raw: unknown,
): { pid?: number; marker?: string; files?: F } {
  const d = raw && typeof raw === "object" ? (raw as Record<string, unknown>) : {};
  const f = d.files as Partial<F> | undefined;
  return {
    ...(Number.isInteger(d.pid) ? { pid: d.pid as number } : {}),
    ...(typeof d.marker === "string" ? { marker: d.marker } : {}),
    ...(f && typeof f === "object" && typeof f.socketDir === "string" ? { files: f as F } : {}),
  };
}
