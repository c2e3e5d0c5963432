/**
 * `npm run bench`: medians of pyro against the raw engine, run side by side (interleaved) in
 * one process so machine load hits both equally. Prints a table and the ratios.
 *   - one-shot: `pyro run debian:12 -- true` (whole CLI process) and SDK runInVm vs `runsc run`
 *     of the same rootfs with the same flags and OCI config pyro writes.
 *   - workspace: SDK execWorkspace vs raw `runsc exec` into the same sandbox, and a shell
 *     round trip (write a line to `cat` on a PTY, read its echo) against the same raw exec.
 *   - createWorkspace with a 10 MB, 1000-file seed directory.
 *   - the QEMU microVM engine (when qemu is installed): cold boot, snapshot restore, and the
 *     exec round trip into a running VM (boot_ms / exec_ms as pyro reports them).
 *   - OCI pull: `pyro env pull` of a ~100 MB image from a local docker-registry into an empty
 *     cache (download, digest check, layer scan, umoci unpack) vs `skopeo copy` to an OCI
 *     layout + `umoci raw unpack` of the same image (when those tools are installed).
 *   - without root: `pyro run debian:12 -- true` as an ordinary user (rootless runsc, the
 *     shared read-only environment) vs the same as root, both through `runuser`. Run as root,
 *     the bench makes a temporary user for it (useradd) and removes it after.
 *   - the workspace round trip: SDK readWorkspaceFile of a 100 KiB file vs raw `runsc exec cat`
 *     of it; SDK diffWorkspace of a 1000-file text seed with 10 changes vs raw `runsc exec cat`
 *     of the whole tree (the data a diff has to account for).
 *   - issue 17 (bench/speed.ts): CLI start-up, CLI workspace exec, and the warm pool (CLI run
 *     and SDK runInVm from a warm pool vs raw `runsc run`, memory per pooled sandbox).
 *   - snapshots: snapshot and reset of a 10 MB / 1000-file workspace with 10 changed files,
 *     the host disk each snapshot took, and a fork of it into 5 workspaces.
 *   - workspaces from the warm pool (bench/wspool.ts): `workspace create` with a 10-file seed
 *     from a `#ws` pool slot vs fresh, CLI and SDK, beside `cp -a` of the seed.
 *   - workspace list (bench/list.ts): `pyro workspace list --json` of 20 records from the CLI's
 *     fast path vs the full CLI vs a bare node reading the records, with each one's own CPU.
 *   - network routes (bench/netroute.ts): a one-shot run and a workspace exec with network on,
 *     gVisor's netstack vs the host-stack route, side by side (as root, with a runsc that has it).
 *   - issue 29 (bench/defaults.ts, bench/idle.ts): `pyro run` and SDK runInVm with the defaults
 *     (the warm pool on out of the box) vs raw `runsc run`; host CPU of BENCH_IDLE_N (50) idle
 *     workspaces over BENCH_IDLE_SECONDS (60), Debian's old runsc beside the current one
 *     (BENCH_IDLE=0 skips). `BENCH_ONLY=platform` is bench/platform.ts (gVisor's platforms).
 *   - kubernetes (bench/kubernetes.ts): warm-pool claim p50/p99, cold sandbox to first exec, exec
 *     through the API server vs `kubectl exec`, on the cluster KUBECONFIG names (else skipped).
 * BENCH_ONLY=roundtrip, speed, snapshots, wspool, netroute, defaults, idle, list or kubernetes runs
 * only those rows (the full run has all; list needs no runsc).
 * Options: BENCH_ITERATIONS (default 15), BENCH_QEMU=0 to skip QEMU, BENCH_ROOTLESS=0 to skip
 * the rootless rows, BENCH_OCI=0 to skip the OCI pull, BENCH_JSON=1 for JSON.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolvePaths } from "../src/core/paths.js";
import { buildOciConfig, useRootfsImage } from "../src/engines/gvisor/bundle.js";
import { findRunsc, globalFlags } from "../src/engines/gvisor/runsc.js";
import { qemuQuickAvailable } from "../src/engines/qemu/select.js";
import { Pyro } from "../src/index.js";
import { rootfsImagePath } from "../src/util/erofs.js";
import { ociToolsSkipReason, startRegistry } from "../test/oci-fixtures.js";
import { benchDefaults, printDefaultsRatios } from "./defaults.js";
import { benchIdle, printIdle, removeStateDir } from "./idle.js";
import { benchKubernetes, printKubernetes } from "./kubernetes.js";
import { benchList, printListRatios } from "./list.js";
import { benchNetRoute, printNetRouteRatios } from "./netroute.js";
import { benchPlatforms } from "./platform.js";
import { benchCliExec, benchPool, benchStartup, printSpeedRatios, timeProcess } from "./speed.js";
import { benchWorkspacePool, printWorkspacePoolRatios } from "./wspool.js";

const N = Number(process.env.BENCH_ITERATIONS ?? 15);
const CLI = join(import.meta.dirname, "..", "dist", "cli", "main.js");

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
  if (process.env.BENCH_ONLY === "platform") return benchPlatforms();
  if (process.env.BENCH_ONLY === "list") {
    const rows: Row[] = [];
    await benchList(N, (name) => {
      const r = { name, samples: [] as number[] };
      rows.push(r);
      return r;
    });
    printRows(rows, N);
    console.log("\nratios:");
    printListRatios(rows);
    return;
  }
  if (process.env.BENCH_ONLY === "kubernetes") {
    const rows: Row[] = [];
    const skip = await benchKubernetes(N, (name) => {
      const r = { name, samples: [] as number[] };
      rows.push(r);
      return r;
    });
    if (rows.length) printRows(rows, N);
    console.log("\nratios (goal):");
    printKubernetes(rows, skip);
    return;
  }
  const stateDir = await mkdtemp(join(tmpdir(), "pyro-bench-"));
  // The warm pool is on by default (issue 29): the one-shot rows below measure the cold path
  // (a sandbox started per run), so the pool is off here; benchDefaults measures the defaults.
  const env = { ...process.env, PYRO_STATE_DIR: stateDir, PYRO_QUIET: "1", PYRO_POOL_SIZE: "0" };
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
  // pyro boots the environment's EROFS image when it has one (it makes one on first use).
  await pyro.runInVm({ environment: "debian:12", command: ["true"] });
  const image = rootfsImagePath(rootfs);
  const emptyRoot = join(stateDir, "empty-root");
  await mkdir(emptyRoot);
  const rawConfig = buildOciConfig(spec, { args: ["true"], cwd: "/" });
  await writeFile(
    join(bundle, "config.json"),
    JSON.stringify(existsSync(image) ? useRootfsImage(rawConfig, { image, emptyRoot }) : rawConfig),
  );
  const rawFlags = globalFlags(rawRoot, false, env);

  const rows: { name: string; samples: number[] }[] = [];
  const add = (name: string) => {
    const r = { name, samples: [] as number[] };
    rows.push(r);
    return r;
  };
  const only = process.env.BENCH_ONLY;
  if (only === "speed") {
    const pool = await speedRows(env, pyro, runscBin, paths, rawFlags, bundle, add);
    printRows(rows, N);
    console.log("\nratios (goal):");
    printSpeedRatios(rows, pool);
    await removeStateDir(stateDir);
    return;
  }
  if (only === "roundtrip") {
    await roundTrip(pyro, env, runscBin, paths, add);
    printRows(rows, N);
    printRoundTrip(rows);
    await removeStateDir(stateDir);
    return;
  }
  if (only === "wspool") {
    await benchWorkspacePool(N, env, add);
    printRows(rows, N);
    console.log("\nratios:");
    printWorkspacePoolRatios(rows);
    await removeStateDir(stateDir);
    return;
  }
  if (only === "netroute") {
    await benchNetRoute(N, env, add);
    printRows(rows, N);
    console.log("\nratios:");
    printNetRouteRatios(rows);
    await removeStateDir(stateDir);
    return;
  }
  if (only === "defaults") {
    await benchDefaults(
      N,
      env,
      runscBin,
      (i) => [...rawFlags, "run", "--bundle", bundle, `raw-def-${i}`],
      add,
    );
    printRows(rows, N);
    console.log("\nratios (goal):");
    printDefaultsRatios(rows);
    await removeStateDir(stateDir);
    return;
  }
  if (only === "idle") {
    printIdle(await benchIdle());
    await removeStateDir(stateDir);
    return;
  }
  if (only === "snapshots") {
    const disk = await snapshotBench(pyro, add);
    printRows(rows, N);
    printSnapshots(rows, disk);
    await removeStateDir(stateDir);
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
  // A shell round trip: write a line to `cat` on a PTY, read until its echo is back.
  const shellTrip = add("SDK shell write + read echo");
  const sh = await ws.shells.open({ command: ["cat"] });
  let cursor = 0;
  for (let i = 0; i < N; i++) {
    const line = `ping-${i}`;
    shellTrip.samples.push(
      await timeIt(async () => {
        await ws.shells.write(sh.shell_id, line, { newline: true });
        let seen = "";
        while (!seen.includes(line)) {
          const r = await ws.shells.read(sh.shell_id, { cursor });
          cursor = r.next_cursor;
          seen += r.output;
        }
      }),
    );
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

  const speedPool = await speedRows(env, pyro, runscBin, paths, rawFlags, bundle, add);
  await benchDefaults(N, env, runscBin, (i) => [...rawFlags, "run", "--bundle", bundle, `raw-def-${i}`], add);
  await benchList(N, add);
  await benchWorkspacePool(N, env, add);
  await benchNetRoute(N, env, add);
  const rootlessRows = await benchRootless(rootfs, add);
  await roundTrip(pyro, env, runscBin, paths, add);
  const snapDisk = await snapshotBench(pyro, add);
  const idle = await benchIdle();

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
    // The #qemu pool: `pyro run -- true` (CLI) from a booted VM vs restoring the snapshot.
    const qRun = { name: "qemu pyro run true (CLI, snapshot restore)", samples: [] as number[] };
    const qPool = { name: "qemu pyro run true (CLI, warm #qemu pool)", samples: [] as number[] };
    qemuRows.push(qRun, qPool);
    const qpEnv = { ...qenv, PYRO_POOL_SIZE: "1", PYRO_POOL_KEYS: "debian:12#qemu", PYRO_POOL_TOPUP: "0" };
    const qp = new Pyro({ env: qpEnv });
    for (let i = 0; i < Math.min(N, 5); i++) {
      qRun.samples.push(await timeProcess(process.execPath, [CLI, "run", "debian:12", "--", "true"], qenv));
      await qp.fillPool();
      qPool.samples.push(await timeProcess(process.execPath, [CLI, "run", "debian:12", "--", "true"], qpEnv));
    }
    await qp.drainPool();
    rows.push(...qemuRows);
  }
  const ociRows: { name: string; samples: number[] }[] = [];
  const ociSkip = process.env.BENCH_OCI === "0" ? "BENCH_OCI=0" : ociToolsSkipReason();
  if (!ociSkip) ociRows.push(...(await benchOciPull(stateDir, env)));
  rows.push(...ociRows);
  const k8sSkip = await benchKubernetes(N, add);
  await removeStateDir(stateDir);

  const med = Object.fromEntries(rows.map((r) => [r.name, median(r.samples)]));
  const ratios = {
    ...(rootlessRows
      ? { rootless_vs_root_run: med[rootlessRows[1].name]! / med[rootlessRows[0].name]! }
      : {}),
    cli_vs_raw_run: med[cli.name]! / med[raw.name]!,
    sdk_vs_raw_run: med[sdk.name]! / med[raw.name]!,
    exec_vs_raw_exec: med[wsExec.name]! / med[rawExec.name]!,
    shell_round_trip_vs_raw_exec: med[shellTrip.name]! / med[rawExec.name]!,
    ...(ociRows.length ? { oci_pull_vs_skopeo_umoci: med[ociRows[0]!.name]! / med[ociRows[1]!.name]! } : {}),
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
  console.log(
    `  shell round trip / raw runsc exec ${ratios.shell_round_trip_vs_raw_exec.toFixed(2)}x  (≤ 1.50x)`,
  );
  console.log(`  createWorkspace 10MB/1000 files   ${(med[create.name]! / 1000).toFixed(2)} s  (≤ 0.50 s)`);
  if (rootlessRows) {
    const [asRoot, asUser] = rootlessRows;
    console.log(
      `  pyro run without root / as root   ${(med[asUser.name]! / med[asRoot.name]!).toFixed(2)}x  (≤ 1.10x)`,
    );
  } else
    console.log(
      "  (rootless rows skipped: run the bench as root so it can make a user, or BENCH_ROOTLESS=0)",
    );
  if (qemuRows.length) {
    const [c, r, , qr, qp] = qemuRows;
    console.log(`  qemu restore / cold boot          ${(med[r!.name]! / med[c!.name]!).toFixed(2)}x`);
    console.log(`  qemu CLI run, #qemu pool / restore ${(med[qp!.name]! / med[qr!.name]!).toFixed(2)}x`);
  } else console.log("  (qemu rows skipped: qemu not installed, or BENCH_QEMU=0)");
  printRoundTrip(rows);
  printSpeedRatios(rows, speedPool);
  printDefaultsRatios(rows);
  printListRatios(rows);
  printWorkspacePoolRatios(rows);
  printNetRouteRatios(rows);
  printSnapshots(rows, snapDisk);
  printIdle(idle);
  printKubernetes(rows, k8sSkip);
  if (ratios.oci_pull_vs_skopeo_umoci !== undefined)
    console.log(
      `  OCI pull / skopeo copy + umoci    ${ratios.oci_pull_vs_skopeo_umoci.toFixed(2)}x  (≤ 1.20x)`,
    );
  else console.log(`  (OCI pull rows skipped: ${ociSkip})`);
}

/** Issue 17's rows (bench/speed.ts). */
async function speedRows(
  env: NodeJS.ProcessEnv,
  pyro: Pyro,
  runscBin: string,
  paths: ReturnType<typeof resolvePaths>,
  rawFlags: string[],
  bundle: string,
  add: (name: string) => Row,
) {
  await benchStartup(N, add);
  await benchCliExec(N, pyro, env, runscBin, globalFlags(paths.runscRoot, false, env), add);
  return benchPool(N, env, runscBin, (i) => [...rawFlags, "run", "--bundle", bundle, `raw-pool-${i}`], add);
}

