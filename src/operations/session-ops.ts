import * as S from "../contract/sessions.js";
import { WorkspaceIdInput } from "../contract/workspace.js";
import type { Runtime } from "../runtime/runtime.js";
import { op } from "./operation.js";

/**
 * Shells and services: their entries of the operation table (table.ts appends them), and
 * how the CLI shows their results. MCP serves them in the workspace-full profile only.
 */

const shells = (rt: Runtime) => rt.capabilities.shells;
const services = (rt: Runtime) => rt.capabilities.services;
const WS = "ws_0123456789abcdef";
const SH = "sh_0123456789ab";

export const SESSION_OPERATIONS = [
  op({
    name: "shell_open",
    sdk: "openShell",
    title: "Open a persistent shell",
    description:
      "Open an interactive terminal (PTY) in a workspace that stays open across calls: a REPL, a debugger, an installer that asks questions. " +
      "Returns shell_id. Talk to it with shell_write and shell_read; its output is kept (the last 1 MiB) and read by cursor. It is closed by shell_close or workspace_delete.",
    input: S.ShellOpenInput,
    result: S.ShellInfo,
    mcp: true,
    cli: {
      path: ["workspace", "shell", "open"],
      positional: ["workspace_id"],
      rest: "command",
      examples: [
        `pyro workspace shell open ${WS}`,
        `pyro workspace shell open ${WS} --json -- python3`,
        `pyro workspace shell open ${WS} --cwd /workspace/app --cols 100 --rows 30`,
        `SH=$(pyro workspace shell open ${WS} --id-only -- python3)`,
      ],
      extraFlags: [{ flag: "--id-only", description: "print only the new shell id (for scripts)" }],
    },
    handler: (rt, i) => shells(rt).open(i),
  }),
  op({
    name: "shell_write",
    sdk: "writeShell",
    title: "Type into a shell",
    description:
      "Send text to a shell's terminal, as typed, then press Enter (newline=false sends it raw: control keys, partial lines). Then read the answer with shell_read (wait_for_idle_ms=300 waits until the program has finished printing).",
    input: S.ShellWriteInput,
    result: S.ShellWriteResult,
    mcp: true,
    cli: {
      path: ["workspace", "shell", "write"],
      positional: ["workspace_id", "shell_id"],
      examples: [
        `pyro workspace shell write ${WS} ${SH} --input 'x = 6*7'`,
        `pyro workspace shell write ${WS} ${SH} --input $'\\x04' --no-newline`,
      ],
    },
    handler: (rt, i) => shells(rt).write(i),
  }),
  op({
    name: "shell_read",
    sdk: "readShell",
    title: "Read a shell's output",
    description:
      "Read a shell's output from cursor (0, or the next_cursor of your last read, so nothing is lost or read twice). " +
      "plain=true strips terminal escapes and applies carriage returns; wait_for_idle_ms=N first waits until the output has been quiet for N ms. " +
      "dropped_bytes > 0 means older output than the kept 1 MiB was asked for. Once the program exited, state is exited with exit_code, and its final output is still readable.",
    input: S.ShellReadInput,
    result: S.ShellReadResult,
    mcp: true,
    readOnly: true,
    cli: {
      path: ["workspace", "shell", "read"],
      positional: ["workspace_id", "shell_id"],
      examples: [
        `pyro workspace shell read ${WS} ${SH} --plain --wait-for-idle-ms 300`,
        `pyro workspace shell read ${WS} ${SH} --cursor 120 --json`,
      ],
    },
    handler: (rt, i, ctx) => shells(rt).read(i, ctx.signal),
  }),
  op({
    name: "shell_signal",
    sdk: "signalShell",
    title: "Signal a shell",
    description:
      "Send INT (what ^C sends), TERM, KILL, HUP or QUIT to the shell's foreground process group, e.g. to stop a command that runs too long.",
    input: S.ShellSignalInput,
    result: S.ShellInfo,
    mcp: true,
    cli: {
      path: ["workspace", "shell", "signal"],
      positional: ["workspace_id", "shell_id", "signal"],
      examples: [`pyro workspace shell signal ${WS} ${SH} INT`],
    },
    handler: (rt, i) => shells(rt).signal(i),
  }),
  op({
    name: "shell_resize",
    sdk: "resizeShell",
    title: "Resize a shell's terminal",
    description: "Change the shell's terminal size (columns and rows); programs get SIGWINCH.",
    input: S.ShellResizeInput,
    result: S.ShellInfo,
    mcp: false,
    cli: {
      path: ["workspace", "shell", "resize"],
      positional: ["workspace_id", "shell_id"],
      examples: [`pyro workspace shell resize ${WS} ${SH} --cols 200 --rows 50`],
    },
    handler: (rt, i) => shells(rt).resize(i),
  }),
  op({
    name: "shell_close",
    sdk: "closeShell",
    title: "Close a shell",
    description:
      "End the shell's program (hangup and TERM to its process group, KILL after 2 s) and forget the shell and its output.",
    input: S.ShellRef,
    result: S.ShellCloseResult,
    mcp: true,
    destructive: true,
    cli: {
      path: ["workspace", "shell", "close"],
      positional: ["workspace_id", "shell_id"],
      examples: [`pyro workspace shell close ${WS} ${SH}`],
    },
    handler: (rt, i) => shells(rt).close(i),
  }),
  op({
    name: "shell_list",
    sdk: "listShells",
    title: "List a workspace's shells",
    description: "The workspace's shells: id, command, state (running or exited), exit code, output size.",
    input: WorkspaceIdInput,
    result: S.ShellListResult,
    mcp: false,
    readOnly: true,
    cli: {
      path: ["workspace", "shell", "list"],
      positional: ["workspace_id"],
      examples: [`pyro workspace shell list ${WS}`, `pyro workspace shell list ${WS} --json`],
    },
    handler: (rt, i) => shells(rt).list(i.workspace_id),
  }),
  op({
    name: "service_start",
    sdk: "startService",
    title: "Start a long-running service",
    description:
      "Start a named service (a dev server, a database) in a workspace that keeps running after this call, and wait until it is ready: " +
      "ready_http (an http:// URL answering below 500), ready_tcp (a port accepting connections), ready_file (a path existing) or ready_command (a command exiting 0), within ready_timeout_seconds (default 60). " +
      "A service that exits or never gets ready is reported with its exit code and last log lines. Its log (stdout and stderr, the last 1 MiB) is read with service_logs.",
    input: S.ServiceStartInput,
    result: S.ServiceInfo,
    mcp: true,
    cli: {
      path: ["workspace", "service", "start"],
      positional: ["workspace_id", "name"],
      rest: "command",
      examples: [
        `pyro workspace service start ${WS} web --ready-http http://127.0.0.1:8000/ -- python3 -m http.server 8000`,
        `pyro workspace service start ${WS} db --ready-tcp 5432 --ready-timeout-seconds 120 -- postgres -D /workspace/db`,
        `pyro workspace service start ${WS} worker --ready-file /tmp/worker.ready --json -- ./worker.sh`,
      ],
    },
    handler: (rt, i) => services(rt).start(i),
  }),
  op({
    name: "service_list",
    sdk: "listServices",
    title: "List a workspace's services",
    description:
      "The workspace's services with state (running, exited, stopped, failed), ready, pid, exit code and restarts.",
    input: WorkspaceIdInput,
    result: S.ServiceListResult,
    mcp: true,
    readOnly: true,
    cli: {
      path: ["workspace", "service", "list"],
      positional: ["workspace_id"],
      examples: [`pyro workspace service list ${WS}`, `pyro workspace service list ${WS} --json`],
    },
    handler: (rt, i) => services(rt).list(i.workspace_id),
  }),
  op({
    name: "service_status",
    sdk: "statusService",
    title: "A service's status",
    description:
      "One service's state (running, exited, stopped, failed), readiness, pid, exit code, restarts and log size.",
    input: S.ServiceRef,
    result: S.ServiceInfo,
    mcp: true,
    readOnly: true,
    cli: {
      path: ["workspace", "service", "status"],
      positional: ["workspace_id", "name"],
      examples: [`pyro workspace service status ${WS} web --json`],
    },
    handler: (rt, i) => services(rt).status(i),
  }),
  op({
    name: "service_logs",
    sdk: "logsService",
    title: "A service's log",
    description:
      "A service's output (stdout and stderr together; the last 1 MiB is kept), also after it stopped: tail_lines=N for the last N lines, or cursor (next_cursor of the last call) for what came since.",
    input: S.ServiceLogsInput,
    result: S.ServiceLogsResult,
    mcp: true,
    readOnly: true,
    cli: {
      path: ["workspace", "service", "logs"],
      positional: ["workspace_id", "name"],
      examples: [
        `pyro workspace service logs ${WS} web --tail-lines 20`,
        `pyro workspace service logs ${WS} web --follow`,
      ],
    },
    handler: async (rt, i, ctx) => {
      const onChunk = ctx.onStdout;
      return services(rt).logs(i, {
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        ...(onChunk ? { onChunk } : {}),
      });
    },
  }),
  op({
    name: "service_stop",
    sdk: "stopService",
    title: "Stop a service",
    description:
      "Stop a service: SIGTERM to its whole process group, SIGKILL after grace_seconds (default 5). Its log stays readable with service_logs.",
    input: S.ServiceStopInput,
    result: S.ServiceInfo,
    mcp: true,
    destructive: true,
    cli: {
      path: ["workspace", "service", "stop"],
      positional: ["workspace_id", "name"],
      examples: [
        `pyro workspace service stop ${WS} web`,
        `pyro workspace service stop ${WS} web --grace-seconds 0`,
      ],
    },
    handler: (rt, i) => services(rt).stop(i),
  }),
] as const;

