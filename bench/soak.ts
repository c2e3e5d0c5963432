/**
 * `npm run bench:soak`: `pyro mcp serve --http` under a steady agent load for a given time,
 * as an operator runs it. SOAK_CLIENTS workspace clients (the official MCP client over
 * Streamable HTTP, one token each) loop through an agent's session (workspace_create, a few
 * workspace_exec, a file write and read, workspace_status, workspace_list, workspace_delete);
 * one more client runs `vm_run` after `vm_run`; and another process runs the CLI's
 * `pyro workspace list --json` on the same state dir every second (with its own CPU time and
 * a bare `node -e 0` beside it, to tell waiting for a core from waiting on pyro), while one
 * more client calls workspace_list every second. Prints calls and calls/s per kind, errors
 * (must be 0; the first few messages), both lists' latency p50/p99/max (goal: p99 under 1 s),
 * the server's RSS (start, peak, end, and a series) and, with the heap probe
 * (bench/heap-probe.mjs), its live heap after a full GC at the same points, so a leak (the
 * live heap keeps growing) can be told from memory V8 and malloc keep after a peak. Then
 * checks that nothing is left (records, runsc sandboxes, processes, mounts, network
 * namespaces) and exits non-zero on any error or leftover.
 *
 * Options: SOAK_SECONDS or SOAK_MINUTES (default 90 s), SOAK_CLIENTS (default 6),
 * SOAK_HEAP_PROBE=0 (no forced GC in the server), SOAK_LIST=0 (no lists at all, neither the
 * CLI's nor workspace_list: to tell a failure of lists under load from others), BENCH_JSON=1.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Client } from "@modelcontextprotocol/client";
import {
  CLI,
  connect,
  createTokens,
  freshState,
  leftovers,
  pct,
  resultText,
  rssKib,
  serveHttp,
  type ToolResult,
} from "./mcp-load.js";

const SECONDS = process.env.SOAK_SECONDS
  ? Number(process.env.SOAK_SECONDS)
  : process.env.SOAK_MINUTES
    ? Number(process.env.SOAK_MINUTES) * 60
    : 90;
const CLIENTS = Number(process.env.SOAK_CLIENTS ?? 6);
const HEAP_PROBE = process.env.SOAK_HEAP_PROBE !== "0";
const LISTS = process.env.SOAK_LIST !== "0";
const JSON_OUT = process.env.BENCH_JSON === "1";
/** Points of the printed RSS series: each minute, or each 15 s of a run under 5 minutes. */
const SERIES_STEP_S = SECONDS >= 300 ? 60 : 15;
const RSS_SAMPLE_MS = 2_000;
// A call slower than this under a steady load is an error (and a hung server ends the run).
const CALL_TIMEOUT_MS = 120_000;

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (kib: number) => Math.round(kib / 1024);
const mibB = (bytes: number) => Number((bytes / 1048576).toFixed(1));

class Tally {
  readonly calls = new Map<string, number>();
  readonly errors: string[] = [];
  count(kind: string) {
    this.calls.set(kind, (this.calls.get(kind) ?? 0) + 1);
  }
  error(kind: string, message: string) {
    this.errors.push(`${kind}: ${message.replace(/\s+/g, " ").slice(0, kind === "server" ? 1500 : 300)}`);
  }
}

/** One tool call: counted, and an error result or a thrown call recorded, never thrown. */
async function call(
  t: Tally,
  c: Client,
  name: string,
  args: Record<string, unknown>,
  check?: (s: Record<string, unknown>) => string | undefined,
): Promise<Record<string, unknown> | undefined> {
  t.count(name);
  try {
    const r = (await c.callTool({ name, arguments: args }, { timeout: CALL_TIMEOUT_MS })) as ToolResult;
    if (r.isError) return void t.error(name, resultText(r));
    const s = r.structuredContent ?? {};
    const bad = check?.(s);
    if (bad) return void t.error(name, bad);
    return s;
  } catch (e) {
    t.error(name, (e as Error).message);
    return undefined;
  }
}

const exitOk = (s: Record<string, unknown>) =>
  s.exit_code === 0 ? undefined : `exit_code ${String(s.exit_code)}: ${String(s.stderr ?? "").slice(0, 200)}`;

