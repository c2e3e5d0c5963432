import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { OUTPUT_BUDGET } from "../contract/defaults.js";
import { writeExpiry } from "../engines/expiry.js";
import { runOverChannel, sandboxDeathError } from "../engines/gvisor/channel-run.js";
import type { ExecOutcome, ExecutionMode, SandboxHandle } from "../engines/types.js";
import { CATALOG } from "../environments/catalog.js";
import { DEFAULT_RUNTIME } from "../environments/runtime-config.js";
import { PyroError, toPyroError } from "../errors.js";
import { isValidId } from "../ids.js";
import { ENGINE_CAPTURE_BYTES, finishRecording } from "../output/command.js";
import { resolvePaths } from "../paths.js";
import { displayCommand } from "../runtime/command.js";
import { handleProblem } from "../runtime/handle-check.js";
import { isOwnPlainDir } from "../runtime/private-dir.js";
import { spawnReapIfDue } from "../runtime/reap-schedule.js";
import { RecordStore } from "../runtime/record-store.js";
import { pidAlive } from "../util/proc.js";
import {
  appendCommandLog,
  CANCELLED_OUTCOME,
  discardCommand,
  execResult,
  expiryNeedsPush,
  type LoggedRecord,
  markFailed,
  startCommand,
} from "../workspaces/command-log.js";
import { execFooter } from "./exec-footer.js";
import { fastSession } from "./fast-io.js";
import { EXIT, printError, reportingDiskFull } from "./report.js";

/**
 * `pyro workspace exec WS -- CMD...` without loading the CLI: no commander, no zod, no
 * engines. The launcher (scripts/bundle-cli.mjs) tries this first; it answers only the
 * plain case (a workspace id, `--timeout-seconds`, `--max-output-bytes`, `--json`; a running
 * gVisor workspace of a catalog environment, with an exec channel and no secrets, that needs
 * no recovery and no expiry push first) and returns undefined for anything else before it
 * has done anything, so the full CLI handles that as always. The command's log entry, what
 * it prints and its exit code are the full CLI's: both go through workspaces/command-log.ts
 * and engines/gvisor/channel-run.ts, and test/e2e/fast-exec.test.ts compares them.
 */
export const FAST_EXEC_DEFAULTS = {
  timeout_seconds: 30,
  max_output_bytes: OUTPUT_BUDGET.default,
  timeout_max: 86_400,
} as const;

/** Where workspaces work (WorkspaceManager's WORKSPACE_ROOT). */
const WORKSPACE_ROOT = "/workspace";

export interface FastExecArgs {
  workspaceId: string;
  command: string[];
  timeoutSeconds: number;
  maxOutputBytes: number;
  json: boolean;
}

/** The plain `workspace exec` command line, or undefined for anything else. */
export function parseFastExec(args: readonly string[]): FastExecArgs | undefined {
  if (args[0] !== "workspace" || args[1] !== "exec") return undefined;
  const dd = args.indexOf("--");
  if (dd < 0 || dd === args.length - 1) return undefined;
  let workspaceId: string | undefined;
  let timeoutSeconds: number = FAST_EXEC_DEFAULTS.timeout_seconds;
  let maxOutputBytes: number = FAST_EXEC_DEFAULTS.max_output_bytes;
  let json = false;
  const whole = (v: string | undefined, min: number, max: number) =>
    v !== undefined && /^\d+$/.test(v) && Number(v) >= min && Number(v) <= max ? Number(v) : undefined;
  for (let i = 2; i < dd; i++) {
    const a = args[i]!;
    if (a === "--json") json = true;
    else if (a === "--timeout-seconds") {
      const n = whole(args[++i], 1, FAST_EXEC_DEFAULTS.timeout_max);
      if (n === undefined || i >= dd) return undefined;
      timeoutSeconds = n;
    } else if (a === "--max-output-bytes") {
      const n = whole(args[++i], OUTPUT_BUDGET.min, OUTPUT_BUDGET.max);
      if (n === undefined || i >= dd) return undefined;
      maxOutputBytes = n;
    } else if (workspaceId === undefined && isValidId("ws", a)) workspaceId = a;
    else return undefined; // a name, another flag, a second operand: the full CLI's
  }
  if (!workspaceId) return undefined;
  return { workspaceId, command: args.slice(dd + 1), timeoutSeconds, maxOutputBytes, json };
}