/**
 * A ~100 MB image (four 24 MB layers of incompressible data in 100 KB files, plus one layer
 * of 4,000 small files) pushed to a local docker-registry, then pulled into an empty cache
 * by pyro and by skopeo + umoci, interleaved.
 */
async function benchOciPull(stateDir: string, env: NodeJS.ProcessEnv) {
  process.stderr.write("bench: OCI pull of a ~100 MB image from a local registry...\n");
  const reg = await startRegistry();
  try {
    const big = (n: number) =>
      Array.from({ length: 240 }, (_, i) => ({ name: `data${n}/f${i}.bin`, body: randomBytes(100_000) }));
    const small = Array.from({ length: 4000 }, (_, i) => ({
      name: `small/d${i % 40}/f${i}.txt`,
      body: `file ${i}\n`.repeat(20),
    }));
    await reg.push("bench/big", "1", { layers: [big(0), big(1), big(2), big(3), small] });
    const ref = `127.0.0.1:${reg.port}/bench/big:1`;
    const ours = { name: "pyro env pull 100 MB image", samples: [] as number[] };
    const theirs = { name: "skopeo copy + umoci raw unpack", samples: [] as number[] };
    const iterations = Math.min(N, 3);
    for (let i = 0; i < iterations; i++) {
      const cache = join(stateDir, `oci-cache-${i}`);
      ours.samples.push(
        await timeProcess(process.execPath, [CLI, "env", "pull", ref], { ...env, PYRO_CACHE_DIR: cache }),
      );
      await rm(cache, { recursive: true, force: true });
      const layout = join(stateDir, `oci-layout-${i}`);
      theirs.samples.push(
        await timeIt(async () => {
          await timeProcess("/usr/bin/skopeo", [
            "--insecure-policy",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            `docker://${ref}`,
            `oci:${layout}:x`,
          ]);
          await timeProcess("/usr/bin/umoci", [
            "raw",
            "unpack",
            "--image",
            `${layout}:x`,
            join(layout, "rootfs"),
          ]);
        }),
      );
      await rm(layout, { recursive: true, force: true });
    }
    return [ours, theirs];
  } finally {
    await reg.stop();
  }
}

