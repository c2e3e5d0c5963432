import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import type * as z from "zod";
import { SECRETS_DIR } from "../contract/defaults.js";
import type * as S from "../contract/sessions.js";
import { displayCommand, toArgv } from "../core/command.js";
import { PyroError } from "../core/errors.js";
import type { ExecRequest } from "../engines/types.js";
import type { PublishedPort } from "../network/policy.js";
import { nowIso } from "../sandbox/context.js";
import { withSecretEnv } from "../secrets/guest.js";
import { redactText } from "../secrets/redactor.js";
import { parseSecretEnv } from "../secrets/spec.js";
import { readJson, withLock, writeJsonAtomic } from "../util/json-store.js";
import type { AttachedWorkspace, SessionPort } from "./port.js";
import { publishForService, unpublishForService } from "./service-ports.js";
import { unwrap, waitStarted } from "./shells.js";
import { type OutputChunk, RING_BYTES, type SupervisorFiles, sleep, utf8Boundary } from "./supervised.js";
import { sessionHost } from "./supervisor-exec.js";

type ServiceInfo = z.infer<typeof S.ServiceInfo>;
type StartInput = z.infer<typeof S.ServiceStartInput>;

/** What the host keeps about a service (in the workspace's state dir, out of the guest's reach). */
interface ServiceMeta {
  name: string;
  command: string;
  cwd: string;
  readiness: string | null;
  started_at: string;
  restarts: number;
  ready: boolean;
  ready_ms: number | null;
  /** Set by service_stop, so its end reads `stopped` rather than `exited`. */
  stopped: boolean;
  /** Never got ready: stopped by pyro at the readiness timeout. */
  failed: boolean;
  /** Ports published for it on the host's 127.0.0.1 (`--publish`); unpublished by stop. */
  published?: PublishedPort[];
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const PROBE_EVERY_MS = 200;
/** A service with no readiness check is watched this long for an exit at once. */
const SETTLE_MS = 300;
const LOG_TAIL_LINES = 10;

/**
 * Long-running named services (see docs/architecture.md, "Shells and services"): each one
 * an `init supervise` process in the sandbox (no terminal; stdout and stderr into the output
 * ring), started detached, with readiness probed from the host through short execs.
 */
export class ServiceManager {
  constructor(private readonly workspaces: SessionPort) {}

  private async attach(workspaceId: string) {
    const ws = await this.workspaces.attach(workspaceId);
    return { ws, host: await sessionHost(ws, "services") };
  }

  private metaPath(ws: AttachedWorkspace, name: string): string {
    return join(ws.dir, "services", `${name}.json`);
  }

  private checkName(name: string): string {
    if (!NAME.test(name))
      throw new PyroError(
        "invalid_argument",
        `bad service name ${JSON.stringify(name.slice(0, 80))}`,
        "use letters, digits, '.', '_' or '-', starting with a letter or digit, at most 63 characters",
      );
    return name;
  }

  private async find(workspaceId: string, name: string) {
    const { ws, host } = await this.attach(workspaceId);
    const meta = NAME.test(name) ? await readJson<ServiceMeta>(this.metaPath(ws, name)) : undefined;
    if (!meta)
      throw new PyroError("not_found", `workspace ${ws.workspaceId} has no service ${JSON.stringify(name)}`, [
        "list its services with ",
        { op: "service_list", args: { workspace_id: ws.workspaceId } },
      ]);
    return { ws, meta, dir: host.files(`services/${name}`), host };
  }

  private async info(ws: AttachedWorkspace, meta: ServiceMeta, dir: SupervisorFiles): Promise<ServiceInfo> {
    const exit = await dir.exitCode();
    return {
      workspace_id: ws.workspaceId,
      name: meta.name,
      command: meta.command,
      cwd: meta.cwd,
      state: exit === undefined ? "running" : meta.failed ? "failed" : meta.stopped ? "stopped" : "exited",
      ready: meta.ready,
      readiness: meta.readiness,
      pid: (await dir.pid()) ?? null,
      exit_code: exit ?? null,
      restarts: meta.restarts,
      started_at: meta.started_at,
      ready_ms: meta.ready_ms,
      log_bytes: await dir.totalBytes(),
      published_ports: (meta.published ?? []).map((p) => ({ host_ip: "127.0.0.1", ...p })),
    };
  }

