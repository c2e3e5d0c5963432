import type * as z from "zod";
import type * as S from "../contract/sessions.js";
import type { CallOptions, Command, Pyro } from "./pyro.js";
import type { WireOptions } from "./wire-options.js";

/** SDK types and handle members for shells and services (see workspaces/shells.ts, services.ts). */

export type ShellInfo = z.infer<typeof S.ShellInfo>;
export type ShellOutput = z.infer<typeof S.ShellReadResult>;
export type ServiceInfo = z.infer<typeof S.ServiceInfo>;
export type ServiceLogs = z.infer<typeof S.ServiceLogsResult>;

/** `secretEnv`: workspace secrets as environment variables of the shell (NAME or VAR=NAME). */
export interface ShellOpenOptions
  extends WireOptions<typeof S.ShellOpenInput, "command" | "cwd" | "cols" | "rows" | "secret_env"> {}
export interface ShellReadOptions
  extends WireOptions<
    typeof S.ShellReadInput,
    "cursor" | "plain" | "wait_for_idle_ms" | "timeout_seconds" | "max_bytes"
  > {}
/**
 * Readiness checks, `secretEnv` (workspace secrets as environment variables of the service:
 * NAME or VAR=NAME) and `publish` (`[HOSTPORT:]GUESTPORT` on the host's 127.0.0.1 while the
 * service runs).
 */
export interface ServiceStartOptions
  extends WireOptions<
    typeof S.ServiceStartInput,
    | "cwd"
    | "ready_file"
    | "ready_tcp"
    | "ready_http"
    | "ready_command"
    | "ready_timeout_seconds"
    | "secret_env"
    | "publish"
  > {}
export interface ServiceLogsOptions
  extends WireOptions<typeof S.ServiceLogsInput, "tail_lines" | "cursor" | "follow" | "follow_seconds"> {}

/**
 * A service's log as it grows: yields each new piece of output (from `cursor`, default the
 * start of the kept log) until the service has ended and everything is read, or `signal`
 * aborts. Polls `logsService` by cursor, so nothing is yielded twice.
 */
export async function* followServiceLog(
  pyro: Pyro,
  workspaceId: string,
  name: string,
  options: { cursor?: number; pollMs?: number; signal?: AbortSignal } = {},
): AsyncGenerator<string, void, undefined> {
  let cursor = options.cursor ?? 0;
  for (;;) {
    if (options.signal?.aborted) return;
    const r = await pyro.logsService(workspaceId, name, { cursor });
    if (r.output) yield r.output;
    const caughtUp = r.next_cursor === cursor;
    cursor = r.next_cursor;
    if (r.state !== "running" && caughtUp) return;
    if (caughtUp) await new Promise((res) => setTimeout(res, options.pollMs ?? 200));
  }
}

/** `ws.shells`: the workspace's persistent terminals. */
export class WorkspaceShells {
  constructor(
    private readonly pyro: Pyro,
    private readonly workspaceId: string,
  ) {}
  open(options: ShellOpenOptions = {}): Promise<ShellInfo> {
    return this.pyro.openShell(this.workspaceId, options);
  }
  write(shellId: string, input: string, options: { newline?: boolean } = {}): Promise<unknown> {
    return this.pyro.writeShell(this.workspaceId, shellId, { input, ...options });
  }
  read(shellId: string, options: ShellReadOptions = {}, opts?: CallOptions): Promise<ShellOutput> {
    return this.pyro.readShell(this.workspaceId, shellId, options, opts);
  }
  signal(shellId: string, signal: "INT" | "TERM" | "KILL" | "HUP" | "QUIT"): Promise<ShellInfo> {
    return this.pyro.signalShell(this.workspaceId, shellId, signal);
  }
  resize(shellId: string, cols: number, rows: number): Promise<ShellInfo> {
    return this.pyro.resizeShell(this.workspaceId, shellId, { cols, rows });
  }
  close(shellId: string): Promise<unknown> {
    return this.pyro.closeShell(this.workspaceId, shellId);
  }
  async list(): Promise<ShellInfo[]> {
    return (await this.pyro.listShells(this.workspaceId)).shells;
  }
}

/** `ws.services`: the workspace's long-running named services. */
export class WorkspaceServices {
  constructor(
    private readonly pyro: Pyro,
    private readonly workspaceId: string,
  ) {}
  start(name: string, command: Command, options: ServiceStartOptions = {}): Promise<ServiceInfo> {
    return this.pyro.startService(this.workspaceId, name, { command, ...options });
  }
  async list(): Promise<ServiceInfo[]> {
    return (await this.pyro.listServices(this.workspaceId)).services;
  }
  status(name: string): Promise<ServiceInfo> {
    return this.pyro.statusService(this.workspaceId, name);
  }
  logs(name: string, options: ServiceLogsOptions = {}): Promise<ServiceLogs> {
    return this.pyro.logsService(this.workspaceId, name, options);
  }
  stop(name: string, options: { graceSeconds?: number } = {}): Promise<ServiceInfo> {
    return this.pyro.stopService(this.workspaceId, name, options);
  }
  /** `for await (const text of ws.services.follow("web")) …` */
  follow(name: string, options: { cursor?: number; signal?: AbortSignal } = {}): AsyncGenerator<string> {
    return followServiceLog(this.pyro, this.workspaceId, name, options);
  }
}
