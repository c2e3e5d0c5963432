import { execFile } from "node:child_process";
import { join } from "node:path";
import { REPO } from "./helpers.js";

/** A command's exit code and output (never rejects; a timeout is a non-zero code). */
export function sh(
  file: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(
      file,
      args,
      { cwd: opts.cwd, env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 << 20 },
      (err, stdout, stderr) =>
        res({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

/**
 * `npm pack` of the built tree into `dest` (--ignore-scripts: the prepack build would rebuild
 * dist/, which the e2e run has already built). Returns the tarball's absolute path.
 */
export async function packTarball(dest: string): Promise<string> {
  const pack = await sh("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dest], {
    cwd: REPO,
  });
  if (pack.code !== 0) throw new Error(`npm pack failed: ${pack.stderr}`);
  const [info] = JSON.parse(pack.stdout) as { filename: string }[];
  return join(dest, info!.filename);
}

/** npm's words for "the registry cannot be reached": a test that needs it skips, saying so. */
export function registryUnreachable(stderr: string): boolean {
  return /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|network request/i.test(
    stderr,
  );
}