  async start(input: StartInput): Promise<ServiceInfo> {
    const name = this.checkName(input.name);
    const checks = (["ready_file", "ready_tcp", "ready_http", "ready_command"] as const).filter(
      (k) => input[k] !== undefined,
    );
    if (checks.length > 1)
      throw new PyroError(
        "invalid_argument",
        `give at most one readiness check, not ${checks.join(" and ")}`,
        "keep the one that says best when the service can take work",
      );
    if (input.ready_http !== undefined && !/^http:\/\/[^/\s:]+(:\d{1,5})?(\/\S*)?$/.test(input.ready_http))
      throw new PyroError(
        "invalid_argument",
        `ready_http ${JSON.stringify(input.ready_http)} is not an http://HOST[:PORT]/PATH URL`,
        "e.g. http://127.0.0.1:8000/ (https is not probed; HOST numeric or localhost)",
      );
    const { ws, host } = await this.attach(input.workspace_id);
    const secretEnv = parseSecretEnv(input.secret_env ?? [], ws.secretNames, ws.workspaceId);
    const dir = host.files(`services/${name}`);
    const published = input.publish?.length
      ? await publishForService(this.workspaces, ws.workspaceId, input.publish)
      : [];
    // Under a lock per name: two processes starting the same name cannot both pass the check.
    const { meta, probe, t0 } = await withLock(this.metaPath(ws, name), async () => {
      const old = await readJson<ServiceMeta>(this.metaPath(ws, name));
      if (old && (await dir.exitCode()) === undefined && (await dir.exists()))
        throw new PyroError(
          "invalid_state",
          `service ${name} is already running in workspace ${ws.workspaceId}`,
          [
            "stop it first with ",
            { op: "service_stop", args: { workspace_id: ws.workspaceId, name } },
            ", or pick another name",
          ],
        );
      const probe = probeFor(input, host.init);
      const meta: ServiceMeta = {
        name,
        command: redactText(await ws.secretValues(), displayCommand(input.command)),
        cwd: input.cwd,
        readiness: probe?.label ?? null,
        started_at: nowIso(),
        restarts: old ? old.restarts + 1 : 0,
        ready: false,
        ready_ms: null,
        stopped: false,
        failed: false,
        ...(published.length ? { published } : {}),
      };
      await dir.prepare(ws.user);
      await mkdir(join(ws.dir, "services"), { recursive: true });
      await writeJsonAtomic(this.metaPath(ws, name), meta);
      const t0 = Date.now();
      await host.spawn(
        [
          host.init,
          "supervise",
          "--dir",
          dir.guest,
          "--ring-bytes",
          String(RING_BYTES),
          // The supervisor redacts secret values before they reach the ring (a host directory).
          ...(ws.secretNames.length ? ["--redact-dir", SECRETS_DIR] : []),
          "--",
          ...withSecretEnv(unwrap(toArgv(input.command)), secretEnv),
        ],
        input.cwd,
      );
      await waitStarted(dir);
      return { meta, probe, t0 };
    });

    const exitedEarly = async () => {
      const code = await dir.exitCode();
      if (code === undefined) return;
      throw new PyroError(
        "invalid_state",
        `service ${name} exited with code ${code} before it was ready; last log lines:\n${await lastLines(dir)}`,
        ["read its whole log with ", { op: "service_logs", args: { workspace_id: ws.workspaceId, name } }],
      );
    };
    if (!probe) {
      await sleep(SETTLE_MS);
      await exitedEarly();
    } else {
      const until = t0 + input.ready_timeout_seconds * 1000;
      for (;;) {
        await exitedEarly();
        const r = await ws.engine.exec(ws.handle, {
          argv: probe.argv,
          cwd: input.cwd,
          env: ws.env,
          timeoutMs: 5_000,
          ...(ws.user ? { user: ws.user } : {}),
        } satisfies ExecRequest);
        if (r.exitCode === 0) break;
        if (probe.kind === "http" && r.exitCode === 2)
          throw new PyroError(
            "invalid_argument",
            `ready_http: ${r.stderr.trim() || "cannot probe this URL"}`,
          );
        if (Date.now() >= until) {
          await exitedEarly();
          await this.halt(dir, 2_000);
          meta.failed = true;
          await writeJsonAtomic(this.metaPath(ws, name), meta);
          throw new PyroError(
            "timeout",
            `service ${name} was not ready (${probe.label}) within ${input.ready_timeout_seconds} s, so it was stopped; last log lines:\n${await lastLines(dir)}`,
            [
              "check the command and port, or allow longer with ",
              { option: "ready_timeout_seconds", value: input.ready_timeout_seconds * 2 },
            ],
          );
        }
        await sleep(PROBE_EVERY_MS);
      }
    }
    meta.ready = true;
    meta.ready_ms = Date.now() - t0;
    await writeJsonAtomic(this.metaPath(ws, name), meta);
    return this.info(ws, meta, dir);
  }

