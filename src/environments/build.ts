import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { PyroError } from "../errors.js";
import { findMkfsErofs, MKFS_EROFS_OPTIONS, rootfsImagePath } from "../util/erofs.js";
import { which } from "../util/proc.js";
import type { EnvironmentRecipe } from "./catalog.js";

export interface BuildProgress {
  phase: "resolve" | "download" | "extract" | "install" | "configure" | "finish";
  message: string;
}

function phaseOf(line: string): BuildProgress["phase"] {
  if (/download/i.test(line)) return "download";
  if (/extract/i.test(line)) return "extract";
  if (/install/i.test(line)) return "install";
  if (/setting up|configur|hook|clean/i.test(line)) return "configure";
  if (/success/i.test(line)) return "finish";
  return "resolve";
}

/**
 * Builds a root filesystem from Debian packages with mmdebstrap into `target` (which must
 * not exist). Progress is mmdebstrap's own "I:" lines, passed on as they come.
 */
export async function buildRootfs(
  recipe: EnvironmentRecipe,
  target: string,
  opts: { onProgress?: (p: BuildProgress) => void; signal?: AbortSignal; env?: NodeJS.ProcessEnv } = {},
): Promise<void> {
  const env = opts.env ?? process.env;
  const binary = env.PYRO_MMDEBSTRAP || (await which("mmdebstrap", env));
  if (!binary) {
    throw new PyroError(
      "host_dependency_missing",
      "mmdebstrap is not installed; it builds environments from Debian packages",
      "run `sudo scripts/setup-host.sh` (or `apt-get install mmdebstrap`)",
    );
  }
  // Without root, mmdebstrap's root mode is out of reach; unshare mode builds in a user
  // namespace from the user's subordinate ids (/etc/subuid, newuidmap from `uidmap`).
  const unshare = (process.getuid?.() ?? 0) !== 0;
  const mkfs = await findMkfsErofs(env);
  const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
  const args = [
    `--variant=${recipe.variant}`,
    `--include=${recipe.include.join(",")}`,
    "--verbose",
    ...(unshare ? ["--mode=unshare"] : []),
    // /workspace exists in every image so the mount point needs no guest-side setup.
    '--customize-hook=mkdir -p "$1/workspace" && echo pyro > "$1/etc/hostname"',
    // The EROFS image gVisor boots (util/erofs.ts), packed where owners are still right:
    // in unshare mode, hooks run inside the build's user namespace.
    ...(mkfs
      ? [
          `--customize-hook=${q(mkfs)} ${MKFS_EROFS_OPTIONS.join(" ")} ${q(rootfsImagePath(target))} "$1" && chmod 0644 ${q(rootfsImagePath(target))}`,
        ]
      : []),
    // Then every file becomes the building user's on the host (root inside the namespace),
    // so they can read, measure and later delete the tree; the image keeps the real owners.
    ...(unshare
      ? ['--customize-hook=find "$1" -xdev \\( ! -uid 0 -o ! -gid 0 \\) -exec chown -h 0:0 {} +']
      : []),
    recipe.suite,
    target,
  ];
  if (env.PYRO_DEBIAN_MIRROR) args.push(env.PYRO_DEBIAN_MIRROR);
  opts.onProgress?.({
    phase: "resolve",
    message: `mmdebstrap ${recipe.suite} (${recipe.variant}) + ${recipe.include.join(", ")}`,
  });
  const tail: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"], env, detached: true });
    const onAbort = () => {
      try {
        if (child.pid) process.kill(-child.pid, "SIGKILL");
      } catch {
        // gone
      }
    };
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    const onLine = (line: string) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      const m = /^I: (.*)$/.exec(line);
      if (m?.[1]) opts.onProgress?.({ phase: phaseOf(m[1]), message: m[1] });
    };
    createInterface({ input: child.stderr }).on("line", onLine);
    createInterface({ input: child.stdout }).on("line", onLine);
    child.on("error", (e) => reject(e));
    child.on("close", (code, sig) => {
      opts.signal?.removeEventListener("abort", onAbort);
      if (opts.signal?.aborted) reject(new PyroError("cancelled", "environment build cancelled"));
      else if (code === 0) resolve();
      else
        reject(
          new PyroError(
            "environment_build_failed",
            `building ${recipe.name} failed (mmdebstrap exit ${code ?? sig}): ${tail.slice(-4).join(" | ")}`,
            unshare
              ? "check that the Debian mirror is reachable, and `pyro doctor` for what building without root needs here (subordinate ids in /etc/subuid, newuidmap)"
              : "check that the Debian mirror is reachable",
          ),
        );
    });
  });
}
