import { DEFAULTS, LIMITS, OUTPUT_BUDGET } from "../contract/defaults.js";
import { displayCommand } from "../core/command.js";
import { isPyroError } from "../core/errors.js";
import { isValidId } from "../core/ids.js";
import { resolvePaths } from "../core/paths.js";
import { withCommandHint } from "../environments/command-hint.js";
import { isOwnPlainDir } from "../sandbox/private-dir.js";
import { spawnReapIfDue } from "../sandbox/reap-schedule.js";
import { plainExec } from "../workspaces/exec-flow.js";
import { execFooter } from "./exec-footer.js";
import { fastSession } from "./fast-io.js";
import { EXIT, printError, reportingDiskFull } from "./report.js";

/**
 * `pyro workspace exec WS -- CMD...` without loading the CLI: no commander, no zod, no
 * engines (test/unit/fast-bundles.test.ts keeps it so). The launcher (scripts/bundle-cli.mjs)
 * tries this first; it parses the plain command line (a workspace id, `--timeout-seconds`,
 * `--max-output-bytes`, `--json`) and hands the rest to workspaces/exec-flow.ts, the exec
 * WorkspaceManager.exec runs too, which takes only the plain case and declines anything else
 * before it has done anything, so the full CLI handles that as always. What it prints and its
 * exit code are the full CLI's (cli/report.ts, exec-footer.ts); test/e2e/fast-exec.test.ts
 * compares them.
 */

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
  let timeoutSeconds: number = DEFAULTS.timeout_seconds;
  let maxOutputBytes: number = OUTPUT_BUDGET.default;
  let json = false;
  const whole = (v: string | undefined, min: number, max: number) =>
    v !== undefined && /^\d+$/.test(v) && Number(v) >= min && Number(v) <= max ? Number(v) : undefined;
  for (let i = 2; i < dd; i++) {
    const a = args[i]!;
    if (a === "--json") json = true;
    else if (a === "--timeout-seconds") {
      const n = whole(args[++i], 1, LIMITS.timeoutMax);
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
  const exec = plainExec(paths.workspacesDir, a.workspaceId, a.timeoutSeconds);
  if (!exec) return undefined;
  const io = fastSession(a.json);
  try {
    // As the full path's invoke does: a missing command's 127 names the environments with it.
    const result = withCommandHint(
      await exec.run({
        command: a.command,
        shown: displayCommand(a.command),
        maxOutputBytes: a.maxOutputBytes,
        signal: io.signal,
        live: io.sinks,
      }),
    );
    if (!result) {
      // Nothing listens on the channel: nothing ran; the full CLI uses `runsc exec`.
      io.close();
      return undefined;
    }
    if (a.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else if (env.PYRO_QUIET !== "1") process.stderr.write(`${execFooter(result)}\n`);
    return result.exit_code;
  } catch (e) {
    if (!isPyroError(e)) throw e;
    if (e.code === "cancelled" && io.pipeGone()) return EXIT.sigpipe;
    return printError(process.stdout, process.stderr, e, a.json);
  } finally {
    // The TTL reap, when due, detached (as the full CLI schedules it).
    await spawnReapIfDue(paths.stateDir, env, cliPath);
  }
}