  /** TERM to the service's process group, KILL after graceMs; waits for it to end. */
  private async halt(dir: SupervisorFiles, graceMs: number): Promise<number | undefined> {
    let exit = await dir.exitCode();
    if (exit !== undefined) return exit;
    await dir.control(`stop ${Math.round(graceMs)}`);
    const until = Date.now() + graceMs + 5_000;
    while (exit === undefined && Date.now() < until) {
      await sleep(20);
      exit = await dir.exitCode();
    }
    return exit;
  }

  async stop(input: z.infer<typeof S.ServiceStopInput>): Promise<ServiceInfo> {
    const { ws, meta, dir } = await this.find(input.workspace_id, input.name);
    if ((await dir.exitCode()) === undefined) {
      meta.stopped = true;
      await writeJsonAtomic(this.metaPath(ws, meta.name), meta);
      const exit = await this.halt(dir, input.grace_seconds * 1000);
      if (exit === undefined)
        throw new PyroError("engine_failure", `service ${meta.name} did not end after SIGKILL`, [
          "delete the workspace with ",
          { op: "workspace_delete", args: { workspace_id: ws.workspaceId } },
        ]);
    }
    if (meta.published?.length) {
      await unpublishForService(this.workspaces, ws.workspaceId, meta.published);
      meta.published = [];
      await writeJsonAtomic(this.metaPath(ws, meta.name), meta);
    }
    return this.info(ws, meta, dir);
  }

  async status(input: z.infer<typeof S.ServiceRef>): Promise<ServiceInfo> {
    const { ws, meta, dir } = await this.find(input.workspace_id, input.name);
    return this.info(ws, meta, dir);
  }

  async list(workspaceId: string): Promise<z.infer<typeof S.ServiceListResult>> {
    const { ws, host } = await this.attach(workspaceId);
    const names = await readdir(join(ws.dir, "services")).catch(() => [] as string[]);
    const services: ServiceInfo[] = [];
    for (const n of names.sort()) {
      const name = n.replace(/\.json$/, "");
      if (!n.endsWith(".json") || !NAME.test(name)) continue;
      const meta = await readJson<ServiceMeta>(this.metaPath(ws, name));
      if (meta) services.push(await this.info(ws, meta, host.files(`services/${name}`)));
    }
    return { workspace_id: ws.workspaceId, services };
  }

