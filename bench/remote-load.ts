/**
 * `npm run bench:remote`: a bounded loopback load on `pyro mcp serve --http`. CLIENTS MCP
 * clients (the official client over Streamable HTTP, one token each, as separate agents
 * would be) each run CALLS `vm_run`s one after another, all clients at once. Prints p50/p99
 * latency of a call, the server's peak RSS, failures (must be 0), and checks that no sandbox
 * is left afterwards. The state dir is a fresh temporary one; the environment cache is shared.
 * Options: REMOTE_CLIENTS (default 20), REMOTE_CALLS (default 10), BENCH_JSON=1 for JSON.
 */
import { execFileSync, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";

const CLIENTS = Number(process.env.REMOTE_CLIENTS ?? 20);
const CALLS = Number(process.env.REMOTE_CALLS ?? 10);
const CLI = join(import.meta.dirname, "..", "dist", "cli", "main.js");

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

function rssKib(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

async function main(): Promise<void> {
  const state = await mkdtemp(join(tmpdir(), "pyro-bench-remote-"));
  const env = { ...process.env, PYRO_STATE_DIR: state, PYRO_ENGINE: process.env.PYRO_ENGINE ?? "gvisor" };
  const tokens = Array.from({ length: CLIENTS }, (_, i) => {
    const out = execFileSync(process.execPath, [CLI, "token", "create", "--name", `load-${i}`, "--json"], {
      env,
    });
    return (JSON.parse(out.toString()) as { token: string }).token;
  });
  const server = spawn(
    process.execPath,
    [CLI, "mcp", "serve", "--http", "127.0.0.1:0", "--profile", "vm-run"],
    {
      env,
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let log = "";
  const url = await new Promise<string>((resolve, reject) => {
    server.stderr.on("data", (d: Buffer) => {
      log += d.toString();
      const m = /serving MCP on (http:\/\/[0-9.]+:\d+)\/mcp/.exec(log);
      if (m) resolve(m[1]!);
    });
    server.once("exit", (c) => reject(new Error(`server exited ${c}: ${log}`)));
  });
  let peak = rssKib(server.pid!);
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssKib(server.pid!));
  }, 100);
  const latencies: number[] = [];
  const failures: string[] = [];
  const started = performance.now();
  try {
    // Warm the environment (built once, outside the measurement).
    {
      const c = new Client({ name: "warm", version: "0" });
      await c.connect(
        new StreamableHTTPClientTransport(new URL(`${url}/mcp`), {
          requestInit: { headers: { authorization: `Bearer ${tokens[0]}` } },
        }),
      );
      await c.callTool({ name: "vm_run", arguments: { command: ["true"] } }, { timeout: 600_000 });
      await c.close();
    }
    const t0 = performance.now();
    await Promise.all(
      tokens.map(async (token, i) => {
        const c = new Client({ name: `load-${i}`, version: "0" });
        await c.connect(
          new StreamableHTTPClientTransport(new URL(`${url}/mcp`), {
            requestInit: { headers: { authorization: `Bearer ${token}` } },
          }),
        );
        for (let j = 0; j < CALLS; j++) {
          const s = performance.now();
          try {
            const r = (await c.callTool(
              { name: "vm_run", arguments: { command: ["echo", `${i}-${j}`] } },
              { timeout: 600_000 },
            )) as {
              isError?: boolean;
              structuredContent?: { stdout?: string };
              content?: { text?: string }[];
            };
            if (r.isError || r.structuredContent?.stdout !== `${i}-${j}\n`)
              failures.push(`${i}-${j}: ${r.content?.map((x) => x.text).join(" ")}`);
          } catch (e) {
            failures.push(`${i}-${j}: ${(e as Error).message}`);
          }
          latencies.push(performance.now() - s);
        }
        await c.close();
      }),
    );
    const wall = performance.now() - t0;
    latencies.sort((a, b) => a - b);
    const left = (() => {
      try {
        return execFileSync("runsc", [`--root=${join(state, "runsc")}`, "list", "-quiet"])
          .toString()
          .split("\n")
          .filter(Boolean);
      } catch {
        return [];
      }
    })();
    const records = [join(state, "vms"), join(state, "workspaces")].flatMap((d) => {
      try {
        return readdirSync(d).filter((n) => /^(vm|ws)_/.test(n));
      } catch {
        return [];
      }
    });
    const result = {
      clients: CLIENTS,
      calls_per_client: CALLS,
      calls: latencies.length,
      failures: failures.length,
      p50_ms: Math.round(pct(latencies, 50)),
      p99_ms: Math.round(pct(latencies, 99)),
      max_ms: Math.round(latencies[latencies.length - 1] ?? 0),
      wall_s: Number((wall / 1000).toFixed(1)),
      calls_per_s: Number((latencies.length / (wall / 1000)).toFixed(1)),
      server_peak_rss_mib: Math.round(peak / 1024),
      sandboxes_left: left.length + records.length,
    };
    if (process.env.BENCH_JSON === "1") console.log(JSON.stringify(result));
    else {
      console.log(`remote load: ${CLIENTS} clients x ${CALLS} vm_run over Streamable HTTP (loopback)`);
      for (const [k, v] of Object.entries(result)) console.log(`  ${k.padEnd(22)} ${v}`);
      for (const f of failures.slice(0, 5)) console.log(`  failure: ${f}`);
    }
    if (failures.length || result.sandboxes_left) process.exitCode = 1;
  } finally {
    clearInterval(sampler);
    server.kill("SIGTERM");
    await new Promise((r) => server.once("exit", r));
    await rm(state, { recursive: true, force: true });
    if (process.env.BENCH_JSON !== "1")
      console.log(`  (total ${((performance.now() - started) / 1000).toFixed(1)} s incl. warm-up)`);
  }
}

await main();
