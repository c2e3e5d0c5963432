/**
 * `npm run bench`: medians of pyro against the raw engine, run side by side (interleaved) in
 * one process so machine load hits both equally. Prints a table and the ratios.
 *   - one-shot: `pyro run debian:12 -- true` (whole CLI process) and SDK runInVm vs `runsc run`
 *     of the same rootfs with the same flags and OCI config pyro writes.
 *   - workspace: SDK execWorkspace vs raw `runsc exec` into the same sandbox.
 *   - createWorkspace with a 10 MB, 1000-file seed directory.
 *   - the QEMU microVM engine (when qemu is installed): cold boot, snapshot restore, and the
 *     exec round trip into a running VM (boot_ms / exec_ms as pyro reports them).
 *   - the workspace round trip: SDK readWorkspaceFile of a 100 KiB file vs raw `runsc exec cat`
 *     of it; SDK diffWorkspace of a 1000-file text seed with 10 changes vs raw `runsc exec cat`
 *     of the whole tree (the data a diff has to account for).
 * BENCH_ONLY=roundtrip runs only the round-trip rows.
 * Options: BENCH_ITERATIONS (default 15), BENCH_QEMU=0 to skip QEMU, BENCH_JSON=1 for JSON.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildOciConfig } from "../src/engines/gvisor/bundle.js";
import { findRunsc, globalFlags } from "../src/engines/gvisor/runsc.js";
import { qemuQuickAvailable } from "../src/engines/qemu/select.js";
import { Pyro } from "../src/index.js";
import { resolvePaths } from "../src/paths.js";

const N = Number(process.env.BENCH_ITERATIONS ?? 15);
const CLI = join(import.meta.dirname, "..", "dist", "cli", "main.js");

function timeProcess(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(file, args, { stdio: ["ignore", "ignore", "pipe"], env });
    let err = "";
    child.stderr.on("data", (c) => {
      err += c;
    });
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0
        ? resolve(performance.now() - t0)
        : reject(new Error(`${file} ${args.join(" ")} exited ${code}: ${err.slice(-500)}`)),
    );
  });
}

async function timeIt(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  const stateDir = await mkdtemp(join(tmpdir(), "pyro-bench-"));
  const env = { ...process.env, PYRO_STATE_DIR: stateDir, PYRO_QUIET: "1" };
  const pyro = new Pyro({ env });
  const paths = resolvePaths(env);
  const runscBin = await findRunsc(env);
  if (!runscBin) throw new Error("runsc not installed: run scripts/setup-host.sh");
  process.stderr.write("bench: making sure debian:12 is built...\n");
  await pyro.pullEnvironment("debian:12");
  const rootfs = (await pyro.inspectEnvironment("debian:12")).path!;

  // The raw engine: same runsc flags and OCI config as pyro, its own root dir.
  const rawRoot = join(stateDir, "raw-runsc");
  const bundle = join(stateDir, "raw-bundle");
  await mkdir(bundle, { recursive: true });
  const spec = {
    id: "raw",
    environment: "debian:12",
    rootfs,
    sandboxDir: bundle,
    vcpuCount: 1,
    memMib: 1024,
    network: false,
  };
  await writeFile(
    join(bundle, "config.json"),
    JSON.stringify(buildOciConfig(spec, { args: ["true"], cwd: "/" })),
  );
  const rawFlags = globalFlags(rawRoot, false, env);

  const rows: { name: string; samples: number[] }[] = [];
  const add = (name: string) => {
    const r = { name, samples: [] as number[] };
    rows.push(r);
    return r;
  };
  const only = process.env.BENCH_ONLY;
  if (only === "roundtrip") {
    await roundTrip(pyro, env, runscBin, paths, add);
    printRows(rows, N);
    printRoundTrip(rows);
    await rm(stateDir, { recursive: true, force: true });
    return;
  }
  const raw = add("raw `runsc run` true");
  const cli = add("pyro run (CLI process) true");
  const sdk = add("SDK runInVm true");
  process.stderr.write(`bench: one-shot, ${N} interleaved iterations...\n`);
  for (let i = 0; i < N; i++) {
    raw.samples.push(await timeProcess(runscBin, [...rawFlags, "run", "--bundle", bundle, `raw-${i}`]));
    cli.samples.push(await timeProcess(process.execPath, [CLI, "run", "debian:12", "--", "true"], env));
    sdk.samples.push(await timeIt(() => pyro.runInVm({ environment: "debian:12", command: ["true"] })));
  }

  process.stderr.write("bench: workspace exec...\n");
  const ws = await pyro.createWorkspace({ environment: "debian:12" });
  const wsFlags = globalFlags(paths.runscRoot, false, env);
  const rawExec = add("raw `runsc exec` true");
  const wsExec = add("SDK execWorkspace true");
  for (let i = 0; i < N; i++) {
    rawExec.samples.push(await timeProcess(runscBin, [...wsFlags, "exec", `pyro-${ws.id}`, "true"]));
    wsExec.samples.push(await timeIt(() => ws.exec(["true"])));
  }
  await ws.delete();

  process.stderr.write("bench: createWorkspace with a 10 MB / 1000-file seed...\n");
  const seed = join(stateDir, "seed");
  for (let i = 0; i < 1000; i++) {
    const d = join(seed, `d${i % 25}`);
    await mkdir(d, { recursive: true });
    await writeFile(join(d, `f${i}.bin`), randomBytes(10_000));
  }
  const create = add("SDK createWorkspace 10MB/1000 files");
  const created: string[] = [];
  for (let i = 0; i < Math.min(N, 5); i++) {
    let id = "";
    create.samples.push(
      await timeIt(async () => {
        id = (await pyro.createWorkspace({ environment: "debian:12", seedPath: seed })).id;
      }),
    );
    created.push(id);
  }
  for (const id of created) await pyro.deleteWorkspace(id);

  await roundTrip(pyro, env, runscBin, paths, add);

  const qemuRows: { name: string; samples: number[] }[] = [];
  if (process.env.BENCH_QEMU !== "0" && (await qemuQuickAvailable(paths, env, { requireKvm: false }))) {
    process.stderr.write("bench: qemu microVM (cold boot, snapshot restore, exec round trip)...\n");
    const snaps = join(stateDir, "qemu-snapshots");
    const qenv = { ...env, PYRO_ENGINE: "qemu", PYRO_QEMU_SNAPSHOT_DIR: snaps };
    const cold = new Pyro({ env: { ...qenv, PYRO_QEMU_SNAPSHOTS: "0" } });
    const warm = new Pyro({ env: qenv });
    const coldRow = { name: "qemu cold boot (boot_ms)", samples: [] as number[] };
    const restoreRow = { name: "qemu snapshot restore (boot_ms)", samples: [] as number[] };
    const execRow = { name: "qemu execWorkspace true", samples: [] as number[] };
    qemuRows.push(coldRow, restoreRow, execRow);
    for (let i = 0; i < 3; i++) coldRow.samples.push((await cold.runInVm({ command: ["true"] })).boot_ms);
    await warm.runInVm({ command: ["true"] }); // takes the snapshot
    for (let i = 0; i < Math.min(N, 5); i++)
      restoreRow.samples.push((await warm.runInVm({ command: ["true"] })).boot_ms);
    const qws = await warm.createWorkspace({});
    await qws.exec(["true"]);
    for (let i = 0; i < N; i++) execRow.samples.push(await timeIt(() => qws.exec(["true"])));
    await qws.delete();
    rows.push(...qemuRows);
  }
  await rm(stateDir, { recursive: true, force: true });

  const med = Object.fromEntries(rows.map((r) => [r.name, median(r.samples)]));
  const ratios = {
    cli_vs_raw_run: med[cli.name]! / med[raw.name]!,
    sdk_vs_raw_run: med[sdk.name]! / med[raw.name]!,
    exec_vs_raw_exec: med[wsExec.name]! / med[rawExec.name]!,
  };
  if (process.env.BENCH_JSON === "1") {
    console.log(JSON.stringify({ iterations: N, medians_ms: med, ratios }, null, 2));
    return;
  }
  printRows(rows, N);
  console.log("\nratios (goal):");
  console.log(`  CLI pyro run / raw runsc run      ${ratios.cli_vs_raw_run.toFixed(2)}x  (≤ 1.30x)`);
  console.log(`  SDK runInVm / raw runsc run       ${ratios.sdk_vs_raw_run.toFixed(2)}x  (≤ 1.15x)`);
  console.log(`  execWorkspace / raw runsc exec    ${ratios.exec_vs_raw_exec.toFixed(2)}x  (≤ 1.20x)`);
  console.log(`  createWorkspace 10MB/1000 files   ${(med[create.name]! / 1000).toFixed(2)} s  (≤ 0.50 s)`);
  if (qemuRows.length) {
    const [c, r] = qemuRows;
    console.log(`  qemu restore / cold boot          ${(med[r!.name]! / med[c!.name]!).toFixed(2)}x`);
  } else console.log("  (qemu rows skipped: qemu not installed, or BENCH_QEMU=0)");
  printRoundTrip(rows);
}

type Row = { name: string; samples: number[] };

function printRows(rows: Row[], n: number): void {
  console.log(`\npyro bench — medians of ${n} interleaved runs (ms)\n`);
  for (const r of rows)
    console.log(
      `  ${r.name.padEnd(40)} ${median(r.samples).toFixed(1).padStart(8)}   (min ${Math.min(...r.samples).toFixed(1)}, max ${Math.max(...r.samples).toFixed(1)})`,
    );
}

const RT = {
  rawRead: "raw `runsc exec cat` 100 KiB",
  read: "SDK readWorkspaceFile 100 KiB",
  rawTree: "raw `runsc exec cat` 1000-file tree",
  diff: "SDK diffWorkspace 1000 files/10 changed",
};

function printRoundTrip(rows: Row[]): void {
  const med = (name: string) => median(rows.find((r) => r.name === name)!.samples);
  console.log(
    `  file read 100 KiB / raw cat        ${(med(RT.read) / med(RT.rawRead)).toFixed(2)}x  (≤ 1.50x)`,
  );
  console.log(
    `  diff 1000 files,10 changed / raw cat of the tree ${(med(RT.diff) / med(RT.rawTree)).toFixed(2)}x  (≤ 1.50x)`,
  );
}

/** The round-trip rows: file read and diff against raw `runsc exec cat` of the same data. */
async function roundTrip(
  pyro: Pyro,
  env: NodeJS.ProcessEnv,
  runscBin: string,
  paths: ReturnType<typeof resolvePaths>,
  add: (name: string) => Row,
): Promise<void> {
  process.stderr.write("bench: round trip (file read, diff)...\n");
  const seed = await mkdtemp(join(tmpdir(), "pyro-bench-rt-"));
  const line = "the quick brown fox jumps over the lazy dog 0123456789\n";
  for (let i = 0; i < 1000; i++) {
    const d = join(seed, `d${i % 25}`);
    await mkdir(d, { recursive: true });
    await writeFile(join(d, `f${i}.txt`), line.repeat(180)); // ~10 KB of text each
  }
  await writeFile(join(seed, "big.txt"), line.repeat(Math.ceil(102_400 / line.length)).slice(0, 102_400));
  const ws = await pyro.createWorkspace({ environment: "debian:12", seedPath: seed });
  try {
    const flags = globalFlags(paths.runscRoot, false, env);
    const cid = `pyro-${ws.id}`;
    const rawRead = add(RT.rawRead);
    const read = add(RT.read);
    for (let i = 0; i < N; i++) {
      rawRead.samples.push(await timeProcess(runscBin, [...flags, "exec", cid, "cat", "/workspace/big.txt"]));
      read.samples.push(await timeIt(() => ws.files.read("big.txt")));
    }
    // 10 small edits: one line appended to 10 files spread over the tree.
    for (let i = 0; i < 10; i++)
      await ws.files.write(`d${(i * 7) % 25}/f${i * 7}.txt`, `${line.repeat(180)}changed\n`);
    const rawTree = add(RT.rawTree);
    const diff = add(RT.diff);
    for (let i = 0; i < N; i++) {
      rawTree.samples.push(
        await timeProcess(runscBin, [
          ...flags,
          "exec",
          "--cwd",
          "/workspace",
          cid,
          "sh",
          "-c",
          "cat d*/* big.txt",
        ]),
      );
      diff.samples.push(await timeIt(() => ws.diff()));
    }
  } finally {
    await ws.delete();
    await rm(seed, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`bench failed: ${e instanceof Error ? e.message : e}`);
  process.exit(1);
});