/** The workspace record as far as this path reads it (the full schema is in manager.ts). */
interface FastRecord extends LoggedRecord {
  environment: string;
  engine: string;
  execution_mode: ExecutionMode;
  vcpu_count: number;
  handle: (SandboxHandle & { workspaceDir?: string }) | null;
  secrets?: unknown[];
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null;
const isTime = (v: unknown) => typeof v === "string" && !Number.isNaN(Date.parse(v));
const isCount = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;

/**
 * The shape the log's read-modify-write needs (what it reads and writes back); anything else
 * in the record is kept as it is. A record this rejects is the full CLI's to report.
 */
function shapeProblem(r: unknown): string | undefined {
  if (!isObj(r)) return "not an object";
  if (typeof r.workspace_id !== "string" || typeof r.state !== "string") return "workspace_id/state";
  if (!isTime(r.expires_at) || (r.max_expires_at !== undefined && !isTime(r.max_expires_at))) return "expiry";
  if (!Number.isInteger(r.ttl_seconds) || (r.ttl_seconds as number) <= 0) return "ttl_seconds";
  if (!isCount(r.command_count)) return "command_count";
  return undefined;
}

/** Why this path leaves the workspace to the full CLI, or undefined when it can run the command. */
function declineReason(id: string, dir: string, r: FastRecord, a: FastExecArgs): string | undefined {
  const h = r.handle;
  if (r.workspace_id !== id || r.state !== "running" || r.engine !== "gvisor" || !h)
    return "not a running gVisor workspace";
  if (!isObj(h) || !isObj(h.data) || typeof h.sandboxDir !== "string") return "handle";
  if (handleProblem(id, dir, h, { sandboxDir: join(dir, "sandbox"), workspaceDir: join(dir, "files") }))
    return "handle paths";
  if (typeof h.data.execSocket !== "string" || typeof h.data.pid !== "number") return "no exec channel";
  if (r.secrets !== undefined && (!Array.isArray(r.secrets) || r.secrets.length > 0)) return "secrets";
  if (typeof r.execution_mode !== "string" || !Number.isInteger(r.vcpu_count)) return "fields";
  // An image's or recipe's Env and User come from the environment store.
  if (!CATALOG.some((c) => c.name === r.environment)) return "not a catalog environment";
  if (Date.parse(r.expires_at) <= Date.now()) return "expired";
  if (expiryNeedsPush(r, a.timeoutSeconds)) return "expiry push";
  // The sandbox must be alive (the engine's check before an exec): a dead one is marked failed.
  if (!pidAlive(h.data.pid)) return "sandbox gone";
  return undefined;
}

/**
 * Runs the command in the workspace and returns the exit code to leave with, or undefined
 * when this exec is not the fast path's (nothing was run, written or printed).
 */
export async function fastWorkspaceExec(
  argv: readonly string[],
  cliPath: string,
): Promise<number | undefined> {
  return reportingDiskFull(argv, () => fastWorkspaceExecInner(argv, cliPath));
}

async function fastWorkspaceExecInner(argv: readonly string[], cliPath: string): Promise<number | undefined> {
  const env = process.env;
  if (env.PYRO_REMOTE || env.PYRO_EXEC_CHANNEL === "runsc") return undefined;
  const a = parseFastExec(argv);
  if (!a) return undefined;
  const paths = resolvePaths(env);
  // A state dir that is a symlink or someone else's: the full CLI says so.
  if (!isOwnPlainDir(paths.stateDir)) return undefined;
  const dir = join(paths.workspacesDir, a.workspaceId);
  // A snapshot or reset in progress, or one whose pyro died (snapshots.ts recovers it).
  if (existsSync(join(dir, "snapshots", "op.json"))) return undefined;
  let rec: FastRecord;
  try {
    rec = JSON.parse(readFileSync(join(dir, "workspace.json"), "utf8")) as FastRecord;
  } catch {
    return undefined;
  }
  if (shapeProblem(rec) || declineReason(a.workspaceId, dir, rec, a)) return undefined;
  try {
    return await execClaimed(rec, a, dir, paths.workspacesDir);
  } finally {
    // The TTL reap, when due, detached (as the full CLI schedules it).
    await spawnReapIfDue(paths.stateDir, env, cliPath);
  }
}

async function execClaimed(
  rec: FastRecord,
  a: FastExecArgs,
  dir: string,
  workspacesDir: string,
): Promise<number | undefined> {
  const t0 = performance.now();
  const id = a.workspaceId;
  const handle = rec.handle!;
  const records = new RecordStore<FastRecord>({
    root: workspacesDir,
    kind: "ws",
    file: "workspace.json",
    idOf: (r) => r.workspace_id,
    notFound: (i) => new PyroError("not_found", `no workspace with id ${i}`),
    unreadable: (i, why) => new PyroError("invalid_state", `workspace ${i} is damaged (${why})`),
    schema: {
      safeParse: (raw) => {
        const why = shapeProblem(raw);
        return why
          ? { success: false, error: { issues: [{ path: [], message: why }] } }
          : { success: true, data: raw as FastRecord };
      },
    },
  });
  const io = fastSession(a.json);
  const command = displayCommand(a.command);
  const cmd = await startCommand(dir, a.maxOutputBytes, io.sinks);
  const { recorder } = cmd;
  const pushExpiry = (r: FastRecord) =>
    r.state === "running" && typeof handle.data.ctlDir === "string"
      ? writeExpiry(handle.data.ctlDir, r.expires_at).catch(() => undefined)
      : undefined;
  let out: ExecOutcome | undefined;
  try {
    out = await runOverChannel(
      handle,
      handle.data.execSocket as string,
      a.command,
      {
        argv: a.command,
        cwd: WORKSPACE_ROOT,
        // A catalog environment's runtime: no Env, root (EnvironmentStore.runtimeConfig).
        ...(Object.keys(DEFAULT_RUNTIME.env).length ? { env: DEFAULT_RUNTIME.env } : {}),
        timeoutMs: a.timeoutSeconds * 1000,
        signal: io.signal,
        maxOutputBytes: ENGINE_CAPTURE_BYTES,
        onStdout: recorder.onStdout,
        onStderr: recorder.onStderr,
      },
      async () => {
        if (!pidAlive(handle.data.pid as number)) throw await sandboxDeathError(handle);
      },
    );
  } catch (e) {
    const pe = toPyroError(e);
    if (pe.code === "sandbox_dead") await markFailed(records, id, pe.message);
    if (pe.code === "cancelled") {
      // It still ran (and may have changed files): the history says so, with its output.
      recorder.stderr.push(Buffer.from(`[pyro] ${pe.message}\n`));
      recorder.close();
      await appendCommandLog(records, id, cmd, command, CANCELLED_OUTCOME, t0)
        .then((l) => pushExpiry(l.rec))
        .catch(() => undefined);
      if (io.pipeGone()) return EXIT.sigpipe;
    } else await discardCommand(cmd);
    return printError(process.stdout, process.stderr, pe, a.json);
  }
  if (!out) {
    // Nothing listens on the channel: nothing ran; the full CLI uses `runsc exec`.
    await discardCommand(cmd);
    io.close();
    return undefined;
  }
  finishRecording(recorder, out);
  const logged = await appendCommandLog(records, id, cmd, command, out, t0);
  await pushExpiry(logged.rec);
  const result = execResult(rec, cmd, logged, command, out, a.maxOutputBytes);
  if (a.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else if (process.env.PYRO_QUIET !== "1") process.stderr.write(`${execFooter(result)}\n`);
  return result.exit_code;
}
