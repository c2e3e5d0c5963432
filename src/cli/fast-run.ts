import { mkdirSync } from "node:fs";
import { DEFAULT_ENVIRONMENT, DEFAULTS, LIMITS, OUTPUT_BUDGET } from "../contract/defaults.js";
import { displayCommand } from "../core/command.js";
import { PyroError } from "../core/errors.js";
import { resolvePaths } from "../core/paths.js";
import { execChannel } from "../engines/channel.js";
import { guestEnv, IN_SANDBOX_DEADLINE_GRACE_MS } from "../engines/gvisor/bundle.js";
import { ChannelUnavailable, channelExec } from "../engines/gvisor/exec-channel.js";
import { resultNotes } from "../engines/notes.js";
import { execOutcome } from "../engines/outcome.js";
import { withCommandHint } from "../environments/command-hint.js";
import { commandFields, finishRecording } from "../output/command.js";
import { CommandRecorder } from "../output/recorder.js";
import { oneShotOutputPath, pruneOneShotOutputs } from "../output/store.js";
import { type Claim, claimEntry, releaseEntry, spawnPoolFill } from "../pool/claim.js";
import { DEFAULT_POOL_ENGINE, keyFor, poolConfig } from "../pool/config.js";
import { isOwnPlainDir } from "../sandbox/private-dir.js";
import { spawnReapIfDue } from "../sandbox/reap-schedule.js";
import { ignore } from "../util/best-effort.js";
import { execFooter } from "./exec-footer.js";
import { fastSession } from "./fast-io.js";
import { EXIT, printError, reportingDiskFull } from "./report.js";

/**
 * `pyro run` from the warm pool without loading the CLI: no commander, no zod, no engines.
 * The launcher (scripts/bundle-cli.mjs) tries this first when a pool is configured; it
 * answers only the plain case (`pyro run [ENV] [--timeout-seconds N] [--json] -- CMD...`,
 * gVisor, a ready sandbox with an exec channel) and returns undefined for anything else,
 * before it has done anything, so the full CLI handles that as always. What it prints, the
 * output it records and its exit code are the full CLI's (test/e2e/pool.test.ts compares
 * them; test/unit/fast-run.test.ts checks the defaults against RunInput's, which are the same
 * constants: operations/limits.ts).
 */
export const FAST_RUN_DEFAULTS = {
  environment: DEFAULT_ENVIRONMENT,
  vcpu_count: DEFAULTS.vcpu_count,
  mem_mib: DEFAULTS.mem_mib,
  timeout_seconds: DEFAULTS.timeout_seconds,
  network: DEFAULTS.network,
  max_output_bytes: OUTPUT_BUDGET.default,
} as const;

export interface FastRunArgs {
  environment: string;
  command: string[];
  timeoutSeconds: number;
  json: boolean;
}

/** The plain `run` command line, or undefined for anything else (the full CLI's business). */
export function parseFastRun(args: readonly string[]): FastRunArgs | undefined {
  if (args[0] !== "run") return undefined;
  const dd = args.indexOf("--");
  if (dd < 0 || dd === args.length - 1) return undefined;
  let environment: string = FAST_RUN_DEFAULTS.environment;
  let timeoutSeconds: number = FAST_RUN_DEFAULTS.timeout_seconds;
  let json = false;
  let positional = 0;
  for (let i = 1; i < dd; i++) {
    const a = args[i]!;
    if (a === "--json") json = true;
    else if (a === "--timeout-seconds" && i + 1 < dd) {
      const v = args[++i]!;
      if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > LIMITS.timeoutMax) return undefined;
      timeoutSeconds = Number(v);
    } else if (!a.startsWith("-") && positional === 0 && a.length <= 200) {
      environment = a;
      positional++;
    } else return undefined;
  }
  return { environment, command: args.slice(dd + 1), timeoutSeconds, json };
}

/**
 * Runs the command in a pooled sandbox and returns the exit code to leave with, or undefined
 * when this run is not the fast path's (nothing was claimed, written or printed).
 */
export async function fastRun(argv: readonly string[], cliPath: string): Promise<number | undefined> {
  return reportingDiskFull(argv, () => fastRunInner(argv, cliPath));
}

