import { readFile } from "node:fs/promises";
import { ignore } from "../util/best-effort.js";
import { findMkfsErofs, MKFS_EROFS_HINT } from "../util/erofs.js";
import { runCapture, which } from "../util/proc.js";

/**
 * What a user who is not root needs, checked for them specifically, each with the fix:
 * user namespaces (rootless gVisor runs in one), subordinate ids and newuidmap (mmdebstrap's
 * unshare mode builds environments in one), mkfs.erofs (gVisor boots environments from an
 * EROFS image without root), and /dev/kvm access for microVMs.
 */
export interface RootlessCheck {
  /** What is missing and how to fix it, one sentence each; empty when all is well. */
  problems: string[];
  /** Whether this user can start a user namespace (rootless gVisor needs one). */
  userns: boolean;
}

async function readNumber(path: string): Promise<number | undefined> {
  const s = await readFile(path, "utf8").catch(ignore("kernel setting not readable: its value is unknown"));
  const n = s === undefined ? Number.NaN : Number.parseInt(s.trim(), 10);
  return Number.isFinite(n) ? n : undefined;
}

/** Ranges `name:start:count` for this user (by name or uid) in an /etc/subuid-style file. */
export function subordinateIds(text: string, user: string, uid: number): number {
  let total = 0;
  for (const line of text.split("\n")) {
    const [who, , count] = line.trim().split(":");
    if (who === user || who === String(uid)) total += Number.parseInt(count ?? "", 10) || 0;
  }
  return total;
}

export async function checkRootless(
  user: string,
  env: NodeJS.ProcessEnv = process.env,
  /** Where to look, and as whom (tests). */
  files: { subuid?: string; subgid?: string; procSys?: string; uid?: number } = {},
): Promise<RootlessCheck> {
  const uid = files.uid ?? process.getuid?.() ?? 0;
  const problems: string[] = [];
  if (uid === 0) return { problems, userns: true };
  const sys = files.procSys ?? "/proc/sys";
  let userns = true;
  if ((await readNumber(`${sys}/user/max_user_namespaces`)) === 0) {
    userns = false;
    problems.push(
      "user namespaces are disabled by sysctl user.max_user_namespaces=0, and gVisor needs one to run without root: run `sudo sysctl -w user.max_user_namespaces=15000` (and set it in /etc/sysctl.d/ to keep it)",
    );
  }
  if ((await readNumber(`${sys}/kernel/unprivileged_userns_clone`)) === 0) {
    userns = false;
    problems.push(
      "unprivileged user namespaces are disabled by sysctl kernel.unprivileged_userns_clone=0: run `sudo sysctl -w kernel.unprivileged_userns_clone=1` (and set it in /etc/sysctl.d/ to keep it)",
    );
  }
  if ((await readNumber(`${sys}/kernel/apparmor_restrict_unprivileged_userns`)) === 1) {
    userns = false;
    problems.push(
      "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1): run `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`, or give runsc an AppArmor profile that allows userns",
    );
  }
  if (userns) {
    // The sysctls say nothing about seccomp filters or container runtimes above us: try one.
    const unshare = await which("unshare", env);
    if (unshare) {
      const r = await runCapture(unshare, ["--user", "--map-root-user", "true"], { timeoutMs: 5_000, env });
      if (r.exitCode !== 0) {
        userns = false;
        problems.push(
          `you cannot create a user namespace here (\`unshare --user --map-root-user true\`: ${r.stderr.trim().slice(0, 200) || `exit ${r.exitCode}`}), and gVisor needs one to run without root: allow unprivileged user namespaces on this host, or run pyro as root`,
        );
      }
    }
  }
  if (!(await findMkfsErofs(env)))
    problems.push(
      `mkfs.erofs is missing: without root, gVisor boots environments from EROFS images that it makes: ${MKFS_EROFS_HINT}`,
    );
  // Building an environment (not needed when the shared cache has it) uses subordinate ids.
  const subuid = await readFile(files.subuid ?? "/etc/subuid", "utf8").catch(() => "");
  const subgid = await readFile(files.subgid ?? "/etc/subgid", "utf8").catch(() => "");
  const missing = [
    ...(subordinateIds(subuid, user, uid) < 65536 ? ["/etc/subuid"] : []),
    ...(subordinateIds(subgid, user, uid) < 65536 ? ["/etc/subgid"] : []),
  ];
  if (missing.length > 0)
    problems.push(
      `${user} has no range of 65536 subordinate ids in ${missing.join(" and ")}, so environments cannot be built without root (environments in the shared cache still work): run \`sudo scripts/setup-host.sh --user ${user}\``,
    );
  if (!(await which("newuidmap", env)) || !(await which("newgidmap", env)))
    problems.push(
      "newuidmap/newgidmap are missing, so environments cannot be built without root: run `sudo scripts/setup-host.sh` (or `sudo apt-get install uidmap`)",
    );
  return { problems, userns };
}
