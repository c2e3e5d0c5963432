import { randomBytes } from "node:crypto";
import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type * as z from "zod";
import { SECRETS_DIR } from "../contract/defaults.js";
import type * as S from "../contract/sessions.js";
import { displayCommand, EXEC_WRAPPER, toArgv } from "../core/command.js";
import { PyroError } from "../core/errors.js";
import { nowIso } from "../sandbox/context.js";
import { withSecretEnv } from "../secrets/guest.js";
import { redactText } from "../secrets/redactor.js";
import { parseSecretEnv } from "../secrets/spec.js";
import { readJson, writeJsonAtomic } from "../util/json-store.js";
import type { AttachedWorkspace, SessionPort } from "./port.js";
import { plainText, RING_BYTES, type SupervisorFiles, sleep, utf8Boundary } from "./supervised.js";
import { sessionHost } from "./supervisor-exec.js";

type ShellInfo = z.infer<typeof S.ShellInfo>;

/** What the host keeps about a shell (in the workspace's state dir, out of the guest's reach). */
interface ShellMeta {
  shell_id: string;
  command: string;
  cwd: string;
  cols: number;
  rows: number;
  created_at: string;
}

const SHELL_ID = /^sh_[0-9a-f]{12}$/;
/** Default program: bash where the environment has it, else sh; interactive either way. */
const DEFAULT_SHELL = ["/bin/sh", "-c", "command -v bash >/dev/null 2>&1 && exec bash -i; exec sh -i"];
const POLL_MS = 10;

const SIGNALS = { HUP: 1, INT: 2, QUIT: 3, KILL: 9, TERM: 15 } as const;

/**
 * Persistent PTY sessions (see docs/architecture.md, "Shells and services"). Each shell is an
 * `init supervise --pty` process in the sandbox, started detached; every operation is a file
 * operation on its directory (supervised.ts), so any pyro process can talk to it.
 */
export class ShellManager {
  constructor(private readonly workspaces: SessionPort) {}

  private async attach(workspaceId: string) {
    const ws = await this.workspaces.attach(workspaceId);
    return { ws, host: await sessionHost(ws, "shells") };
  }

  private metaDir(ws: AttachedWorkspace): string {
    return join(ws.dir, "shells");
  }

  private async find(workspaceId: string, shellId: string) {
    const { ws, host } = await this.attach(workspaceId);
    if (!SHELL_ID.test(shellId) || !(await readJson<ShellMeta>(join(this.metaDir(ws), `${shellId}.json`)))) {
      throw new PyroError(
        "not_found",
        `workspace ${ws.workspaceId} has no shell ${JSON.stringify(shellId)}`,
        ["list its shells with ", { op: "shell_list", args: { workspace_id: ws.workspaceId } }],
      );
    }
    const meta = (await readJson<ShellMeta>(join(this.metaDir(ws), `${shellId}.json`)))!;
    return { ws, meta, dir: host.files(`shells/${shellId}`) };
  }

  private async info(ws: AttachedWorkspace, meta: ShellMeta, dir: SupervisorFiles): Promise<ShellInfo> {
    const exit = await dir.exitCode();
    return {
      workspace_id: ws.workspaceId,
      ...meta,
      state: exit === undefined ? "running" : "exited",
      pid: (await dir.pid()) ?? null,
      exit_code: exit ?? null,
      total_bytes: await dir.totalBytes(),
    };
  }

  async open(input: z.infer<typeof S.ShellOpenInput>): Promise<ShellInfo> {
    const { ws, host } = await this.attach(input.workspace_id);
    const shellId = `sh_${randomBytes(6).toString("hex")}`;
    const secretEnv = parseSecretEnv(input.secret_env ?? [], ws.secretNames, ws.workspaceId);
    const argv = withSecretEnv(
      input.command === undefined ? DEFAULT_SHELL : unwrap(toArgv(input.command)),
      secretEnv,
    );
    const meta: ShellMeta = {
      shell_id: shellId,
      command:
        input.command === undefined
          ? "bash -i"
          : redactText(await ws.secretValues(), displayCommand(input.command)),
      cwd: input.cwd,
      cols: input.cols,
      rows: input.rows,
      created_at: nowIso(),
    };
    const dir = host.files(`shells/${shellId}`);
    await dir.prepare(ws.user);
    await mkdir(this.metaDir(ws), { recursive: true });
    await writeJsonAtomic(join(this.metaDir(ws), `${shellId}.json`), meta);
    try {
      await host.spawn(
        [
          host.init,
          "supervise",
          "--dir",
          dir.guest,
          "--pty",
          String(input.cols),
          String(input.rows),
          "--ring-bytes",
          String(RING_BYTES),
          // The supervisor redacts secret values before they reach the ring (a host directory).
          ...(ws.secretNames.length ? ["--redact-dir", SECRETS_DIR] : []),
          "--",
          ...argv,
        ],
        input.cwd,
      );
      await waitStarted(dir);
    } catch (e) {
      await rm(join(this.metaDir(ws), `${shellId}.json`), { force: true });
      await dir.remove();
      throw e;
    }
    return this.info(ws, meta, dir);
  }

