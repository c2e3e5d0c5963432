import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { test } from "node:test";
import { parseRunscVersion, runscFeatures } from "../../src/engines/gvisor/features.js";
import { findRunsc } from "../../src/engines/gvisor/runsc.js";
import {
  assertNoSandboxes,
  CLI,
  REPO,
  runCli,
  runCliJsonGuest,
  runscList,
  tempDir,
  withGvisorState,
} from "../helpers.js";

/**
 * Issue 2 through the built CLI: `pyro run` against the real gVisor engine, its errors,
 * `pyro doctor` and `pyro env`. Every test uses its own state dir and ends by checking that
 * no runsc sandbox is left under it.
 */

async function vmDirs(stateDir: string): Promise<string[]> {
  return readdir(join(stateDir, "vms")).catch(() => []);
}

/** Spawns the CLI and samples its resident set size until it exits. */
function runCliMeasured(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string; peakRssKb: number }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env,
      cwd: REPO,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    let stderr = "";
    let peak = 0;
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c) => {
      stderr += c;
    });
    const sample = setInterval(async () => {
      const s = await readFile(`/proc/${child.pid}/status`, "utf8").catch(() => "");
      const m = /VmHWM:\s+(\d+) kB/.exec(s);
      if (m) peak = Math.max(peak, Number(m[1]));
    }, 25);
    child.on("close", (code) => {
      clearInterval(sample);
      resolve({ code, stdout: Buffer.concat(out).toString("utf8"), stderr, peakRssKb: peak });
    });
  });
}

test("the guest is Debian 12, sees none of the host's files and has no network", async (t) => {
  await withGvisorState(t, async ({ env, stateDir }) => {
    const markerDir = await tempDir("pyro-marker-");
    const marker = join(markerDir, "host-secret.txt");
    await writeFile(marker, "HOST-ONLY-CONTENT\n");
    try {
      const script = [
        "cat /etc/debian_version",
        `test -e ${marker} && echo MARKER_VISIBLE`,
        `ls /tmp | grep -q ${basename(markerDir)} && echo MARKER_DIR_VISIBLE`,
        `test -e ${REPO}/package.json && echo REPO_VISIBLE`,
        `test -e ${stateDir} && echo STATE_VISIBLE`,
        "echo IFACES $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' ')",
        "if timeout 5 bash -c 'exec 3<>/dev/tcp/1.1.1.1/53' 2>/dev/null; then echo TCP_OK; else echo TCP_FAILED; fi",
        "echo DONE",
      ].join("; ");
      const { code, json } = await runCliJsonGuest<{ stdout: string; exit_code: number }>(
        ["run", "debian:12", "--", "sh", "-c", script],
        { env },
      );
      assert.equal(code, 0, json.stdout);
      const out = json.stdout;
      assert.match(out, /^12\.\d+\n/, "guest /etc/debian_version says Debian 12");
      assert.doesNotMatch(
        out,
        /MARKER_VISIBLE|MARKER_DIR_VISIBLE/,
        "a host temp file is visible in the guest",
      );
      assert.doesNotMatch(out, /REPO_VISIBLE|STATE_VISIBLE/, "host paths are visible in the guest");
      assert.match(out, /^IFACES lo$/m, "only the loopback interface exists");
      assert.match(out, /^TCP_FAILED$/m, "an outbound TCP connection succeeded");
      assert.match(out, /DONE\n$/);
      assert.doesNotMatch(out, /HOST-ONLY-CONTENT/);
    } finally {
      await rm(markerDir, { recursive: true, force: true });
    }
  });
});

