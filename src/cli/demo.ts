import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PyroError, toPyroError } from "../core/errors.js";
import { getOperation } from "../operations/table.js";
import { toolInputJsonSchema } from "../operations/tool-schema.js";
import { Pyro, type RunResult } from "../sdk/pyro.js";
import { ignore, noted } from "../util/best-effort.js";
import { type CliIo, reportError } from "./commands.js";
import { progressPrinter } from "./progress.js";

/**
 * `pyro demo`: a deterministic end-to-end run proving this host can run pyro's sandboxes.
 * `pyro demo ollama`: a tool-calling loop between a local Ollama model and `vm_run`.
 * Loaded lazily by main.ts, so neither costs anything on other commands.
 */

const ENVIRONMENT = "debian:12";

export interface DemoStep {
  step: string;
  ok: boolean;
  ms: number;
  detail: string;
}

function firstLine(s: string): string {
  return s.trim().split("\n")[0] ?? "";
}

function clip(s: string, n = 160): string {
  const one = s.replace(/\s+/g, " ").trim();
  return one.length > n ? `${one.slice(0, n - 1)}…` : one;
}

function callOpts(io: CliIo, progress: ReturnType<typeof progressPrinter>) {
  return { signal: io.signal, onProgress: (p: { message: string }) => progress.update(p) };
}

/** Files the demo seeds its workspace with: small, generated, the same on every run. */
const SEED_FILES: Record<string, string> = {
  "README.md": "# pyro demo\nA tiny project seeded into /workspace by `pyro demo`.\n",
  "check.sh": [
    "#!/bin/sh",
    "set -e",
    'echo "files: $(ls | sort | tr "\\n" " ")"',
    'echo "debian: $(cat /etc/debian_version)"',
    'echo "cwd: $(pwd)"',
    "",
  ].join("\n"),
};

export async function runDemo(io: CliIo, opts: { json?: boolean }): Promise<void> {
  const json = opts.json === true;
  const pyro = new Pyro();
  const progress = progressPrinter(io.stderr);
  const co = callOpts(io, progress);
  const steps: DemoStep[] = [];
  const started = performance.now();
  let engine = "";
  let workspaceId: string | undefined;
  let seedDir: string | undefined;
  const total = 7;

  const step = async (name: string, fn: () => Promise<string>): Promise<void> => {
    const t0 = performance.now();
    const detail = await fn();
    progress.done();
    const s: DemoStep = { step: name, ok: true, ms: Math.round(performance.now() - t0), detail };
    steps.push(s);
    if (!json) io.stdout.write(`[${steps.length}/${total}] ${name.padEnd(16)} ${detail} (${s.ms} ms)\n`);
  };
  const expectExit0 = (r: { exit_code: number; stdout: string; stderr: string; command: string }) => {
    if (r.exit_code !== 0) {
      throw new PyroError(
        "engine_failure",
        `\`${r.command}\` exited ${r.exit_code}: ${clip(r.stderr || r.stdout)}`,
        "run `pyro doctor` to see what this host lacks",
      );
    }
  };

  try {
    await step("run", async () => {
      const r = await pyro.runInVm({ environment: ENVIRONMENT, command: ["git", "--version"] }, co);
      expectExit0(r);
      engine = r.execution_mode;
      return `pyro run ${ENVIRONMENT} -- git --version → ${firstLine(r.stdout)} (${r.execution_mode}, sandbox deleted: ${r.cleaned_up})`;
    });

    seedDir = await mkdtemp(join(tmpdir(), "pyro-demo-seed-"));
    for (const [name, content] of Object.entries(SEED_FILES)) await writeFile(join(seedDir, name), content);

    await step("workspace create", async () => {
      const ws = await pyro.createWorkspace(
        { environment: ENVIRONMENT, seedPath: seedDir, ttlSeconds: 300 },
        co,
      );
      workspaceId = ws.workspace_id;
      const seed = ws.status.workspace_seed;
      return `${ws.workspace_id} ${ws.status.state}, seeded ${seed.entry_count} entries (${seed.bytes_written} bytes) into ${seed.destination}`;
    });
    const id = workspaceId!;

    await step("workspace exec", async () => {
      const r = await pyro.execWorkspace(id, { command: "sh check.sh" }, co);
      expectExit0(r);
      return `sh check.sh → ${clip(r.stdout)}`;
    });

    await step("persistence", async () => {
      const w = await pyro.execWorkspace(id, { command: "echo persisted > note.txt" }, co);
      expectExit0(w);
      const r = await pyro.execWorkspace(id, { command: ["cat", "note.txt"] }, co);
      expectExit0(r);
      if (r.stdout.trim() !== "persisted")
        throw new PyroError(
          "engine_failure",
          `files did not persist between commands (got ${JSON.stringify(r.stdout)})`,
        );
      return "echo persisted > note.txt; cat note.txt → persisted (files survive between commands)";
    });

    await step("workspace status", async () => {
      const s = await pyro.statusWorkspace(id);
      return `${s.state}, ${s.command_count} commands, last: ${s.last_command?.command ?? "-"} → exit ${s.last_command?.exit_code ?? "-"}`;
    });

    await step("workspace logs", async () => {
      const l = await pyro.logsWorkspace(id);
      if (l.commands.length !== 3)
        throw new PyroError("engine_failure", `expected 3 logged commands, found ${l.commands.length}`);
      return `${l.commands.length} commands logged: ${l.commands.map((c) => `#${c.sequence} ${c.command} → ${c.exit_code}`).join("; ")}`;
    });

    await step("workspace delete", async () => {
      await pyro.deleteWorkspace(id);
      workspaceId = undefined;
      const gone = await pyro.statusWorkspace(id).then(
        () => false,
        (e) => toPyroError(e).code === "not_found",
      );
      if (!gone) throw new PyroError("engine_failure", `workspace ${id} still exists after delete`);
      return `${id} deleted; its status now reports not_found`;
    });
  } catch (e) {
    progress.done();
    const pe = toPyroError(e);
    const failed = new PyroError(
      pe.code,
      `demo step ${steps.length + 1}/${total} failed: ${pe.message}`,
      pe.hint ?? "run `pyro doctor` to see what this host lacks",
    );
    reportError(io, failed, json);
    return;
  } finally {
    if (workspaceId)
      await pyro.deleteWorkspace(workspaceId).catch(ignore("demo cleanup: workspace gone already"));
    if (seedDir) await rm(seedDir, { recursive: true, force: true });
  }

  const durationMs = Math.round(performance.now() - started);
  const summary = `demo OK: ${steps.length} steps in ${(durationMs / 1000).toFixed(1)} s on ${engine} (${ENVIRONMENT}); this host can run pyro sandboxes`;
  if (json) {
    io.stdout.write(
      `${JSON.stringify({ ok: true, environment: ENVIRONMENT, execution_mode: engine, duration_ms: durationMs, steps, summary }, null, 2)}\n`,
    );
  } else {
    io.stdout.write(`${summary}\n`);
  }
}

