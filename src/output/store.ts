import { isUtf8 } from "node:buffer";
import { promises as fsp, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { PyroError } from "../core/errors.js";
import { isValidId } from "../core/ids.js";
import type { PyroPaths } from "../core/paths.js";
import { ignore } from "../util/best-effort.js";
import { utf8CompleteLength } from "../util/proc.js";
import type { OutputEncoding } from "./view.js";

/**
 * Where full command output lives on the host, and paging through it.
 *   one-shot runs (vm_run, vm_exec): <state>/outputs/<vm_id>.stdout|.stderr, output_id = vm_id;
 *     the newest ONESHOT_RETENTION.runs are kept, none older than ONESHOT_RETENTION.maxAgeMs.
 *   workspace commands: <workspace>/commands/<sequence>.stdout|.stderr beside the log entry,
 *     output_id = "<workspace_id>:<sequence>"; they go when the workspace is deleted.
 */

export type StreamName = "stdout" | "stderr";

export const ONESHOT_RETENTION = { runs: 100, maxAgeMs: 24 * 3600_000 } as const;

// output_read's page size is the contract's: contract/defaults.ts READ_LIMIT.

export function oneShotOutputPath(paths: PyroPaths, vmId: string, stream: StreamName): string {
  return join(paths.outputsDir, `${vmId}.${stream}`);
}

export function workspaceOutputPath(
  commandsDir: string,
  sequence: number | string,
  stream: StreamName,
): string {
  const name = typeof sequence === "number" ? String(sequence).padStart(8, "0") : sequence;
  return join(commandsDir, `${name}.${stream}`);
}

export function workspaceOutputId(workspaceId: string, sequence: number): string {
  return `${workspaceId}:${sequence}`;
}

/** The file behind an output id; throws a clear error for a malformed one. */
export function outputPath(paths: PyroPaths, outputId: string, stream: StreamName): string {
  if (isValidId("vm", outputId)) return oneShotOutputPath(paths, outputId, stream);
  const m = /^(ws_[0-9a-f]{16}):([1-9]\d{0,7})$/.exec(outputId);
  if (m) return workspaceOutputPath(join(paths.workspacesDir, m[1]!, "commands"), Number(m[2]), stream);
  throw new PyroError(
    "invalid_argument",
    `malformed output_id ${JSON.stringify(String(outputId).slice(0, 60))}`,
    "use the output_id of a vm_run/vm_exec result (vm_…) or a workspace_exec result (ws_…:SEQUENCE)",
  );
}

const lastAgeCheck = new Map<string, number>();

/**
 * Drops one-shot output logs beyond the retention limit (oldest first). Called before each
 * one-shot run, so the directory stays bounded without a daemon.
 */
export async function pruneOneShotOutputs(paths: PyroPaths, now = Date.now()): Promise<void> {
  // The check is synchronous (it is on every one-shot run's path); the pruning is not.
  let names: string[];
  try {
    names = readdirSync(paths.outputsDir);
  } catch {
    names = [];
  }
  // The age check stats every file: it runs at most once a minute per outputs dir, unless the
  // count limit is already reached. A stamp file says when it last ran, so that a new process
  // per call (the CLI) does not stat up to 200 files on every `pyro run`.
  const stamp = join(paths.outputsDir, ".age-checked");
  if (names.length < 2 * ONESHOT_RETENTION.runs - 2) {
    if (now - (lastAgeCheck.get(paths.outputsDir) ?? 0) < 60_000) return;
    const at = statSync(stamp, { throwIfNoEntry: false })?.mtimeMs;
    if (at !== undefined && now - at < 60_000 && at <= now + 60_000) {
      lastAgeCheck.set(paths.outputsDir, at);
      return;
    }
  }
  lastAgeCheck.set(paths.outputsDir, now);
  await fsp
    .writeFile(stamp, "")
    .catch(ignore("output age-check stamp not written: another process checks ages again"));
  const runs = new Map<string, number>();
  for (const n of names) {
    const id = n.replace(/\.(stdout|stderr)$/, "");
    if (!isValidId("vm", id)) continue;
    const st = await fsp.stat(join(paths.outputsDir, n)).catch(ignore("output pruning: file gone meanwhile"));
    if (st) runs.set(id, Math.max(runs.get(id) ?? 0, st.mtimeMs));
  }
  const newestFirst = [...runs.entries()].sort((a, b) => b[1] - a[1]);
  // At the count limit, down to a tenth below it: the scan above (a stat per file) then
  // comes once per ~10 runs, not before every run of a busy state dir.
  const keep =
    newestFirst.length >= ONESHOT_RETENTION.runs - 1
      ? ONESHOT_RETENTION.runs - Math.ceil(ONESHOT_RETENTION.runs / 10)
      : ONESHOT_RETENTION.runs - 1;
  for (const [i, [id, mtime]] of newestFirst.entries()) {
    // At least one slot is left for the run about to start.
    if (i < keep && now - mtime <= ONESHOT_RETENTION.maxAgeMs) continue;
    for (const s of ["stdout", "stderr"]) await fsp.rm(join(paths.outputsDir, `${id}.${s}`), { force: true });
  }
}

export interface OutputPage {
  output_id: string;
  stream: StreamName;
  offset: number;
  next_offset: number;
  total_bytes: number;
  eof: boolean;
  data: string;
  encoding: OutputEncoding;
}

/** Reads `limit` bytes of a stream from `offset`; UTF-8 text when it is, else base64. */
export async function readOutputPage(
  paths: PyroPaths,
  req: { output_id: string; stream: StreamName; offset: number; limit: number },
): Promise<OutputPage> {
  const path = outputPath(paths, req.output_id, req.stream);
  const fh = await fsp.open(path, "r").catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT")
      throw new PyroError(
        "not_found",
        `no output stored for ${req.output_id}`,
        `one-shot output is kept for the newest ${ONESHOT_RETENTION.runs} runs and at most 24 h; workspace output until the workspace is deleted`,
      );
    throw e;
  });
  try {
    const total = (await fh.stat()).size;
    const offset = Math.min(req.offset, total);
    const buf = Buffer.alloc(Math.min(req.limit, total - offset));
    const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
    let chunk = buf.subarray(0, bytesRead);
    // A page that cuts a character in two ends before it (when that leaves valid text), so
    // text pages join up into the exact stream.
    if (!isUtf8(chunk)) {
      const cut = chunk.subarray(0, utf8CompleteLength(chunk));
      if (cut.length > 0 && isUtf8(cut)) chunk = cut;
    }
    const encoding: OutputEncoding = isUtf8(chunk) ? "utf-8" : "base64";
    const next = offset + chunk.length;
    return {
      output_id: req.output_id,
      stream: req.stream,
      offset,
      next_offset: next,
      total_bytes: total,
      eof: next >= total,
      data: chunk.toString(encoding === "utf-8" ? "utf8" : "base64"),
      encoding,
    };
  } finally {
    await fh.close();
  }
}