type Row = { name: string; samples: number[] };

/**
 * `pyro run` as root and as a fresh ordinary user, interleaved, both through `runuser` so
 * the wrapper costs the same. The user reads debian:12 from a shared cache (a hard-linked
 * copy of root's, as setup-host.sh makes /var/cache/pyro) and pyro from a readable copy.
 */
async function benchRootless(rootfs: string, add: (name: string) => Row): Promise<[Row, Row] | undefined> {
  if (process.env.BENCH_ROOTLESS === "0" || process.getuid?.() !== 0) return undefined;
  const user = `pyro-bench${process.pid % 100000}`;
  const work = await mkdtemp("/var/tmp/pyro-bench-");
  const sh = (cmd: string, args: string[]) =>
    execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  try {
    sh("useradd", ["--create-home", user]);
    const home = sh("getent", ["passwd", user]).split(":")[5]!;
    await mkdir(join(work, "shared", "environments"), { recursive: true });
    sh("cp", ["-al", join(rootfs, ".."), join(work, "shared", "environments")]);
    await cp(join(import.meta.dirname, "..", "package.json"), join(work, "pkg", "package.json"));
    await cp(join(import.meta.dirname, "..", "dist"), join(work, "pkg", "dist"), { recursive: true });
    sh("chmod", ["-R", "a+rX", work]);
    const cli = join(work, "pkg", "dist", "cli", "main.js");
    const as = (who: string, h: string, extra: string[]) => [
      "-u",
      who,
      "--",
      "env",
      "-i",
      `HOME=${h}`,
      `PATH=${process.env.PATH ?? "/usr/bin:/bin"}`,
      "PYRO_QUIET=1",
      ...extra,
      process.execPath,
      cli,
      "run",
      "debian:12",
      "--",
      "true",
    ];
    const rootState = join(work, "root-state");
    const rootArgs = as("root", process.env.HOME ?? "/root", [`PYRO_STATE_DIR=${rootState}`]);
    const userArgs = as(user, home, [`PYRO_SHARED_CACHE=${join(work, "shared")}`]);
    // Warm both (code caches, the user's first image lookup) before timing.
    await timeProcess("runuser", rootArgs);
    await timeProcess("runuser", userArgs);
    const asRoot = add("pyro run true, as root (runuser)");
    const asUser = add("pyro run true, without root (runuser)");
    process.stderr.write(`bench: rootless vs root pyro run, ${N} interleaved iterations...\n`);
    for (let i = 0; i < N; i++) {
      asRoot.samples.push(await timeProcess("runuser", rootArgs));
      asUser.samples.push(await timeProcess("runuser", userArgs));
    }
    return [asRoot, asUser];
  } finally {
    try {
      sh("userdel", ["--remove", user]);
    } catch {
      // never made
    }
    await rm(work, { recursive: true, force: true });
  }
}