/* ------------------------------------------------------------------ */
/* pyro demo ollama                                                     */
/* ------------------------------------------------------------------ */

export const OLLAMA_DEFAULT_URL = "http://127.0.0.1:11434";
export const OLLAMA_DEFAULT_MODEL = "llama3.2:3b";
const MAX_ROUNDS = 6;
const OLLAMA_FIX = `start Ollama (\`ollama serve\`) and pull a tool-calling model (\`ollama pull ${OLLAMA_DEFAULT_MODEL}\`), or point --base-url / OLLAMA_HOST at a running server`;

/** OLLAMA_HOST may be "host", "host:port" or a URL; 0.0.0.0 (a bind address) means this host. */
export function ollamaBaseUrl(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const raw = (flag ?? env.OLLAMA_HOST ?? "").trim();
  if (!raw) return OLLAMA_DEFAULT_URL;
  const withScheme = /^[a-z]+:\/\//i.test(raw) ? raw : `http://${raw}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new PyroError(
      "invalid_argument",
      `not a URL: ${JSON.stringify(raw)}`,
      "pass e.g. --base-url http://127.0.0.1:11434",
    );
  }
  if (!u.port && !flag) u.port = "11434";
  if (u.hostname === "0.0.0.0") u.hostname = "127.0.0.1";
  return u.toString().replace(/\/+$/, "");
}

interface OllamaToolCall {
  id?: string;
  function: { name: string; arguments: Record<string, unknown> | string };
}
interface OllamaMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
  tool_calls?: OllamaToolCall[];
  tool_name?: string;
}

async function ollamaChat(baseUrl: string, body: unknown, signal: AbortSignal): Promise<OllamaMessage> {
  let res: Response;
  try {
    res = await fetch(`${baseUrl}/api/chat`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.any([signal, AbortSignal.timeout(600_000)]),
    });
  } catch (e) {
    if (signal.aborted) throw new PyroError("cancelled", "demo cancelled");
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (e as Error).message;
    throw new PyroError(
      "host_dependency_missing",
      `no Ollama server reachable at ${baseUrl} (${why})`,
      OLLAMA_FIX,
    );
  }
  const text = await res.text();
  if (!res.ok) {
    let msg = text;
    try {
      msg = (JSON.parse(text) as { error?: string }).error ?? text;
    } catch (e) {
      noted("ollama's error body is not JSON: its text is the message", e);
    }
    const hint = /not found|pull/i.test(msg)
      ? `pull it with \`ollama pull ${(body as { model: string }).model}\`, or pass --model`
      : OLLAMA_FIX;
    throw new PyroError(
      "host_dependency_missing",
      `Ollama at ${baseUrl} answered HTTP ${res.status}: ${clip(msg, 300)}`,
      hint,
    );
  }
  try {
    const parsed = JSON.parse(text) as { message?: OllamaMessage };
    if (!parsed.message) throw new Error("no message field");
    return parsed.message;
  } catch (e) {
    throw new PyroError(
      "host_dependency_missing",
      `${baseUrl}/api/chat did not answer like Ollama: ${(e as Error).message}`,
      OLLAMA_FIX,
    );
  }
}

