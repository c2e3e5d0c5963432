import { spawn } from "node:child_process";
import { mkdir, rm } from "node:fs/promises";
import { createInterface } from "node:readline";
import { PyroError } from "../core/errors.js";
import { noted } from "../util/best-effort.js";
import { buildErofsImage, findMkfsErofs, rootfsImagePath } from "../util/erofs.js";
import { runCapture, which } from "../util/proc.js";
import type { EnvironmentRecipe } from "./catalog.js";

export interface BuildProgress {
  phase: "resolve" | "download" | "extract" | "install" | "configure" | "finish";
  message: string;
}

/** What every build, pull and ensure takes: where progress goes, and a cancel. */
export interface BuildOptions {
  onProgress?: (p: BuildProgress) => void;
  signal?: AbortSignal;
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
  opts: {
    onProgress?: (p: BuildProgress) => void;
    signal?: AbortSignal;
    env?: NodeJS.ProcessEnv;
    /** More mmdebstrap --customize-hook values, run in order after pyro's own (user recipes). */
    hooks?: string[];
  } = {},
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
  // namespace made of the user's subordinate ids (/etc/subuid, newuidmap from `uidmap`). Its
  // root is a subordinate id, not the user, so a directory it wrote could not be read in
  // full, nor deleted, by the user: it writes a tarball instead, which the user unpacks as
  // their own files (measured: Debian 12, mmdebstrap 1.3.5, a fresh `useradd` user).
  const unshare = (process.getuid?.() ?? 0) !== 0;
  const out = unshare ? `${target}.tar` : target;
  const args = [
    `--variant=${recipe.variant}`,
    ...(recipe.include.length ? [`--include=${recipe.include.join(",")}`] : []),
    "--verbose",
    ...(unshare ? ["--mode=unshare"] : []),
    // /workspace exists in every image so the mount point needs no guest-side setup.
    '--customize-hook=mkdir -p "$1/workspace" && echo pyro > "$1/etc/hostname"',
    ...(opts.hooks ?? []).map((h) => `--customize-hook=${h}`),
    recipe.suite,
    out,
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
      } catch (e) {
        noted("aborting a build: its process group is gone already", e);
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
  if (unshare) await unpackAsOwn(out, target, env);
  // The EROFS image gVisor boots (util/erofs.ts), sealed into the cache entry with the tree.
  // Without mkfs.erofs, a rootful gVisor boots the directory; doctor says what is missing.
  if (await findMkfsErofs(env)) {
    opts.onProgress?.({ phase: "finish", message: "packing the EROFS image gVisor boots" });
    await buildErofsImage(target, rootfsImagePath(target), { allRoot: unshare, env });
  }
}

/**
 * Unpacks an unshare-mode tarball as the user's own files (owners are recorded as root in
 * the image). Device nodes are left out: an unprivileged user cannot make them, and every
 * engine mounts its own /dev.
 */
async function unpackAsOwn(tarball: string, target: string, env: NodeJS.ProcessEnv): Promise<void> {
  try {
    await mkdir(target, { mode: 0o755 });
    const r = await runCapture(
      "tar",
      ["-x", "-p", "--no-same-owner", "--exclude=./dev/*", "-f", tarball, "-C", target],
      { timeoutMs: 600_000, env },
    );
    if (r.exitCode !== 0)
      throw new PyroError(
        "environment_build_failed",
        `unpacking the environment failed (tar exit ${r.exitCode ?? r.signal}): ${r.stderr.trim().split("\n").slice(-3).join(" | ")}`,
      );
  } finally {
    await rm(tarball, { force: true });
  }
}
