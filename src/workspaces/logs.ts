import { open, readdir } from "node:fs/promises";
import { join } from "node:path";
import type { CommandLogEntryT, WorkspaceLogsInputT, WorkspaceLogsResultT } from "../contract/workspace.js";
import type { StreamSnapshot } from "../output/recorder.js";
import { type StreamName, workspaceOutputId, workspaceOutputPath } from "../output/store.js";
import { outputFields, snapshotOf } from "../output/view.js";
import { ignore } from "../util/best-effort.js";
import { readJson } from "../util/json-store.js";
import type { StoredLogEntry } from "./command-log.js";
import type { WorkspacePort } from "./port.js";

/** `workspace logs`: the command log as stored by exec (command-log.ts), read back. */

/** What reading the log needs of the workspace: its record (the count) and its directory. */
export type LogsPort = Pick<WorkspacePort, "records" | "dir">;

/** Entries written before output went to files carried it inline (capped at 1 MiB). */
interface LegacyOutput {
  stdout?: string;
  stderr?: string;
}

/** Head and tail (`keep` bytes each) of an output file; an empty stream if it is missing. */
async function fileSnapshot(path: string, keep: number): Promise<StreamSnapshot> {
  const fh = await open(path, "r").catch(ignore("output file missing: an empty stream"));
  if (!fh) return snapshotOf(Buffer.alloc(0));
  try {
    const size = (await fh.stat()).size;
    const read = async (pos: number, len: number) => {
      const b = Buffer.alloc(len);
      const { bytesRead } = await fh.read(b, 0, len, pos);
      return b.subarray(0, bytesRead);
    };
    const head = await read(0, Math.min(keep, size));
    const tail = size <= keep ? head : await read(size - keep, keep);
    return { bytes: size, logged: size, head, tail };
  } finally {
    await fh.close();
  }
}

/**
 * The most recent `limit` commands, oldest first. Output only on request, within the
 * budget shared by all entries returned.
 */
export async function readLogs(port: LogsPort, input: WorkspaceLogsInputT): Promise<WorkspaceLogsResultT> {
  const id = input.workspace_id;
  const rec = await port.records.load(id);
  const dir = join(port.dir(id), "commands");
  const names = (await readdir(dir).catch(() => [] as string[]))
    .filter((n) => /^\d{8}\.json$/.test(n))
    .sort()
    .slice(-input.limit);
  const commands: CommandLogEntryT[] = [];
  const perEntry = Math.max(64, Math.floor(input.max_output_bytes / Math.max(1, names.length)));
  for (const n of names) {
    const e = await readJson<StoredLogEntry & LegacyOutput>(join(dir, n)).catch(
      ignore("unreadable log entry: left out of the listing"),
    );
    if (!e) continue;
    const outputId = e.output_id ?? workspaceOutputId(id, e.sequence);
    const snap = async (s: StreamName) =>
      typeof e[s] === "string"
        ? snapshotOf(Buffer.from(e[s]))
        : await fileSnapshot(workspaceOutputPath(dir, e.sequence, s), perEntry);
    const [out, err] = input.include_output
      ? [await snap("stdout"), await snap("stderr")]
      : [undefined, undefined];
    const view = out && err ? outputFields(out, err, perEntry, outputId) : undefined;
    commands.push({
      sequence: e.sequence,
      command: e.command,
      exit_code: e.exit_code,
      timed_out: e.timed_out,
      started_at: e.started_at,
      duration_ms: e.duration_ms,
      stdout_bytes: e.stdout_bytes ?? Buffer.byteLength(e.stdout ?? ""),
      stderr_bytes: e.stderr_bytes ?? Buffer.byteLength(e.stderr ?? ""),
      output_id: outputId,
      ...(view
        ? {
            stdout: view.stdout,
            stderr: view.stderr,
            stdout_truncated: view.stdout_truncated,
            stderr_truncated: view.stderr_truncated,
            stdout_encoding: view.stdout_encoding,
            stderr_encoding: view.stderr_encoding,
            stdout_omitted_bytes: view.stdout_omitted_bytes,
            stderr_omitted_bytes: view.stderr_omitted_bytes,
          }
        : {}),
    });
  }
  return { workspace_id: id, command_count: rec.command_count, commands };
}