// biome-ignore lint/suspicious/noExplicitAny: rendered results are the wire objects
type Any = any;

function shellLine(r: Any): string {
  return `${r.shell_id} ${r.state}${r.exit_code !== null ? ` (exit ${r.exit_code})` : ""} pid ${r.pid ?? "-"} ${r.cols}x${r.rows} $ ${r.command}`;
}

function serviceLine(r: Any): string {
  return `${r.name} ${r.state}${r.exit_code !== null ? ` (exit ${r.exit_code})` : ""}${r.ready ? ", ready" : ""}${r.ready_ms !== null ? ` in ${r.ready_ms} ms` : ""} pid ${r.pid ?? "-"} restarts ${r.restarts} $ ${r.command}`;
}

/** How the CLI prints these results (merged into cli/render.ts's RENDER). */
export const SESSION_RENDER: Record<(typeof SESSION_OPERATIONS)[number]["name"], (r: Any) => string> = {
  shell_open: shellLine,
  shell_signal: shellLine,
  shell_resize: shellLine,
  shell_write: (r) => `wrote ${r.bytes_written} byte(s) to ${r.shell_id}`,
  shell_read: (r) =>
    r.encoding === "base64" ? Buffer.from(r.output, "base64").toString("latin1") : r.output,
  shell_close: (r) => `closed ${r.shell_id}${r.exit_code !== null ? ` (exit ${r.exit_code})` : ""}`,
  shell_list: (r) =>
    r.shells.length ? r.shells.map(shellLine).join("\n") : `no shells in ${r.workspace_id}`,
  service_start: serviceLine,
  service_status: serviceLine,
  service_stop: serviceLine,
  service_list: (r) =>
    r.services.length ? r.services.map(serviceLine).join("\n") : `no services in ${r.workspace_id}`,
  service_logs: (r) => r.output.replace(/\n$/, ""),
};

/** A line for stderr after a read: where to continue, and what the ring dropped. */
export function sessionNote(name: string, r: Any): string | undefined {
  if (name !== "shell_read" && name !== "service_logs") return undefined;
  const dropped = r.dropped_bytes > 0 ? `; ${r.dropped_bytes} bytes dropped before cursor ${r.cursor}` : "";
  const exited = r.exit_code !== null ? `; exited with code ${r.exit_code}` : "";
  return `[pyro] next cursor ${r.next_cursor}${dropped}${exited}`;
}