test("--json has every contract field; the exit code passes through; a missing command is 127", async (t) => {
  await withGvisorState(t, async ({ env, stateDir }) => {
    const r = await runCliJsonGuest<Record<string, unknown>>(
      ["run", "debian:12", "--", "sh", "-c", "echo out; echo err >&2; exit 7"],
      { env },
    );
    assert.equal(r.code, 7, "process exit code is the guest command's");
    const j = r.json;
    for (const k of [
      "environment",
      "command",
      "exit_code",
      "stdout",
      "stderr",
      "duration_ms",
      "execution_mode",
      "vm_id",
      "boot_ms",
      "exec_ms",
      "timed_out",
      "stdout_truncated",
      "stderr_truncated",
    ]) {
      assert.ok(k in j, `missing field ${k}`);
    }
    assert.equal(j.environment, "debian:12");
    assert.equal(j.command, "sh -c 'echo out; echo err >&2; exit 7'");
    assert.equal(j.exit_code, 7);
    assert.equal(j.stdout, "out\n");
    assert.equal(j.stderr, "err\n");
    assert.equal(j.execution_mode, "gvisor");
    assert.match(String(j.vm_id), /^vm_[0-9a-f]{16}$/);
    assert.equal(j.timed_out, false);
    assert.equal(j.stdout_truncated, false);
    assert.equal(j.stderr_truncated, false);
    for (const k of ["duration_ms", "boot_ms", "exec_ms"])
      assert.ok(Number.isInteger(j[k]) && (j[k] as number) >= 0, k);
    assert.ok((j.duration_ms as number) >= (j.exec_ms as number));

    // Human mode: the guest's stdout and stderr go to ours, then a footer on stderr.
    const h = await runCli(["run", "debian:12", "--", "sh", "-c", "echo out; echo err >&2; exit 3"], { env });
    assert.equal(h.code, 3);
    assert.equal(h.stdout, "out\n");
    assert.match(h.stderr, /^err\n/);
    assert.match(h.stderr, /exit 3 · gvisor/);

    const missing = await runCliJsonGuest<{ exit_code: number; stderr: string }>(
      ["run", "debian:12", "--", "no-such-command-xyz", "--flag"],
      { env },
    );
    assert.equal(missing.code, 127);
    assert.equal(missing.json.exit_code, 127);
    assert.match(missing.json.stderr, /no-such-command-xyz: not found/);

    // A string with shell syntax after -- is one argv word, not re-parsed by the shell.
    const argv = await runCliJsonGuest<{ stdout: string }>(
      ["run", "debian:12", "--", "printf", "%s|", "a b", "$HOME", ";ls"],
      { env },
    );
    assert.equal(argv.json.stdout, "a b|$HOME|;ls|");
    assert.deepEqual(await vmDirs(stateDir), [], "a one-shot run leaves no VM directory");
  });
});

test("bad input fails fast with one clear line and exit 2", async (t) => {
  await withGvisorState(t, async ({ env }) => {
    const cases: [string[], RegExp][] = [
      [
        ["run", "ubuntu:24.04", "--", "true"],
        /unknown environment "ubuntu:24\.04"; known environments: debian:12, debian:12-base, debian:12-build/,
      ],
      [["run", "debian:12", "--vcpu-count", "0", "--", "true"], /--vcpu-count/],
      [["run", "debian:12", "--mem-mib", "-5", "--", "true"], /--mem-mib/],
      [["run", "debian:12", "--mem-mib", "99999999", "--", "true"], /--mem-mib/],
      [["run", "debian:12", "--timeout-seconds", "0", "--", "true"], /--timeout-seconds/],
      [["run", "debian:12", "--vcpu-count", "two", "--", "true"], /--vcpu-count/],
      [["run", "debian:12"], /missing command.*pyro run ENVIRONMENT -- COMMAND/],
      [["run", "debian:12", "--"], /missing command/],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args, { env })));
    results.forEach((r, i) => {
      const [args, re] = cases[i]!;
      const what = args.join(" ");
      assert.equal(r.code, 2, `${what}: exit ${r.code}, stderr ${r.stderr}`);
      assert.match(r.stderr, re, what);
      assert.match(r.stderr, /^(pyro: )?error: /m, `${what}: ${r.stderr}`);
      assert.equal(r.stdout, "", `${what} printed on stdout`);
      const errLines = r.stderr.split("\n").filter((l) => /error/.test(l));
      assert.equal(errLines.length, 1, `${what}: one error line, got ${r.stderr}`);
    });
    const json = await runCliJsonGuest<{ error: { code: string; message: string } }>(
      ["run", "nope", "--", "true"],
      {
        env,
      },
    );
    assert.equal(json.code, 2);
    assert.equal(json.json.error.code, "unknown_environment");
  });
});

