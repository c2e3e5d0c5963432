import type { PyroPaths } from "../../core/paths.js";
import { chooseAccel, findQemu, findQemuImg } from "./probe.js";

/**
 * Cheap readiness check for engine selection (no boot): the QEMU binaries exist, and, when
 * `requireKvm`, a recorded probe on this host kernel proved that KVM guests boot (or
 * PYRO_QEMU_ACCEL=kvm insists). `pyro doctor` records those probes.
 */
export async function qemuQuickAvailable(
  paths: PyroPaths,
  env: NodeJS.ProcessEnv,
  opts: { requireKvm: boolean },
): Promise<boolean> {
  if (!(await findQemu(env)) || !(await findQemuImg(env))) return false;
  if (!opts.requireKvm) return true;
  return (await chooseAccel(paths.cacheDir, env)) === "kvm";
}