export async function runOllamaDemo(
  io: CliIo,
  opts: { model?: string; baseUrl?: string; json?: boolean },
): Promise<void> {
  const json = opts.json === true;
  const log = (line: string) => (json ? io.stderr : io.stdout).write(`${line}\n`);
  const started = performance.now();
  const progress = progressPrinter(io.stderr);
  let toolCalls = 0;
  let okCalls = 0;
  let engine: string | null = null;
  let answer = "";
  let rounds = 0;
  let model = opts.model ?? OLLAMA_DEFAULT_MODEL;
  let baseUrl = OLLAMA_DEFAULT_URL;
  try {
    baseUrl = ollamaBaseUrl(opts.baseUrl);
    model = opts.model ?? OLLAMA_DEFAULT_MODEL;
    const pyro = new Pyro();
    const op = getOperation("vm_run");
    // The same tool MCP clients see (no host escape hatch: a model never chooses isolation).
    const parameters = toolInputJsonSchema(op);
    const tools = [
      { type: "function", function: { name: op.name, description: op.description, parameters } },
    ];
    const messages: OllamaMessage[] = [
      {
        role: "system",
        content:
          "You are a coding agent. You can run shell commands in a fresh, isolated Debian 12 sandbox with the vm_run tool. Use the tool; never guess its output.",
      },
      {
        role: "user",
        content:
          "Use vm_run to run `git --version` in debian:12, then tell me in one sentence which Git version the sandbox has.",
      },
    ];
    log(`[ollama] ${baseUrl} model=${model} tools=vm_run`);
    log(`[user] ${messages[1]!.content}`);
    for (;;) {
      if (rounds >= MAX_ROUNDS)
        throw new PyroError(
          "timeout",
          `the model did not finish within ${MAX_ROUNDS} rounds`,
          "try a larger model with --model",
        );
      rounds++;
      const msg = await ollamaChat(
        baseUrl,
        { model, messages, tools, stream: false, options: { temperature: 0 } },
        io.signal,
      );
      const calls = msg.tool_calls ?? [];
      messages.push({
        role: "assistant",
        content: msg.content ?? "",
        ...(calls.length ? { tool_calls: calls } : {}),
      });
      if (calls.length === 0) {
        answer = (msg.content ?? "").trim();
        log(`[model] ${clip(answer, 400)}`);
        break;
      }
      for (const call of calls) {
        toolCalls++;
        const name = call.function?.name;
        let args: unknown = call.function?.arguments ?? {};
        if (typeof args === "string") {
          try {
            args = JSON.parse(args);
          } catch {
            args = { command: args };
          }
        }
        log(`[model] calls ${name} ${clip(JSON.stringify(args), 200)}`);
        let content: string;
        if (name !== op.name) {
          content = JSON.stringify({
            error: { code: "invalid_argument", message: `unknown tool ${name}; the only tool is ${op.name}` },
          });
          log(`[tool] ${name}: unknown tool`);
        } else {
          try {
            const r = await pyro.callTool<RunResult>(op.name, args, {
              signal: io.signal,
              onProgress: (p) => progress.update(p),
            });
            progress.done();
            okCalls++;
            engine = r.execution_mode;
            content = JSON.stringify(r);
            log(
              `[tool] vm_run → exit ${r.exit_code} (${r.execution_mode}, ${r.duration_ms} ms): ${clip(r.stdout || r.stderr, 200)}`,
            );
          } catch (e) {
            progress.done();
            const pe = toPyroError(e);
            if (pe.code === "cancelled") throw pe;
            content = JSON.stringify(pe.toJSON());
            log(`[tool] vm_run → error ${pe.code}: ${clip(pe.message, 200)}`);
          }
        }
        messages.push({ role: "tool", content, ...(name ? { tool_name: name } : {}) });
      }
    }
  } catch (e) {
    progress.done();
    reportError(io, e, json);
    return;
  }

  const ok = okCalls > 0 && answer.length > 0;
  const secs = ((performance.now() - started) / 1000).toFixed(1);
  const summary = ok
    ? `[summary] demo ollama OK: ${model} made ${toolCalls} vm_run call(s) (${okCalls} ran, engine ${engine}) and answered after ${rounds} round(s) in ${secs} s`
    : `[summary] demo ollama FAILED: ${model} made ${toolCalls} tool call(s), ${okCalls} ran successfully, in ${rounds} round(s), ${secs} s; a model that calls tools is needed (try --model qwen2.5:7b)`;
  if (json) {
    io.stdout.write(
      `${JSON.stringify({ ok, model, base_url: baseUrl, rounds, tool_calls: toolCalls, successful_tool_calls: okCalls, execution_mode: engine, answer, duration_ms: Math.round(performance.now() - started), summary }, null, 2)}\n`,
    );
  } else {
    io.stdout.write(`${summary}\n`);
  }
  if (!ok) io.setExitCode(1);
}