async function fastRunInner(argv: readonly string[], cliPath: string): Promise<number | undefined> {
  const env = process.env;
  // The default key's sandboxes only: a forced other engine is the full CLI's.
  if (env.PYRO_REMOTE || (env.PYRO_ENGINE && env.PYRO_ENGINE !== DEFAULT_POOL_ENGINE)) return undefined;
  const a = parseFastRun(argv);
  if (!a) return undefined;
  let key: ReturnType<typeof keyFor>;
  try {
    key = keyFor(poolConfig(env), {
      environment: a.environment,
      vcpu_count: FAST_RUN_DEFAULTS.vcpu_count,
      mem_mib: FAST_RUN_DEFAULTS.mem_mib,
      network: FAST_RUN_DEFAULTS.network,
    });
  } catch {
    return undefined; // a bad PYRO_POOL_* setting: the full CLI says what is wrong
  }
  if (!key) return undefined;
  const paths = resolvePaths(env);
  // A state dir that is a symlink or someone else's: the full CLI says so.
  if (!isOwnPlainDir(paths.stateDir)) return undefined;
  const root = `${paths.stateDir}/pool`;
  const t0 = performance.now();
  const timeoutMs = a.timeoutSeconds * 1000;
  const claim = await claimEntry(root, key, Date.now() + timeoutMs + IN_SANDBOX_DEADLINE_GRACE_MS).catch(
    ignore("no warm sandbox claimed: the full CLI starts a fresh one"),
  );
  if (!claim) return undefined; // the full CLI starts a fresh sandbox (and a fill)
  const socket = execChannel(claim.entry.handle)?.socket;
  const exec = claim.entry.exec;
  if (!socket || !exec) {
    // An entry of an older pyro: given up (a fill destroys it); the full CLI runs this one.
    await releaseEntry(root, claim);
    spawnPoolFill(cliPath, env);
    return undefined;
  }
  try {
    return await runClaimed(claim, a, root, paths, timeoutMs, t0, exec, socket);
  } finally {
    // Once the result is out (a child starting meanwhile would compete for the CPU): the
    // pool's top-up and, when due, the TTL reap, both detached.
    spawnPoolFill(cliPath, env);
    await spawnReapIfDue(paths.stateDir, env, cliPath);
  }
}

async function runClaimed(
  claim: Claim,
  a: FastRunArgs,
  root: string,
  paths: ReturnType<typeof resolvePaths>,
  timeoutMs: number,
  t0: number,
  exec: NonNullable<Claim["entry"]["exec"]>,
  socket: string,
): Promise<number> {
  const vm_id = claim.entry.id;
  const io = fastSession(a.json);
  let rec: CommandRecorder | undefined;
  try {
    mkdirSync(paths.outputsDir, { recursive: true, mode: 0o700 });
    await pruneOneShotOutputs(paths).catch(ignore("pruning old one-shot outputs: the next run prunes again"));
    rec = new CommandRecorder({
      stdoutPath: oneShotOutputPath(paths, vm_id, "stdout"),
      stderrPath: oneShotOutputPath(paths, vm_id, "stderr"),
      keep: FAST_RUN_DEFAULTS.max_output_bytes,
      ...io.sinks,
    });
    const r = await channelExec(
      socket,
      {
        // An argv runs as is: the init reports a missing program as 127, as the shell
        // wrapper (core/command.ts) the full path adds and the engine drops again.
        argv: a.command,
        env: guestEnv(exec.env),
        cwd: exec.cwd,
        ...(exec.user ? { user: exec.user } : {}),
        deadlineMs: timeoutMs + IN_SANDBOX_DEADLINE_GRACE_MS,
      },
      {
        timeoutMs,
        maxOutputBytes: 64 * 1024,
        signal: io.signal,
        onStdout: rec.onStdout,
        onStderr: rec.onStderr,
      },
    );
    if (r.aborted) {
      rec.close();
      if (io.pipeGone()) return EXIT.sigpipe;
      return fail(new PyroError("cancelled", "command cancelled; its processes were killed"), a.json);
    }
    if (r.lost) {
      rec.close();
      return fail(
        new PyroError(
          "sandbox_dead",
          `sandbox ${vm_id} stopped while the command ran`,
          "run it again (a fresh sandbox is used)",
        ),
        a.json,
      );
    }
    const out = execOutcome(r);
    finishRecording(rec, out);
    const fields = commandFields(out, rec, FAST_RUN_DEFAULTS.max_output_bytes, vm_id);
    // Key order is RunResult's, as the full CLI prints it.
    const result = withCommandHint({
      vm_id,
      environment: a.environment,
      command: displayCommand(a.command),
      ...fields,
      duration_ms: Math.round(performance.now() - t0),
      boot_ms: 0,
      exec_ms: out.execMs,
      execution_mode: "gvisor" as const,
      notes: resultNotes("gvisor", FAST_RUN_DEFAULTS.vcpu_count),
      cleaned_up: true,
    });
    if (a.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else if (process.env.PYRO_QUIET !== "1") process.stderr.write(`${execFooter(result)}\n`);
    return result.exit_code;
  } catch (e) {
    rec?.close();
    if (e instanceof ChannelUnavailable)
      return fail(
        new PyroError(
          "sandbox_dead",
          `sandbox ${vm_id} did not answer on its exec channel`,
          "run it again (a fresh sandbox is used)",
        ),
        a.json,
      );
    throw e;
  } finally {
    await releaseEntry(root, claim);
  }
}

/** The full CLI's error report (cli/report.ts), for the few errors this path has. */
function fail(e: PyroError, json: boolean): number {
  return printError(process.stdout, process.stderr, e, json);
}