test("a timeout kills the command, reports timed_out with exit 124, fast, and removes the sandbox", async (t) => {
  await withGvisorState(t, async ({ env, stateDir }) => {
    const t0 = performance.now();
    const r = await runCliJsonGuest<{ timed_out: boolean; exit_code: number; duration_ms: number }>(
      ["run", "debian:12", "--timeout-seconds", "2", "--", "sh", "-c", "echo started; sleep 30"],
      { env, timeoutMs: 30_000 },
    );
    const wall = performance.now() - t0;
    assert.equal(r.code, 124);
    assert.equal(r.json.timed_out, true);
    assert.equal(r.json.exit_code, 124);
    assert.ok(wall < 8_000, `took ${Math.round(wall)} ms for a 2 s timeout`);
    assert.ok(r.json.duration_ms >= 2_000);
    assert.deepEqual(await runscList(stateDir), []);
    assert.deepEqual(await vmDirs(stateDir), []);
  });
});

test("100 MB of output: the result keeps head and tail within the budget, CLI memory stays bounded", async (t) => {
  await withGvisorState(t, async ({ env }) => {
    const r = await runCliMeasured(
      ["run", "debian:12", "--json", "--", "head", "-c", "100000000", "/dev/zero"],
      env,
    );
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as {
      stdout: string;
      stdout_truncated: boolean;
      stderr_truncated: boolean;
      stdout_bytes: number;
      stdout_omitted_bytes: number;
      exit_code: number;
    };
    assert.equal(j.exit_code, 0);
    assert.equal(j.stdout_truncated, true);
    assert.equal(j.stderr_truncated, false);
    assert.equal(j.stdout_bytes, 100_000_000);
    assert.equal(j.stdout_omitted_bytes, 100_000_000 - 16 * 1024);
    assert.ok(Buffer.byteLength(j.stdout) < 16 * 1024 + 300, "head + marker + tail");
    assert.ok(r.peakRssKb > 0, "could not sample the CLI's memory");
    assert.ok(
      r.peakRssKb < 200 * 1024,
      `CLI peak RSS ${Math.round(r.peakRssKb / 1024)} MiB for 100 MB of output`,
    );
  });
});

/** Starts `pyro run -- sleep 30`, waits for its sandbox, sends SIGINT, returns exit code and stderr. */
/**
 * Starts `pyro run -- sleep 30`, waits for its sandbox, then signals it: SIGINT to pyro, to
 * its whole process group (a terminal's Ctrl-C), or SIGKILL to pyro alone (a crash).
 */
