/**
 * What the loopback load benches (remote-load.ts, soak.ts) share: a fresh state dir with
 * tokens, `pyro mcp serve --http` started from dist/ as its own process, an MCP client per
 * token (the official client over Streamable HTTP), the server's RSS from /proc, percentiles,
 * and the check that a state dir holds nothing afterwards (records, sandboxes, processes,
 * mounts, network namespaces).
 */
import { type ChildProcessByStdio, execFileSync, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";

export const CLI = join(import.meta.dirname, "..", "dist", "cli", "main.js");

export function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

/** A process's resident set in KiB (0 once it is gone). */
export function rssKib(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

export interface BenchState {
  dir: string;
  env: NodeJS.ProcessEnv;
}

/** A fresh temporary state dir (the environment cache stays the shared one). */
export async function freshState(prefix: string): Promise<BenchState> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return {
    dir,
    env: {
      ...process.env,
      PYRO_STATE_DIR: dir,
      PYRO_ENGINE: process.env.PYRO_ENGINE ?? "gvisor",
      // The pool, on by default, would leave ready sandboxes in this temporary state dir and
      // change what these rows have always measured (a sandbox per vm_run): off unless set.
      PYRO_POOL_SIZE: process.env.PYRO_POOL_SIZE ?? "0",
    },
  };
}

/** `count` tokens (`pyro token create`), one per client, as separate agents would have. */
export function createTokens(state: BenchState, count: number, prefix: string): string[] {
  return Array.from({ length: count }, (_, i) => {
    const out = execFileSync(
      process.execPath,
      [CLI, "token", "create", "--name", `${prefix}-${i}`, "--json"],
      {
        env: state.env,
      },
    );
    return (JSON.parse(out.toString()) as { token: string }).token;
  });
}

export interface ServedMcp {
  proc: ChildProcessByStdio<null, null, Readable>;
  url: string;
  /** The server's stderr so far (its request log). */
  log(): string;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
}

/** Starts `pyro mcp serve --http 127.0.0.1:0 ARGS` and waits for its URL. */
export async function serveHttp(
  state: BenchState,
  args: string[],
  opts: { nodeArgs?: string[]; env?: NodeJS.ProcessEnv } = {},
): Promise<ServedMcp> {
  const proc = spawn(
    process.execPath,
    [...(opts.nodeArgs ?? []), CLI, "mcp", "serve", "--http", "127.0.0.1:0", ...args],
    { env: { ...state.env, ...opts.env }, stdio: ["ignore", "ignore", "pipe"] },
  );
  // The request log grows by a line per request: keep the head (the URL, startup errors)
  // and a tail, not an 8-minute soak's worth.
  let head = "";
  let tail = "";
  const url = await new Promise<string>((resolve, reject) => {
    proc.stderr.on("data", (d: Buffer) => {
      if (head.length < 16_384) head += d.toString();
      else tail = (tail + d.toString()).slice(-16_384);
      const m = /serving MCP on (http:\/\/[0-9.]+:\d+)\/mcp/.exec(head);
      if (m) resolve(m[1]!);
    });
    proc.once("exit", (c) => reject(new Error(`server exited ${c}: ${head}${tail}`)));
  });
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  return {
    proc,
    url,
    log: () => head + tail,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      await exited;
    },
  };
}

/** An MCP client of `url` with a bearer token. */
export async function connect(url: string, token: string, name: string): Promise<Client> {
  const c = new Client({ name, version: "0" });
  await c.connect(
    new StreamableHTTPClientTransport(new URL(`${url}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    }),
  );
  return c;
}

export interface ToolResult {
  isError?: boolean;
  structuredContent?: Record<string, unknown>;
  content?: { text?: string }[];
}

export const resultText = (r: ToolResult): string => (r.content ?? []).map((x) => x.text ?? "").join(" ");

/**
 * What a state dir still holds that a finished load should have removed: sandbox records,
 * runsc sandboxes of its runsc root, processes naming it, mounts under it, and the network
 * namespaces of the given sandbox ids (`pyro-<id>`, src/network/netns.ts). Each entry names
 * the thing left.
 */
export function leftovers(stateDir: string, sandboxIds: Iterable<string> = []): string[] {
  const left: string[] = [];
  for (const d of ["vms", "workspaces"]) {
    try {
      for (const n of readdirSync(join(stateDir, d))) if (/^(vm|ws)_/.test(n)) left.push(`record ${d}/${n}`);
    } catch {}
  }
  try {
    const out = execFileSync("runsc", [`--root=${join(stateDir, "runsc")}`, "list", "-quiet"], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    for (const id of out.toString().split("\n").filter(Boolean)) left.push(`runsc sandbox ${id}`);
  } catch {}
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    if (Number(pid) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
      if (cmd.includes(stateDir)) left.push(`process ${pid}: ${cmd.slice(0, 160)}`);
    } catch {}
  }
  try {
    for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
      const at = line.split(" ")[4];
      if (at && (at === stateDir || at.startsWith(`${stateDir}/`))) left.push(`mount ${at}`);
    }
  } catch {}
  const ids = new Set(sandboxIds);
  if (ids.size) {
    let names: string[] = [];
    try {
      names = readdirSync("/run/netns");
    } catch {}
    for (const n of names) if (n.startsWith("pyro-") && ids.has(n.slice(5))) left.push(`netns ${n}`);
  }
  return left;
}