/** An agent's session on one workspace; the workspace is deleted whatever failed. */
async function session(t: Tally, c: Client, i: number, n: number, ids: Set<string>): Promise<void> {
  const created = await call(t, c, "workspace_create", {});
  const id = created?.workspace_id as string | undefined;
  // A failed create is counted; waiting a moment keeps a broken server from being hammered.
  if (!id) return void (await pause(1000));
  ids.add(id);
  try {
    await call(t, c, "workspace_exec", { workspace_id: id, command: "uname -a && id -u" }, exitOk);
    await call(t, c, "workspace_exec", { workspace_id: id, command: ["ls", "/"] }, exitOk);
    const content = `client ${i} session ${n}\n${"x".repeat(2000)}\n`;
    await call(t, c, "workspace_file_write", { workspace_id: id, path: "src/notes.txt", content });
    await call(t, c, "workspace_file_read", { workspace_id: id, path: "src/notes.txt" }, (s) =>
      s.content === content ? undefined : "read back something else than was written",
    );
    await call(
      t,
      c,
      "workspace_exec",
      { workspace_id: id, command: "wc -c < src/notes.txt && seq 1 2000 | sort -r | head -3" },
      (s) =>
        exitOk(s) ??
        (String(s.stdout).startsWith(`${content.length}\n`) ? undefined : `stdout ${String(s.stdout)}`),
    );
    await call(t, c, "workspace_status", { workspace_id: id });
    if (LISTS) await call(t, c, "workspace_list", {});
  } finally {
    await call(t, c, "workspace_delete", { workspace_id: id });
  }
}

/** GNU time, to read a list's own CPU time (user + system) apart from its wait for a core. */
const GNU_TIME = existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined;

/** What the CLI lister measured. */
interface CliListFigures {
  wall: number[];
  /** CPU seconds each list used itself (when GNU time is there). */
  cpu: number[];
  /** A bare `node -e 0` started right after each list: what any process start costs under this load. */
  bareNode: number[];
}

function timed(file: string, args: string[], env: NodeJS.ProcessEnv) {
  return new Promise<{ ms: number; code: number | null; out: string; err: string }>((resolve) => {
    const s = performance.now();
    const p = spawn(file, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (err += d.toString()));
    p.once("close", (code) => resolve({ ms: performance.now() - s, code, out, err }));
  });
}

/**
 * `pyro workspace list --json` every second (the next one as soon as a slow one ends), with
 * its CPU time and a bare node start beside it: on a saturated 2-core machine a CLI list's
 * latency is mostly waiting for a core, which these tell apart from waiting on pyro.
 */
function cliLister(env: NodeJS.ProcessEnv, t: Tally, until: () => boolean, f: CliListFigures): Promise<void> {
  const once = async () => {
    const argv = [process.execPath, CLI, "workspace", "list", "--json"];
    const r = GNU_TIME
      ? await timed(GNU_TIME, ["-f", "__cpu %U %S", ...argv], env)
      : await timed(argv[0]!, argv.slice(1), env);
    f.wall.push(r.ms);
    const cpu = /__cpu ([\d.]+) ([\d.]+)\s*$/.exec(r.err);
    if (cpu) f.cpu.push((Number(cpu[1]) + Number(cpu[2])) * 1000);
    const err = r.err.replace(/__cpu .*\s*$/, "");
    t.count("cli workspace list");
    if (r.code !== 0) t.error("cli workspace list", `exit ${r.code}: ${err || r.out}`);
    else
      try {
        JSON.parse(r.out);
      } catch {
        t.error("cli workspace list", `not JSON: ${r.out.slice(0, 200)}`);
      }
    f.bareNode.push((await timed(process.execPath, ["-e", "0"], env)).ms);
  };
  return (async () => {
    while (!until()) {
      const s = performance.now();
      await once();
      const rest = 1000 - (performance.now() - s);
      if (rest > 0 && !until()) await new Promise((r) => setTimeout(r, rest));
    }
  })();
}

/** `workspace_list` over MCP every second from a client of its own (a separate token). */
function mcpLister(c: Client, t: Tally, until: () => boolean, latencies: number[]): Promise<void> {
  return (async () => {
    while (!until()) {
      const s = performance.now();
      await call(t, c, "workspace_list", {});
      latencies.push(performance.now() - s);
      const rest = 1000 - (performance.now() - s);
      if (rest > 0 && !until()) await new Promise((r) => setTimeout(r, rest));
    }
    await c.close();
  })();
}

interface HeapPoint {
  at: number;
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

/** Least-squares slope of y over x (per unit of x). */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let k = 0; k < n; k++) {
    num += (xs[k]! - mx) * (ys[k]! - my);
    den += (xs[k]! - mx) ** 2;
  }
  return den ? num / den : 0;
}