async function interruptRun(env: NodeJS.ProcessEnv, stateDir: string, how: "pyro" | "group" | "kill") {
  const child = spawn(process.execPath, [CLI, "run", "debian:12", "--", "sleep", "30"], {
    env,
    cwd: REPO,
    stdio: ["ignore", "pipe", "pipe"],
    detached: how === "group",
  });
  let stderr = "";
  child.stderr.on("data", (c) => {
    stderr += c;
  });
  const exited = new Promise<number | null>((res) => child.on("close", (code) => res(code)));
  // Wait until the sandbox really runs, so the interrupt has something to clean up.
  const deadline = Date.now() + 15_000;
  while ((await runscList(stateDir)).length === 0) {
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      assert.fail(`the sandbox never started: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const t0 = performance.now();
  if (how === "group") process.kill(-child.pid!, "SIGINT");
  else child.kill(how === "kill" ? "SIGKILL" : "SIGINT");
  const code = await exited;
  return { code, stderr, ms: performance.now() - t0 };
}

test("Ctrl-C during a run exits 130 and leaves no sandbox", async (t) => {
  await withGvisorState(t, async ({ env, stateDir }) => {
    for (const how of ["pyro", "group"] as const) {
      const r = await interruptRun(env, stateDir, how);
      const what = how === "group" ? "SIGINT to the process group" : "SIGINT to pyro";
      assert.equal(r.code, 130, `${what}: ${r.stderr}`);
      assert.ok(r.ms < 10_000, `${what}: cleanup took ${Math.round(r.ms)} ms`);
      assert.match(r.stderr, /SIGINT received, cleaning up/);
      assert.deepEqual(await runscList(stateDir), [], what);
      assert.deepEqual(await vmDirs(stateDir), [], what);
      await assertNoSandboxes(stateDir);
    }
  });
});

test("a sandbox left by a pyro killed mid-run is removed by the next pyro call", async (t) => {
  await withGvisorState(t, async ({ env, stateDir }) => {
    const r = await interruptRun(env, stateDir, "kill");
    assert.equal(r.code, null, "pyro was SIGKILLed");
    assert.equal((await runscList(stateDir)).length, 1, "the orphaned sandbox is still there");
    assert.equal((await vmDirs(stateDir)).length, 1);
    const next = await runCli(["vm", "list"], { env });
    assert.equal(next.code, 0, next.stderr);
    assert.deepEqual(await runscList(stateDir), []);
    assert.deepEqual(await vmDirs(stateDir), []);
  });
});

test("--allow-host-compat is used only when no isolated engine exists", async (t) => {
  await withGvisorState(t, async ({ env, stateDir }) => {
    // Engine selection itself is under test here: nothing pinned, every engine's binary missing.
    const { PYRO_ENGINE: _pinned, ...unpinned } = env;
    const noEngine = {
      ...unpinned,
      PYRO_RUNSC: "/nonexistent/runsc",
      PYRO_QEMU: "/nonexistent/qemu",
      PYRO_QEMU_IMG: "/nonexistent/qemu-img",
    };
    const [refused, refusedJson, compat, isolated] = await Promise.all([
      runCli(["run", "debian:12", "--", "true"], { env: noEngine }),
      runCliJsonGuest<{ error: { code: string } }>(["run", "debian:12", "--", "true"], { env: noEngine }),
      runCliJsonGuest<{ execution_mode: string; stdout: string; exit_code: number }>(
        ["run", "debian:12", "--allow-host-compat", "--", "sh", "-c", "echo via-host"],
        { env: noEngine },
      ),
      runCliJsonGuest<{ execution_mode: string }>(["run", "debian:12", "--allow-host-compat", "--", "true"], {
        env: unpinned,
      }),
    ]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /no isolated engine/);
    assert.match(refused.stderr, /setup-host\.sh/);
    assert.match(refused.stderr, /--allow-host-compat/);
    assert.equal(refusedJson.json.error.code, "no_engine");
    assert.equal(compat.code, 0);
    assert.equal(compat.json.execution_mode, "host_compat");
    assert.equal(compat.json.stdout, "via-host\n");
    assert.notEqual(
      isolated.json.execution_mode,
      "host_compat",
      "host_compat was used although an isolated engine works",
    );
    const human = await runCli(["run", "debian:12", "--allow-host-compat", "--", "true"], { env: noEngine });
    assert.match(human.stderr, /NO ISOLATION/);
    assert.deepEqual(await vmDirs(stateDir), []);
  });
});

test("pyro doctor --json reports platform, KVM, a working gVisor, paths and capabilities", async (t) => {
  await withGvisorState(t, async ({ env, stateDir }) => {
    const { code, json: d } = await runCliJsonGuest<{
      platform: Record<string, unknown>;
      kvm: Record<string, unknown>;
      engines: {
        engine: string;
        available: boolean;
        detail: string;
        capabilities: Record<string, boolean>;
        binary: string | null;
        version: string | null;
        features: { name: string; enabled: boolean; detail: string }[];
      }[];
      default_engine: string;
      paths: { cache_dir: string; state_dir: string; environments_dir: string };
      capabilities: Record<string, boolean>;
      networking: { default: string };
      ok: boolean;
    }>(["doctor"], { env });
    assert.equal(code, 0);
    assert.equal(d.platform.os, "linux");
    for (const k of ["arch", "kernel", "node", "user", "root"]) assert.ok(k in d.platform, `platform.${k}`);
    for (const k of ["exists", "readable", "writable"]) assert.equal(typeof d.kvm[k], "boolean", `kvm.${k}`);
    assert.ok("boots" in d.kvm && (d.kvm.boots === null || typeof d.kvm.boots === "boolean"));
    const g = d.engines.find((e) => e.engine === "gvisor");
    assert.ok(g, "no gvisor engine report");
    assert.equal(g.available, true, g.detail);
    assert.equal(g.capabilities.guest_exec, true);
    // Which runsc is in use, what it says its version is, and what that version enables.
    const runscPath = await findRunsc(env);
    assert.ok(runscPath && g.binary === runscPath, `runsc ${g.binary} (found: ${runscPath})`);
    const said = spawnSync(runscPath, ["--version"], { encoding: "utf8" }).stdout.split("\n")[0]!.trim();
    assert.equal(g.version, said);
    assert.deepEqual(g.features, runscFeatures(parseRunscVersion(said)));
    assert.equal(d.default_engine, "gvisor");
    assert.equal(d.paths.state_dir, stateDir);
    assert.ok(d.paths.environments_dir.startsWith(d.paths.cache_dir));
    assert.deepEqual(Object.keys(d.capabilities).sort(), ["guest_exec", "guest_network", "vm_boot"]);
    assert.equal(d.capabilities.vm_boot, true);
    assert.equal(d.networking.default, "none");
    const human = await runCli(["doctor"], { env });
    assert.equal(human.code, 0);
    assert.match(human.stdout, /kvm: +exists=/);
    assert.match(human.stdout, /✓ gvisor/);
    assert.ok(
      human.stdout.includes(
        `    ${runscPath} (${said}): netstack ${g.features[0]!.enabled ? "yes" : "no"}, systrap_idle`,
      ),
      human.stdout,
    );
  });
});

test("pyro env list and env inspect (--json and human)", async (t) => {
  await withGvisorState(t, async ({ env }) => {
    const [list, inspect, unknown, humanList] = await Promise.all([
      runCliJsonGuest<{
        environments: { name: string; installed: boolean; digest: string; path: string | null }[];
      }>(["env", "list"], { env }),
      runCliJsonGuest<{
        name: string;
        installed: boolean;
        digest: string;
        path: string;
        size_bytes: number;
        recipe: { packages: string[] };
      }>(["env", "inspect", "debian:12"], { env }),
      runCli(["env", "inspect", "debian:13"], { env }),
      runCli(["env", "list"], { env }),
    ]);
    assert.equal(list.code, 0);
    assert.deepEqual(
      list.json.environments.map((e) => e.name),
      ["debian:12", "debian:12-base", "debian:12-build"],
    );
    const d12 = list.json.environments.find((e) => e.name === "debian:12")!;
    assert.equal(d12.installed, true);
    assert.equal(inspect.code, 0);
    assert.equal(inspect.json.name, "debian:12");
    assert.equal(inspect.json.installed, true);
    assert.equal(inspect.json.digest, d12.digest);
    assert.match(inspect.json.digest, /^sha256:[0-9a-f]{64}$/);
    assert.ok(inspect.json.recipe.packages.includes("git"));
    assert.ok(inspect.json.size_bytes > 10_000_000);
    assert.equal(
      (await readFile(join(inspect.json.path, "etc", "debian_version"), "utf8")).slice(0, 3),
      "12.",
    );
    assert.equal(unknown.code, 2);
    assert.match(
      unknown.stderr,
      /unknown environment "debian:13"; known environments: debian:12, debian:12-base, debian:12-build/,
    );
    assert.match(humanList.stdout, /debian:12 +yes/);
  });
});

test("the state dir holds nothing but runsc's root after runs (no leaks)", async (t) => {
  await withGvisorState(t, async ({ env, stateDir }) => {
    await Promise.all([
      runCli(["run", "debian:12", "--", "true"], { env }),
      runCli(["run", "debian:12", "--", "false"], { env }),
    ]);
    await assertNoSandboxes(stateDir);
    assert.deepEqual(await vmDirs(stateDir), []);
  });
});
