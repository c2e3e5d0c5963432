/**
 * `npm run bench:remote`: a bounded loopback load on `pyro mcp serve --http`. CLIENTS MCP
 * clients (the official client over Streamable HTTP, one token each, as separate agents
 * would be) each run CALLS `vm_run`s one after another, all clients at once. Prints p50/p99
 * latency of a call, the server's peak RSS, failures (must be 0), and checks that no sandbox
 * is left afterwards. The state dir is a fresh temporary one; the environment cache is shared.
 * Options: REMOTE_CLIENTS (default 20), REMOTE_CALLS (default 10), BENCH_JSON=1 for JSON.
 */
import { rm } from "node:fs/promises";
import { connect, createTokens, freshState, leftovers, pct, rssKib, serveHttp } from "./mcp-load.js";

const CLIENTS = Number(process.env.REMOTE_CLIENTS ?? 20);
const CALLS = Number(process.env.REMOTE_CALLS ?? 10);

async function main(): Promise<void> {
  const st = await freshState("pyro-bench-remote-");
  const state = st.dir;
  const tokens = createTokens(st, CLIENTS, "load");
  const served = await serveHttp(st, ["--profile", "vm-run"]);
  const server = served.proc;
  const url = served.url;
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
      const c = await connect(url, tokens[0]!, "warm");
      await c.callTool({ name: "vm_run", arguments: { command: ["true"] } }, { timeout: 600_000 });
      await c.close();
    }
    const t0 = performance.now();
    await Promise.all(
      tokens.map(async (token, i) => {
        const c = await connect(url, token, `load-${i}`);
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
    const left = leftovers(state);
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
      sandboxes_left: left.length,
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
    await served.stop();
    await rm(state, { recursive: true, force: true });
    if (process.env.BENCH_JSON !== "1")
      console.log(`  (total ${((performance.now() - started) / 1000).toFixed(1)} s incl. warm-up)`);
  }
}

await main();