  /**
   * The kept log (or its last tail_lines lines, or from cursor). With follow, new output goes
   * to `onChunk` as it comes until the service ends, the signal aborts or follow_seconds pass.
   */
  async logs(
    input: z.infer<typeof S.ServiceLogsInput>,
    opts: { signal?: AbortSignal; onChunk?: (b: Buffer) => void } = {},
  ): Promise<z.infer<typeof S.ServiceLogsResult>> {
    const { ws, meta, dir } = await this.find(input.workspace_id, input.name);
    let chunk = await readAll(dir, input.cursor ?? 0);
    let data = chunk.data.subarray(0, utf8Boundary(chunk.data));
    let cursor = chunk.cursor;
    if (input.tail_lines !== undefined && input.cursor === undefined) {
      const tail = tailLines(data, input.tail_lines);
      cursor += data.length - tail.length;
      data = tail;
    }
    let next = chunk.cursor + utf8Boundary(chunk.data);
    // Without a live sink (SDK, MCP, --json), followed output is collected into the result.
    const collected: Buffer[] = [];
    const emit = opts.onChunk ?? ((b: Buffer) => collected.push(b));
    if (input.follow) {
      emit(data);
      const until = Date.now() + input.follow_seconds * 1000;
      while (Date.now() < until && !opts.signal?.aborted) {
        const ended = (await dir.exitCode()) !== undefined;
        chunk = await dir.read(next, RING_BYTES);
        const piece = chunk.data.subarray(0, utf8Boundary(chunk.data));
        if (piece.length) emit(piece);
        next = chunk.cursor + piece.length;
        if (ended) break;
        await sleep(50, opts.signal);
      }
    }
    const exit = await dir.exitCode();
    const info = await this.info(ws, meta, dir);
    return {
      workspace_id: ws.workspaceId,
      name: meta.name,
      cursor,
      next_cursor: next,
      dropped_bytes: chunk.dropped_bytes,
      // When following live, the output went to onChunk; the result carries the position.
      output: input.follow ? Buffer.concat(collected).toString("utf8") : data.toString("utf8"),
      state: info.state,
      exit_code: exit ?? null,
    };
  }
}

/** The readiness probe as an argv run with exec, and how it is shown. */
function probeFor(i: StartInput, INIT: string): { kind: string; label: string; argv: string[] } | undefined {
  if (i.ready_file !== undefined)
    return {
      kind: "file",
      label: `file ${i.ready_file}`,
      argv: ["/bin/sh", "-c", 'test -e "$1"', "sh", i.ready_file],
    };
  if (i.ready_tcp !== undefined)
    return {
      kind: "tcp",
      label: `tcp 127.0.0.1:${i.ready_tcp}`,
      argv: [INIT, "probe", "tcp", String(i.ready_tcp)],
    };
  if (i.ready_http !== undefined)
    return { kind: "http", label: `http ${i.ready_http}`, argv: [INIT, "probe", "http", i.ready_http] };
  if (i.ready_command !== undefined)
    return { kind: "command", label: `command ${i.ready_command}`, argv: ["/bin/sh", "-c", i.ready_command] };
  return undefined;
}

/** The kept output from cursor, in as many reads as the transport needs (QEMU pages it). */
async function readAll(dir: SupervisorFiles, cursor: number): Promise<OutputChunk> {
  const first = await dir.read(cursor, RING_BYTES);
  const parts = [first.data];
  let next = first.next_cursor;
  while (next < first.total_bytes && next - first.cursor < RING_BYTES) {
    const more = await dir.read(next, RING_BYTES - (next - first.cursor));
    if (more.data.length === 0 || more.cursor !== next) break;
    parts.push(more.data);
    next = more.next_cursor;
  }
  return { ...first, next_cursor: next, data: Buffer.concat(parts) };
}

function tailLines(data: Buffer, n: number): Buffer {
  let end = data.length;
  if (end > 0 && data[end - 1] === 0x0a) end--; // a final newline ends the last line
  let pos = end;
  for (let seen = 0; pos > 0; ) {
    if (data[pos - 1] === 0x0a && ++seen === n) break;
    pos--;
  }
  return data.subarray(pos);
}

async function lastLines(dir: SupervisorFiles): Promise<string> {
  const total = await dir.totalBytes();
  const chunk = await dir.read(Math.max(0, total - 8192), 8192);
  const text = tailLines(chunk.data, LOG_TAIL_LINES).toString("utf8").trimEnd();
  return text ? text.replace(/^/gm, "  ") : "  (no output)";
}