  async write(input: z.infer<typeof S.ShellWriteInput>): Promise<z.infer<typeof S.ShellWriteResult>> {
    const { ws, dir } = await this.find(input.workspace_id, input.shell_id);
    const exit = await dir.exitCode();
    if (exit !== undefined)
      throw new PyroError(
        "invalid_state",
        `shell ${input.shell_id} has exited (exit code ${exit}); nothing reads its input`,
        [
          "read its final output with ",
          { op: "shell_read", args: { workspace_id: ws.workspaceId, shell_id: input.shell_id } },
          ", then close it",
        ],
      );
    const data = Buffer.from(input.newline ? `${input.input}\n` : input.input);
    await dir.input(data);
    return { workspace_id: ws.workspaceId, shell_id: input.shell_id, bytes_written: data.length };
  }

  async read(
    input: z.infer<typeof S.ShellReadInput>,
    signal?: AbortSignal,
  ): Promise<z.infer<typeof S.ShellReadResult>> {
    const { ws, dir } = await this.find(input.workspace_id, input.shell_id);
    if (input.wait_for_idle_ms > 0)
      await waitIdle(dir, input.wait_for_idle_ms, input.timeout_seconds * 1000, signal);
    const exit = await dir.exitCode();
    const chunk = await dir.read(input.cursor, input.max_bytes);
    const data = chunk.data.subarray(0, utf8Boundary(chunk.data));
    const valid = isUtf8(data);
    const text = data.toString("utf8");
    const next = chunk.cursor + data.length;
    return {
      workspace_id: ws.workspaceId,
      shell_id: input.shell_id,
      cursor: chunk.cursor,
      next_cursor: next,
      dropped_bytes: chunk.dropped_bytes,
      more: next < chunk.total_bytes,
      output: input.plain ? plainText(text) : valid ? text : chunk.data.toString("base64"),
      encoding: input.plain || valid ? "utf-8" : "base64",
      state: exit === undefined ? "running" : "exited",
      exit_code: exit ?? null,
    };
  }

  async signal(input: z.infer<typeof S.ShellSignalInput>): Promise<ShellInfo> {
    const { ws, meta, dir } = await this.find(input.workspace_id, input.shell_id);
    await dir.control(`signal ${SIGNALS[input.signal]}`);
    return this.info(ws, meta, dir);
  }

  async resize(input: z.infer<typeof S.ShellResizeInput>): Promise<ShellInfo> {
    const { ws, meta, dir } = await this.find(input.workspace_id, input.shell_id);
    await dir.control(`resize ${input.cols} ${input.rows}`);
    const next = { ...meta, cols: input.cols, rows: input.rows };
    await writeJsonAtomic(join(this.metaDir(ws), `${meta.shell_id}.json`), next);
    return this.info(ws, next, dir);
  }

  /** Ends the program (HUP+TERM to its group, KILL after 2 s) and forgets the shell. */
  async close(input: z.infer<typeof S.ShellRef>): Promise<z.infer<typeof S.ShellCloseResult>> {
    const { ws, dir } = await this.find(input.workspace_id, input.shell_id);
    let exit = await dir.exitCode();
    if (exit === undefined) {
      await dir.control("stop 2000");
      const until = Date.now() + 5_000;
      while (exit === undefined && Date.now() < until) {
        await sleep(POLL_MS * 2);
        exit = await dir.exitCode();
      }
    }
    await rm(join(this.metaDir(ws), `${input.shell_id}.json`), { force: true });
    await dir.remove();
    return { workspace_id: ws.workspaceId, shell_id: input.shell_id, closed: true, exit_code: exit ?? null };
  }

  async list(workspaceId: string): Promise<z.infer<typeof S.ShellListResult>> {
    const { ws, host } = await this.attach(workspaceId);
    const names = await readdir(this.metaDir(ws)).catch(() => [] as string[]);
    const shells: ShellInfo[] = [];
    for (const n of names.sort()) {
      const id = n.replace(/\.json$/, "");
      if (!SHELL_ID.test(id)) continue;
      const meta = await readJson<ShellMeta>(join(this.metaDir(ws), n));
      if (meta) shells.push(await this.info(ws, meta, host.files(`shells/${id}`)));
    }
    shells.sort((a, b) => a.created_at.localeCompare(b.created_at));
    return { workspace_id: ws.workspaceId, shells };
  }
}

/** Waits until the supervisor has started the program (pid written) or it already ended. */
export async function waitStarted(dir: SupervisorFiles, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if ((await dir.pid()) !== undefined || (await dir.exitCode()) !== undefined) return;
    await sleep(POLL_MS);
  }
  throw new PyroError("engine_failure", `the supervisor in ${dir.guest} did not start within ${ms / 1000} s`);
}

/** Returns once the output has not grown for idleMs (or the program exited, or maxMs passed). */
async function waitIdle(
  dir: SupervisorFiles,
  idleMs: number,
  maxMs: number,
  signal?: AbortSignal,
): Promise<void> {
  const until = Date.now() + maxMs;
  let size = await dir.totalBytes();
  let quietSince = Date.now();
  while (Date.now() < until && !signal?.aborted) {
    await sleep(POLL_MS, signal);
    const now = await dir.totalBytes();
    if (now !== size) {
      size = now;
      quietSince = Date.now();
    } else if (Date.now() - quietSince >= idleMs) return;
    if ((await dir.exitCode()) !== undefined) return;
  }
}

function isUtf8(b: Buffer): boolean {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
}

/** The supervisor execs the program itself (a missing one is exit 127), so no sh wrapper. */
export function unwrap(argv: string[]): string[] {
  const wrapped = argv.length > EXEC_WRAPPER.length && EXEC_WRAPPER.every((a, i) => argv[i] === a);
  return wrapped ? argv.slice(EXEC_WRAPPER.length) : argv;
}