async function main(): Promise<void> {
  const st = await freshState("pyro-bench-soak-");
  const tokens = createTokens(st, CLIENTS + 2, "soak");
  const probeFile = join(st.dir, "heap-probe.jsonl");
  const t = new Tally();
  const served = await serveHttp(
    st,
    [],
    HEAP_PROBE
      ? {
          nodeArgs: ["--expose-gc", "--import", join(import.meta.dirname, "heap-probe.mjs")],
          env: { PYRO_BENCH_HEAP_PROBE: probeFile },
        }
      : {},
  );
  const pid = served.proc.pid!;
  let stopping = false;
  served.proc.once("exit", (code, signal) => {
    if (!stopping)
      t.error(
        "server",
        `exited (code ${code}, signal ${signal}) mid-run; its log ends: ${served.log().slice(-1500)}`,
      );
  });
  const ids = new Set<string>();
  const cliList: CliListFigures = { wall: [], cpu: [], bareNode: [] };
  const mcpList: number[] = [];
  const rss: { s: number; kib: number }[] = [];
  let exitCode = 0;
  let keepState = false;
  const started = performance.now();
  try {
    // Warm-up outside the measurement: the environment is built (or found) once.
    {
      const c = await connect(served.url, tokens[0]!, "warm");
      const w = new Tally();
      await call(w, c, "vm_run", { command: ["true"] });
      await c.close();
      if (w.errors.length) throw new Error(`warm-up failed: ${w.errors[0]}`);
    }
    const probe = () => {
      if (HEAP_PROBE) served.proc.kill("SIGUSR2");
    };
    probe();
    const t0 = performance.now();
    const elapsed = () => (performance.now() - t0) / 1000;
    const until = () => elapsed() >= SECONDS;
    rss.push({ s: 0, kib: rssKib(pid) });
    let nextPoint = SERIES_STEP_S;
    const sampler = setInterval(() => {
      rss.push({ s: elapsed(), kib: rssKib(pid) });
      if (elapsed() >= nextPoint) {
        nextPoint += SERIES_STEP_S;
        probe();
      }
    }, RSS_SAMPLE_MS);
    const workers = tokens.slice(2).map(async (token, i) => {
      const c = await connect(served.url, token, `soak-ws-${i}`);
      for (let n = 0; !until(); n++) await session(t, c, i, n, ids);
      await c.close();
    });
    const runner = (async () => {
      const c = await connect(served.url, tokens[0]!, "soak-vm-run");
      for (let n = 0; !until(); n++) {
        const s = await call(t, c, "vm_run", { command: ["echo", `run-${n}`] }, (r) =>
          r.stdout === `run-${n}\n` ? undefined : `stdout ${JSON.stringify(r.stdout)}`,
        );
        if (typeof s?.vm_id === "string") ids.add(s.vm_id);
        else if (!s) await pause(1000);
      }
      await c.close();
    })();
    const lister = LISTS ? cliLister(st.env, t, until, cliList) : Promise.resolve();
    const mcpListing = LISTS
      ? mcpLister(await connect(served.url, tokens[1]!, "soak-lister"), t, until, mcpList)
      : Promise.resolve();
    const settled = await Promise.allSettled([...workers, runner, lister, mcpListing]);
    for (const s of settled) if (s.status === "rejected") t.error("client", String(s.reason));
    const wall = elapsed();
    clearInterval(sampler);
    rss.push({ s: wall, kib: rssKib(pid) });
    probe();
    // The last probe line is written asynchronously by the server.
    for (let k = 0; k < 50 && HEAP_PROBE; k++) {
      const lines = existsSync(probeFile) ? readFileSync(probeFile, "utf8").trim().split("\n").length : 0;
      if (lines >= Math.ceil(wall / SERIES_STEP_S) + 1) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const heap: HeapPoint[] =
      HEAP_PROBE && existsSync(probeFile)
        ? readFileSync(probeFile, "utf8")
            .trim()
            .split("\n")
            .filter(Boolean)
            .map((l) => JSON.parse(l) as HeapPoint)
        : [];

    stopping = true;
    await served.stop();
    const left = leftovers(st.dir, ids);
    for (const a of [cliList.wall, cliList.cpu, cliList.bareNode, mcpList]) a.sort((x, y) => x - y);
    const kinds = [...t.calls.entries()].sort((a, b) => b[1] - a[1]);
    const total = kinds.filter(([k]) => !k.startsWith("cli ")).reduce((a, [, n]) => a + n, 0);
    const series = rss.filter(
      (p, k) =>
        k === 0 ||
        k === rss.length - 1 ||
        Math.floor(p.s / SERIES_STEP_S) > Math.floor((rss[k - 1]?.s ?? 0) / SERIES_STEP_S),
    );
    // The live heap's trend over the second half: a cache levels off, a leak keeps growing.
    const h0 = heap[0]?.at ?? 0;
    const half = heap.filter((h) => h.at - h0 >= ((heap.at(-1)?.at ?? h0) - h0) / 2);
    const result = {
      seconds: Number(wall.toFixed(1)),
      workspace_clients: CLIENTS,
      mcp_calls: total,
      calls_per_s: Number((total / wall).toFixed(1)),
      calls: Object.fromEntries(
        kinds.map(([k, n]) => [k, { calls: n, per_s: Number((n / wall).toFixed(2)) }]),
      ),
      errors: t.errors.length,
      // The server's own end first: everything after it is a consequence.
      first_errors: [
        ...t.errors.filter((e) => e.startsWith("server:")),
        ...t.errors.filter((e) => !e.startsWith("server:")),
      ].slice(0, 5),
      list_p50_ms: Math.round(pct(cliList.wall, 50)),
      list_p99_ms: Math.round(pct(cliList.wall, 99)),
      list_max_ms: Math.round(cliList.wall.at(-1) ?? 0),
      list_cpu_p50_ms: cliList.cpu.length ? Math.round(pct(cliList.cpu, 50)) : null,
      list_cpu_p99_ms: cliList.cpu.length ? Math.round(pct(cliList.cpu, 99)) : null,
      bare_node_p50_ms: Math.round(pct(cliList.bareNode, 50)),
      bare_node_p99_ms: Math.round(pct(cliList.bareNode, 99)),
      mcp_list_p50_ms: Math.round(pct(mcpList, 50)),
      mcp_list_p99_ms: Math.round(pct(mcpList, 99)),
      mcp_list_max_ms: Math.round(mcpList.at(-1) ?? 0),
      rss_start_mib: mib(rss[0]?.kib ?? 0),
      rss_peak_mib: mib(Math.max(...rss.map((p) => p.kib))),
      rss_end_mib: mib(rss.at(-1)?.kib ?? 0),
      rss_series_mib: series.map((p) => [Math.round(p.s), mib(p.kib)]),
      heap_after_gc_mib: heap.map((h) => [Math.round((h.at - h0) / 1000), mibB(h.heapUsed)]),
      heap_after_gc_external_mib: heap.map((h) => mibB(h.external)),
      heap_trend_mib_per_min: Number(
        (
          slope(
            half.map((h) => (h.at - h0) / 60_000),
            half.map((h) => h.heapUsed / 1048576),
          ) || 0
        ).toFixed(2),
      ),
      left,
    };
    if (JSON_OUT) console.log(JSON.stringify(result));
    else {
      console.log(
        `soak: ${CLIENTS} workspace clients + 1 vm_run client over Streamable HTTP, ${LISTS ? "CLI workspace list every 1 s" : "no lists (SOAK_LIST=0)"}, ${result.seconds} s`,
      );
      console.log(`  calls            ${total} MCP calls, ${result.calls_per_s}/s`);
      for (const [k, v] of Object.entries(result.calls))
        console.log(`    ${k.padEnd(22)} ${String(v.calls).padStart(6)}  ${v.per_s}/s`);
      console.log(`  errors           ${result.errors}`);
      for (const e of result.first_errors) console.log(`    ${e}`);
      if (LISTS) {
        console.log(
          `  mcp list         p50 ${result.mcp_list_p50_ms} ms, p99 ${result.mcp_list_p99_ms} ms, max ${result.mcp_list_max_ms} ms (workspace_list from a client of its own every 1 s; goal p99 < 1000)`,
        );
        console.log(
          `  cli list         p50 ${result.list_p50_ms} ms, p99 ${result.list_p99_ms} ms, max ${result.list_max_ms} ms (a process each; goal p99 < 1000)`,
        );
        console.log(
          `    its own CPU    ${result.list_cpu_p50_ms === null ? "unknown (no /usr/bin/time)" : `p50 ${result.list_cpu_p50_ms} ms, p99 ${result.list_cpu_p99_ms} ms`}; a bare \`node -e 0\` beside it: p50 ${result.bare_node_p50_ms} ms, p99 ${result.bare_node_p99_ms} ms (the rest is waiting for a core)`,
        );
      }
      console.log(
        `  server RSS       start ${result.rss_start_mib} MiB, peak ${result.rss_peak_mib} MiB, end ${result.rss_end_mib} MiB`,
      );
      console.log(`    series (s:MiB) ${result.rss_series_mib.map(([s, m]) => `${s}:${m}`).join(" ")}`);
      if (heap.length)
        console.log(
          `  live heap (GC'd) ${result.heap_after_gc_mib.map(([s, m]) => `${s}:${m}`).join(" ")} MiB; second-half trend ${result.heap_trend_mib_per_min} MiB/min`,
        );
      console.log(`  left afterwards  ${left.length ? left.join("; ") : "nothing"}`);
    }
    if (t.errors.length || left.length) exitCode = 1;
    // Whatever is left is the operator's to look at (and a mount under it must not be rm'd).
    keepState = left.length > 0;
  } finally {
    stopping = true;
    await served.stop();
    if (keepState) console.error(`state dir kept for inspection: ${st.dir}`);
    else await rm(st.dir, { recursive: true, force: true });
    if (!JSON_OUT)
      console.log(`  (total ${((performance.now() - started) / 1000).toFixed(1)} s incl. warm-up)`);
  }
  if (exitCode) {
    console.error("soak FAILED: errors or leftovers above");
    process.exitCode = exitCode;
  }
}

await main();
