/**
 * `workspace list` rows for `npm run bench` (bench.ts calls these; BENCH_ONLY=list runs them
 * alone, without runsc): on a state dir of LIST_WORKSPACES hand-written records (half running,
 * their sandbox pid this bench's own process, half stopped; no sandbox is started), each in
 * one interleaved loop so machine load hits all alike:
 *   - `pyro workspace list --json` from the CLI's fast path (cli/fast-list.ts),
 *   - the same through the full CLI (PYRO_FAST_PATHS=0),
 *   - raw reading: a `node -e` that reads and parses every workspace.json and prints them (the
 *     floor any list process has: Node's start-up and the reads),
 * each with its own CPU time (user + system, from GNU time where /usr/bin/time is installed).
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI, median, type Row } from "./speed.js";

type Add = (name: string) => Row;

export const LIST_WORKSPACES = 20;

export const LIST = {
  fast: `pyro workspace list --json, ${LIST_WORKSPACES} workspaces (fast path)`,
  full: `pyro workspace list --json, ${LIST_WORKSPACES} workspaces (full CLI)`,
  raw: `raw: node reads the ${LIST_WORKSPACES} records`,
};

/** GNU time, for a list's own CPU time apart from its wait for a core. */
const GNU_TIME = existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined;

/** Wall ms and CPU ms (user + system; NaN without GNU time) of one `node ARGS` run. */
function timed(args: string[], env: NodeJS.ProcessEnv): Promise<{ ms: number; cpu: number }> {
  return new Promise((resolve, reject) => {
    const argv = GNU_TIME ? ["-f", "__cpu %U %S", process.execPath, ...args] : args;
    const t0 = performance.now();
    const child = spawn(GNU_TIME ?? process.execPath, argv, { stdio: ["ignore", "ignore", "pipe"], env });
    let err = "";
    child.stderr.on("data", (c) => {
      err += c;
    });
    child.on("error", reject);
    child.on("close", (code) => {
      const ms = performance.now() - t0;
      if (code !== 0) return reject(new Error(`${args.join(" ")} exited ${code}: ${err.slice(-500)}`));
      const m = /__cpu ([\d.]+) ([\d.]+)\s*$/.exec(err);
      resolve({ ms, cpu: m ? (Number(m[1]) + Number(m[2])) * 1000 : Number.NaN });
    });
  });
}

const RAW_READ = `const fs=require("fs"),p=require("path");const d=p.join(process.env.PYRO_STATE_DIR,"workspaces");const out=[];for(const id of fs.readdirSync(d)){if(!/^ws_[0-9a-f]{16}$/.test(id))continue;try{out.push(JSON.parse(fs.readFileSync(p.join(d,id,"workspace.json"),"utf8")))}catch{}}process.stdout.write(JSON.stringify({workspaces:out},null,2)+"\\n")`;

async function writeRecords(dir: string): Promise<void> {
  const ws = join(dir, "workspaces");
  for (let i = 0; i < LIST_WORKSPACES; i++) {
    const id = `ws_${(0xbe00 + i).toString(16).padStart(16, "0")}`;
    const running = i % 2 === 0;
    await mkdir(join(ws, id, "files"), { recursive: true });
    const t = Date.now() - i * 60_000;
    await writeFile(
      join(ws, id, "workspace.json"),
      JSON.stringify(
        {
          workspace_id: id,
          environment: "debian:12",
          state: running ? "running" : "stopped",
          reason: null,
          created_at: new Date(t - 3600_000).toISOString(),
          expires_at: new Date(t + 24 * 3600_000).toISOString(),
          ttl_seconds: 86400,
          last_activity_at: new Date(t).toISOString(),
          vcpu_count: 1,
          mem_mib: 1024,
          disk_mib: 4096,
          disk_enforced: false,
          network: false,
          engine: "gvisor",
          execution_mode: "gvisor",
          handle: running
            ? {
                engine: "gvisor",
                id,
                sandboxDir: join(ws, id, "sandbox"),
                workspaceDir: join(ws, id, "files"),
                data: { containerId: `pyro-${id}`, pid: process.pid },
              }
            : null,
          command_count: i,
          last_command: null,
          workspace_seed: {
            mode: "empty",
            seed_path: null,
            destination: "/workspace",
            entry_count: 0,
            bytes_written: 0,
          },
          name: `w${i}`,
          labels: { bench: "list" },
        },
        null,
        2,
      ),
    );
  }
}

/** The list rows: wall time, and each one's own CPU time (GNU time) as rows of their own. */
export async function benchList(n: number, add: Add): Promise<void> {
  process.stderr.write(`bench: workspace list, ${n} interleaved iterations...\n`);
  const dir = await mkdtemp(join(tmpdir(), "pyro-bench-list-"));
  try {
    await writeRecords(dir);
    // No reap in the loop (the stamp would start detached reaps of the hand-written records).
    const env = { ...process.env, PYRO_STATE_DIR: dir, PYRO_REAP_INTERVAL_SECONDS: "86400" };
    const full = { ...env, PYRO_FAST_PATHS: "0" };
    const list = [CLI, "workspace", "list", "--json"];
    const kinds = [
      { name: LIST.fast, args: list, env },
      { name: LIST.full, args: list, env: full },
      { name: LIST.raw, args: ["-e", RAW_READ], env },
    ].map((k) => ({ ...k, wall: add(k.name), cpu: GNU_TIME ? add(`${k.name}: own CPU`) : undefined }));
    // Warm the code caches of both bundles first.
    await timed(list, env);
    await timed(list, full);
    for (let i = 0; i < n; i++)
      for (const k of kinds) {
        const t = await timed(k.args, k.env);
        k.wall.samples.push(t.ms);
        k.cpu?.samples.push(t.cpu);
      }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function printListRatios(rows: Row[]): void {
  const med = (name: string) => median(rows.find((r) => r.name === name)?.samples ?? []);
  if (!rows.some((r) => r.name === LIST.fast)) return;
  console.log(
    `  workspace list: fast path / full CLI ${(med(LIST.fast) / med(LIST.full)).toFixed(2)}x, fast path / raw reading ${(med(LIST.fast) / med(LIST.raw)).toFixed(2)}x`,
  );
}
