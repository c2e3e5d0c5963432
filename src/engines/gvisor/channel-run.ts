import { readFile } from "node:fs/promises";
import { PyroError } from "../../core/errors.js";
import { execOutcome } from "../outcome.js";
import type { ExecOutcome, ExecRequest, SandboxHandle } from "../types.js";
import { guestEnv, IN_SANDBOX_DEADLINE_GRACE_MS } from "./bundle.js";
import { ChannelUnavailable, channelExec } from "./exec-channel.js";
import { gvisorDataOrUndefined } from "./handle.js";
import { pidsLimitHit } from "./pids.js";

/** How long a lost channel waits for its sandbox to be seen dead: 20 × 50 ms. */
const LOST_CHECKS = 20;
const LOST_CHECK_MS = 50;

/**
 * A command through the sandbox init's exec channel (exec-channel.ts), with what its outcome
 * means: cancelled, lost with the sandbox, or an exit code. Shared by the gVisor engine and
 * the CLI's fast path (cli/fast-exec.ts), which loads no engine. Undefined when nothing
 * listens (an init that could not create its socket): nothing ran, `runsc exec` still works.
 * `throwIfDead` throws sandboxDeathError when the sandbox is gone.
 */
export async function runOverChannel(
  handle: SandboxHandle,
  socketPath: string,
  argv: string[],
  req: ExecRequest,
  throwIfDead: () => Promise<void>,
): Promise<ExecOutcome | undefined> {
  let r: Awaited<ReturnType<typeof channelExec>>;
  try {
    r = await channelExec(
      socketPath,
      {
        argv,
        env: guestEnv(req.env),
        cwd: req.cwd ?? "/",
        ...(req.user ? { user: req.user } : {}),
        deadlineMs: req.timeoutMs + IN_SANDBOX_DEADLINE_GRACE_MS,
        ...(req.stdin ? { stdin: req.stdin } : {}),
      },
      {
        timeoutMs: req.timeoutMs,
        ...(req.maxOutputBytes !== undefined ? { maxOutputBytes: req.maxOutputBytes } : {}),
        ...(req.signal ? { signal: req.signal } : {}),
        ...(req.onStdout ? { onStdout: req.onStdout } : {}),
        ...(req.onStderr ? { onStderr: req.onStderr } : {}),
      },
    );
  } catch (e) {
    if (e instanceof ChannelUnavailable) return undefined;
    throw e;
  }
  if (r.aborted) throw new PyroError("cancelled", "command cancelled; its processes were killed");
  if (r.lost) {
    // The channel closes as the sandbox dies (an OOM kill ends it whole): its process can
    // outlive the socket by a moment, so a live pid is asked again before it counts.
    for (let i = 0; i < LOST_CHECKS; i++) {
      await throwIfDead();
      await new Promise((res) => setTimeout(res, LOST_CHECK_MS));
    }
    throw new PyroError(
      "engine_failure",
      `the exec channel of sandbox ${handle.id} closed before the command finished`,
      "try again; if it keeps happening, delete the sandbox and create a new one",
    );
  }
  if (!r.timedOut && r.exitCode !== 0) await throwIfDead();
  return execOutcome(r);
}

/**
 * Why the sandbox died, as far as the host can tell: its cgroup saw the OOM killer, or its
 * pids cgroup refused a task (the host backstop of the process limit, see pids.ts).
 */
export async function deathCause(handle: SandboxHandle): Promise<string | undefined> {
  const d = gvisorDataOrUndefined(handle);
  if (!d) return undefined;
  const cid = d.containerId;
  const mem = d.memMib;
  if (await oomKilled(cid))
    return `out of memory${mem ? ` at mem_mib=${mem}` : ""} (under gVisor one process over the limit ends the whole sandbox)`;
  if (await pidsLimitHit(cid)) {
    const limit = d.pidsLimit;
    return `too many processes${limit ? ` (past the sandbox's limit, PYRO_PIDS_LIMIT=${limit})` : ""}`;
  }
  return undefined;
}

/** What a command that failed because its sandbox died (out of memory, killed) is told. */
export async function sandboxDeathError(handle: SandboxHandle): Promise<PyroError> {
  const cause = await deathCause(handle);
  if (cause)
    return new PyroError(
      "sandbox_dead",
      `sandbox ${handle.id} was killed: ${cause}`,
      cause.startsWith("out of memory")
        ? "delete it and create a new one with a larger mem_mib"
        : "delete it and create a new one; keep its commands from starting processes without bound",
    );
  return new PyroError(
    "sandbox_dead",
    `sandbox ${handle.id} stopped while the command ran`,
    "delete it and create a new one",
  );
}

/** Whether the sandbox's cgroup saw the OOM killer (v1 or v2 layout). */
export async function oomKilled(cid: string): Promise<boolean> {
  for (const [file, re] of [
    [`/sys/fs/cgroup/memory/${cid}/memory.oom_control`, /^oom_kill (\d+)/m],
    [`/sys/fs/cgroup/${cid}/memory.events`, /^oom_kill (\d+)/m],
  ] as const) {
    const text = await readFile(file, "utf8").catch(() => "");
    const m = re.exec(text);
    if (m && Number(m[1]) > 0) return true;
  }
  return false;
}