function printRows(rows: Row[], n: number): void {
  console.log(`\npyro bench — medians of ${n} interleaved runs (ms)\n`);
  const width = Math.max(40, ...rows.map((r) => r.name.length));
  for (const r of rows)
    console.log(
      `  ${r.name.padEnd(width)} ${median(r.samples).toFixed(1).padStart(8)}   (min ${Math.min(...r.samples).toFixed(1)}, max ${Math.max(...r.samples).toFixed(1)})`,
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

const SN = {
  first: "SDK first snapshot 10MB/1000 files",
  snap: "SDK snapshot 1000 files/10 changed",
  reset: "SDK reset 1000 files/10 changed (total)",
  restore: "  of which restore_ms (files)",
  fork: "SDK fork into 5 (10MB/1000 files)",
};

function printSnapshots(rows: Row[], disk: { perSnapshot: number[]; changedBytes: number }): void {
  const med = (name: string) => median(rows.find((r) => r.name === name)!.samples);
  const goalDisk = 2 * disk.changedBytes + 1024 * 1024;
  console.log("\nsnapshots (goal):");
  console.log(`  snapshot 10 changed of 1000 files  ${(med(SN.snap) / 1000).toFixed(3)} s  (≤ 0.30 s)`);
  console.log(
    `  reset to it                        ${(med(SN.reset) / 1000).toFixed(3)} s  (≤ 0.30 s; files alone ${(med(SN.restore) / 1000).toFixed(3)} s)`,
  );
  console.log(
    `  disk per snapshot                  ${(median(disk.perSnapshot) / 1024).toFixed(0)} KiB  (≤ ${(goalDisk / 1024).toFixed(0)} KiB = 2 × ${(disk.changedBytes / 1024).toFixed(0)} KiB changed + 1 MiB)`,
  );
  console.log(`  fork into 5                        ${(med(SN.fork) / 1000).toFixed(2)} s  (≤ 1.50 s)`);
}

/**
 * Snapshot rows: a 10 MB / 1000-file workspace; each iteration changes 10 files (~100 KB),
 * snapshots, changes 10 others and resets to the snapshot. Then forks of it into 5.
 */
async function snapshotBench(
  pyro: Pyro,
  add: (name: string) => Row,
): Promise<{ perSnapshot: number[]; changedBytes: number }> {
  process.stderr.write("bench: snapshots, reset, fork...\n");
  const seed = await mkdtemp(join(tmpdir(), "pyro-bench-snap-"));
  for (let i = 0; i < 1000; i++) {
    const d = join(seed, `d${i % 25}`);
    await mkdir(d, { recursive: true });
    await writeFile(join(d, `f${i}.bin`), randomBytes(10_000));
  }
  const ws = await pyro.createWorkspace({ environment: "debian:12", seedPath: seed });
  const iterations = Math.min(N, 5);
  const perSnapshot: number[] = [];
  const changedBytes = 10 * 10_000;
  // 10 files rewritten with 10 KB of new random bytes, spread over the tree.
  const change = (k: number) =>
    ws.exec(
      `for i in 0 1 2 3 4 5 6 7 8 9; do n=$(( (i * 97 + ${k} * 13) % 1000 )); head -c 10000 /dev/urandom > d$(( n % 25 ))/f$n.bin; done`,
    );
  try {
    const first = add(SN.first);
    first.samples.push(await timeIt(() => ws.snapshots.create("s0")));
    const snap = add(SN.snap);
    const reset = add(SN.reset);
    const restore = add(SN.restore);
    for (let i = 1; i <= iterations; i++) {
      await change(i);
      let info: Awaited<ReturnType<typeof ws.snapshots.create>> | undefined;
      snap.samples.push(
        await timeIt(async () => {
          info = await ws.snapshots.create(`s${i}`);
        }),
      );
      perSnapshot.push(info!.disk_bytes);
      await change(i + 100);
      let r: Awaited<ReturnType<typeof ws.reset>> | undefined;
      reset.samples.push(
        await timeIt(async () => {
          r = await ws.reset(`s${i}`);
        }),
      );
      restore.samples.push(r!.restore_ms);
    }
    const fork = add(SN.fork);
    for (let i = 0; i < Math.min(N, 3); i++) {
      let forks: Awaited<ReturnType<typeof ws.fork>> = [];
      fork.samples.push(
        await timeIt(async () => {
          forks = await ws.fork({ snapshot: "s1", count: 5 });
        }),
      );
      await Promise.all(forks.map((f) => f.delete()));
    }
  } finally {
    await ws.delete();
    await rm(seed, { recursive: true, force: true });
  }
  return { perSnapshot, changedBytes };
}

main().catch((e) => {
  console.error(`bench failed: ${e instanceof Error ? e.message : e}`);
  process.exit(1);
});
