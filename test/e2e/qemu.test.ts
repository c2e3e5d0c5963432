import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, open, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import {
  runCli,
  runCliJson,
  runCliJsonGuest,
  type Skippable,
  skipped,
  type TestState,
  tempDir,
  testEnv,
} from "../helpers.js";

/**
 * Issue 6 through the built CLI: the QEMU microVM engine (PYRO_ENGINE=qemu) end to end.
 * Under TCG a cold boot takes ~3 s and a snapshot restore well under a second, so most
 * tests reuse the snapshot the first one leaves in the normal cache; the snapshot-corruption
 * tests get their own snapshot directory (PYRO_QEMU_SNAPSHOT_DIR) so they never damage it.
 */

async function qemuSkipReason(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return "qemu tests need root (the environment rootfs is root-owned)";
  for (const b of ["/usr/bin/qemu-system-x86_64", "/usr/bin/qemu-img"]) {
    if (!existsSync(b) && !process.env.PYRO_QEMU)
      return `qemu not installed (${b} missing; run scripts/setup-host.sh)`;
  }
  return undefined;
}

const SKIP = await qemuSkipReason();
const QEMU = { PYRO_ENGINE: "qemu", PYRO_QEMU_ACCEL: process.env.PYRO_QEMU_ACCEL ?? "tcg" };

/** Live (non-zombie) processes whose command line mentions `needle`. */
async function processesMentioning(needle: string): Promise<string[]> {
  const out: string[] = [];
  for (const pid of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const cmd = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (!cmd.includes(needle)) continue;
    const st = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    const state = st.slice(st.lastIndexOf(")") + 2, st.lastIndexOf(")") + 3);
    if (state === "Z" || state === "") continue;
    out.push(`${pid}: ${cmd.replace(/\0/g, " ").slice(0, 120)}`);
  }
  return out;
}

async function assertNoQemu(stateDir: string): Promise<void> {
  const left = await processesMentioning(stateDir);
  assert.deepEqual(left, [], `qemu processes left behind: ${left.join("; ")}`);
}

async function withState(
  t: Skippable,
  fn: (c: TestState) => Promise<void>,
  extra: Record<string, string> = {},
): Promise<void> {
  if (SKIP) return skipped(t, SKIP);
  const c = await testEnv({ ...QEMU, ...extra });
  try {
    await fn(c);
    await assertNoQemu(c.stateDir);
  } finally {
    // A failed test must not leave VMs running once their state dir is gone.
    for (const line of await processesMentioning(c.stateDir)) {
      try {
        process.kill(Number(line.split(":")[0]), "SIGKILL");
      } catch {
        // already gone
      }
    }
    await c.cleanup().catch(() => undefined);
  }
}

interface RunJson {
  exit_code: number;
  stdout: string;
  stderr: string;
  timed_out: boolean;
  execution_mode: string;
  boot_ms: number;
  exec_ms: number;
}

test("pyro run debian:12 -- cat /etc/debian_version runs in a QEMU microVM and leaves nothing behind", async (t) => {
  await withState(t, async ({ env, stateDir }) => {
    const r = await runCli(["run", "debian:12", "--", "cat", "/etc/debian_version"], {
      env,
      timeoutMs: 150_000,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^12\.\d+\n$/);
    assert.match(r.stderr, /qemu/);
    const j = await runCliJsonGuest<RunJson>(["run", "debian:12", "--", "uname", "-r"], {
      env,
      timeoutMs: 150_000,
    });
    assert.equal(j.code, 0, j.stderr);
    assert.equal(j.json.execution_mode, "qemu");
    assert.match(j.json.stdout, /cloud-amd64/); // the guest's own kernel, not the host's
    t.diagnostic(`restore boot ${j.json.boot_ms} ms, exec ${j.json.exec_ms} ms`);
    await assertNoQemu(stateDir);
    assert.deepEqual(await readdir(join(stateDir, "vms")).catch(() => []), []);
  });
});

test("restored VMs answer correctly twice in a row, each with its own disk and RNG", async (t) => {
  await withState(t, async ({ env }) => {
    const cmd = [
      "sh",
      "-c",
      "test ! -e /root/marker && echo one > /root/marker && cat /root/marker && cat /proc/sys/kernel/random/uuid",
    ];
    const a = await runCliJsonGuest<RunJson>(["run", "debian:12", "--", ...cmd], { env, timeoutMs: 150_000 });
    const b = await runCliJsonGuest<RunJson>(["run", "debian:12", "--", ...cmd], { env, timeoutMs: 150_000 });
    for (const r of [a, b]) {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.json.exit_code, 0, `a file written by an earlier VM is visible: ${r.json.stderr}`);
      assert.doesNotMatch(r.stderr, /warning/);
    }
    const [ua, ub] = [a.json.stdout.split("\n")[1], b.json.stdout.split("\n")[1]];
    assert.ok(ua && ub && ua !== ub, `both restored guests produced the same random uuid ${ua}`);
    t.diagnostic(
      `restore boots ${a.json.boot_ms} ms and ${b.json.boot_ms} ms; exec ${a.json.exec_ms}/${b.json.exec_ms} ms`,
    );
  });
});

test("a timeout kills the guest command and everything it started", async (t) => {
  await withState(t, async ({ env }) => {
    const r = await runCliJsonGuest<RunJson>(
      ["run", "debian:12", "--timeout-seconds", "2", "--", "sh", "-c", "sleep 60 & echo started; sleep 60"],
      {
        env,
        timeoutMs: 150_000,
      },
    );
    assert.equal(r.json.timed_out, true);
    assert.equal(r.json.exit_code, 124);
    assert.match(r.json.stdout, /started/);
    assert.ok(r.json.exec_ms < 15_000, `took ${r.json.exec_ms} ms`);

    // In a workspace the VM survives the timeout: nothing of the killed command may remain.
    const ws = await runCli(["workspace", "create", "debian:12", "--id-only"], { env, timeoutMs: 150_000 });
    assert.equal(ws.code, 0, ws.stderr);
    const id = ws.stdout.trim();
    try {
      const x = await runCliJsonGuest<RunJson>(
        ["workspace", "exec", id, "--timeout-seconds", "2", "--", "sh", "-c", "sleep 77 & sleep 78"],
        {
          env,
          timeoutMs: 60_000,
        },
      );
      assert.equal(x.json.timed_out, true);
      const ps = await runCliJsonGuest<RunJson>(
        [
          "workspace",
          "exec",
          id,
          "--",
          "sh",
          "-c",
          "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done",
        ],
        { env, timeoutMs: 60_000 },
      );
      assert.equal(ps.json.exit_code, 0, ps.json.stderr);
      assert.doesNotMatch(ps.json.stdout, /sleep 7[78]/);
    } finally {
      const d = await runCli(["workspace", "delete", id], { env, timeoutMs: 60_000 });
      assert.equal(d.code, 0, d.stderr);
    }
  });
});

test("workspace flow on qemu: create with seed, sync push, exec, logs, delete", async (t) => {
  await withState(t, async ({ env, stateDir }) => {
    const seed = await tempDir("pyro-qemu-seed-");
    const push = await tempDir("pyro-qemu-push-");
    try {
      await mkdir(join(seed, "src"));
      await writeFile(join(seed, "src", "hello.txt"), "from the seed\n");
      await writeFile(join(push, "data.bin"), Buffer.from([0, 1, 2, 255, 10, 13]));
      const c = await runCliJsonGuest<{ workspace_id: string; execution_mode: string }>(
        ["workspace", "create", "debian:12", "--seed-path", seed],
        { env, timeoutMs: 150_000 },
      );
      assert.equal(c.code, 0, c.stderr);
      assert.equal(c.json.execution_mode, "qemu");
      const id = c.json.workspace_id;
      const s = await runCli(["workspace", "sync", "push", id, push, "--dest", "incoming"], {
        env,
        timeoutMs: 60_000,
      });
      assert.equal(s.code, 0, s.stderr);
      const e1 = await runCliJsonGuest<RunJson & { sequence: number }>(
        [
          "workspace",
          "exec",
          id,
          "--",
          "sh",
          "-c",
          "cat src/hello.txt && od -An -tu1 incoming/data.bin && echo kept > state.txt",
        ],
        { env, timeoutMs: 60_000 },
      );
      assert.equal(e1.json.exit_code, 0, e1.json.stderr);
      assert.match(e1.json.stdout, /from the seed/);
      assert.match(e1.json.stdout, /0\s+1\s+2\s+255\s+10\s+13/);
      const e2 = await runCliJsonGuest<RunJson>(
        ["workspace", "exec", id, "--", "sh", "-c", "cat state.txt; pwd; exit 3"],
        { env, timeoutMs: 60_000 },
      );
      assert.equal(e2.json.exit_code, 3);
      assert.equal(e2.json.stdout, "kept\n/workspace\n");
      const logs = await runCliJsonGuest<{ commands: { sequence: number; exit_code: number }[] }>(
        ["workspace", "logs", id],
        { env },
      );
      assert.deepEqual(
        logs.json.commands.map((x) => [x.sequence, x.exit_code]),
        [
          [1, 0],
          [2, 3],
        ],
      );
      const st = await runCliJsonGuest<{ state: string }>(["workspace", "status", id], { env });
      assert.equal(st.json.state, "running");
      const procs = await processesMentioning(stateDir);
      // The VM, and the host-side watchdog that ends it at its expiry.
      assert.equal(procs.filter((l) => !l.includes(" watch ")).length, 1, "one VM for the workspace");
      assert.equal(procs.filter((l) => l.includes(" watch ")).length, 1, "one expiry watchdog");
      const d = await runCli(["workspace", "delete", id], { env, timeoutMs: 60_000 });
      assert.equal(d.code, 0, d.stderr);
      await assertNoQemu(stateDir);
    } finally {
      await rm(seed, { recursive: true, force: true });
      await rm(push, { recursive: true, force: true });
    }
  });
});

test("a corrupt or incomplete snapshot falls back to a cold boot with a warning", async (t) => {
  if (SKIP) return skipped(t, SKIP);
  const snaps = await tempDir("pyro-qemu-snaps-");
  try {
    await withState(
      t,
      async ({ env }) => {
        const run = () =>
          runCliJsonGuest<RunJson>(["run", "debian:12", "--", "cat", "/etc/debian_version"], {
            env,
            timeoutMs: 150_000,
          });
        const first = await run(); // cold boot; saves a snapshot into `snaps`
        assert.equal(first.json.exit_code, 0, first.stderr);
        const [key] = (await readdir(snaps)).filter((n) => !n.startsWith("."));
        assert.ok(key, "no snapshot was saved");
        const state = join(snaps, key, "state");
        const meta1 = await readFile(join(snaps, key, "meta.json"), "utf8");

        // Same size, garbage header: only QEMU itself can tell, and it refuses to load it.
        const fh = await open(state, "r+");
        await fh.write(Buffer.alloc(4096, 0x5a), 0, 4096, 0);
        await fh.close();
        const second = await run();
        assert.equal(second.code, 0, second.stderr);
        assert.match(second.json.stdout, /^12\./);
        assert.match(second.stderr, /warning: restoring qemu snapshot .* failed .*cold booting/);
        const meta2 = await readFile(join(snaps, key, "meta.json"), "utf8");
        assert.notEqual(meta2, meta1, "the snapshot was not re-created");

        // Truncated (an interrupted copy): caught before QEMU starts.
        const size = (await stat(state)).size;
        const fh2 = await open(state, "r+");
        await fh2.truncate(Math.floor(size / 2));
        await fh2.close();
        const third = await run();
        assert.equal(third.code, 0, third.stderr);
        assert.match(third.stderr, /warning: qemu snapshot .* (incomplete or corrupt|failed)/);
        const fourth = await run();
        assert.doesNotMatch(fourth.stderr, /warning/);
        t.diagnostic(`cold ${second.json.boot_ms} ms vs restored ${fourth.json.boot_ms} ms`);
      },
      { PYRO_QEMU_SNAPSHOT_DIR: snaps },
    );
  } finally {
    await rm(snaps, { recursive: true, force: true });
  }
});

test("a guest that never becomes ready fails within its deadline, showing the serial console", async (t) => {
  // A static binary that is not the agent (busybox): the guest's PID 1 exits, the kernel panics.
  const busybox = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
  if (!SKIP && !busybox) return skipped(t, "no static busybox to stand in for a broken agent");
  await withState(
    t,
    async ({ env }) => {
      const started = Date.now();
      const r = await runCli(["run", "debian:12", "--", "true"], { env, timeoutMs: 120_000 });
      assert.notEqual(r.code, 0);
      assert.ok(Date.now() - started < 60_000, "took longer than its deadline");
      assert.match(r.stderr, /serial console/);
      assert.match(r.stderr, /Kernel panic|pyro-init|applet not found/);
    },
    { PYRO_GUEST_AGENT: busybox ?? "", PYRO_QEMU_SNAPSHOTS: "0", PYRO_QEMU_BOOT_DEADLINE_MS: "30000" },
  );
});

test("a killed `pyro run` leaves no VM behind: the one-shot guest shuts itself down", async (t) => {
  await withState(t, async ({ env, stateDir }) => {
    const { spawn } = await import("node:child_process");
    const { CLI } = await import("../helpers.js");
    const child = spawn(process.execPath, [CLI, "run", "debian:12", "--", "sleep", "60"], {
      env,
      stdio: "ignore",
    });
    try {
      let vm: string[] = [];
      for (let i = 0; i < 300 && vm.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        vm = await processesMentioning(stateDir);
      }
      assert.equal(vm.length, 1, "the VM never started");
      await new Promise((r) => setTimeout(r, 1500)); // let the command start
      child.kill("SIGKILL");
      const started = Date.now();
      while ((await processesMentioning(stateDir)).length > 0 && Date.now() - started < 15_000) {
        await new Promise((r) => setTimeout(r, 200));
      }
      await assertNoQemu(stateDir);
      t.diagnostic(`VM gone ${Date.now() - started} ms after its pyro process was killed`);
    } finally {
      child.kill("SIGKILL");
    }
  });
});

test("firecracker engine end to end (needs the firecracker binary and a KVM that boots guests)", async (t) => {
  const fc =
    process.env.PYRO_FIRECRACKER ??
    ["/usr/local/bin/firecracker", "/usr/bin/firecracker"].find((p) => existsSync(p));
  if (!fc) return skipped(t, "firecracker not installed");
  if (SKIP) return skipped(t, SKIP);
  const c = await testEnv({ PYRO_ENGINE: "firecracker", PYRO_FIRECRACKER: fc });
  try {
    const r = await runCliJsonGuest<RunJson>(["run", "debian:12", "--", "cat", "/etc/debian_version"], {
      env: c.env,
      timeoutMs: 150_000,
    });
    if (r.code !== 0 && /cannot run on this host/.test(r.stderr))
      return skipped(t, "firecracker installed, but KVM does not boot guests here");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.execution_mode, "firecracker");
    assert.match(r.json.stdout, /^12\./);
  } finally {
    await c.cleanup().catch(() => undefined);
  }
});

test("a QEMU workspace past its TTL is stopped by its watchdog with no pyro process alive", async (t) => {
  await withState(t, async ({ env, stateDir }) => {
    const c = await runCliJson<{ workspace_id: string; expires_at: string }>(
      ["workspace", "create", "debian:12", "--ttl-seconds", "3"],
      { env, timeoutMs: 150_000 },
    );
    assert.equal(c.code, 0, c.stderr);
    const vmsOf = async () => (await processesMentioning(stateDir)).filter((l) => !l.includes(" watch "));
    assert.equal((await vmsOf()).length, 1, "the VM should be running");
    const limit = Date.parse(c.json.expires_at) + 60_000;
    while ((await vmsOf()).length > 0 && Date.now() < limit) await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await vmsOf(), [], "the VM still runs 60 s after its expiry");
    t.diagnostic(`VM gone ${Date.now() - Date.parse(c.json.expires_at)} ms after its expiry`);
    assert.equal((await runCli(["workspace", "delete", c.json.workspace_id], { env })).code, 0);
  });
});

test("a #qemu pool keeps booted microVMs: runs claim one (boot_ms 0), never share it, drain leaves none", async (t) => {
  await withState(
    t,
    async ({ env, stateDir }) => {
      const fill = await runCliJson<{ created: number }>(["pool", "fill", "--json"], {
        env,
        timeoutMs: 150_000,
      });
      assert.equal(fill.code, 0, fill.stderr);
      assert.equal(fill.json.created, 2);
      const st = await runCliJson<{
        keys: { key: string; ready: number; rss_mib_per_ready: number | null }[];
      }>(["pool", "status", "--json"], { env });
      assert.equal(st.json.keys[0]!.key, "debian:12#qemu");
      assert.equal(st.json.keys[0]!.ready, 2);
      assert.ok((st.json.keys[0]!.rss_mib_per_ready ?? 0) > 0, "the VMs' memory is measured");
      const runs = await Promise.all(
        [1, 2].map(() =>
          runCliJsonGuest<RunJson & { vm_id: string }>(
            ["run", "debian:12", "--", "sh", "-c", "ls /tmp | wc -l"],
            {
              env,
              timeoutMs: 60_000,
            },
          ),
        ),
      );
      for (const r of runs) {
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.json.execution_mode, "qemu");
        assert.equal(r.json.boot_ms, 0, "no VM was booted or restored for it");
        assert.equal(r.json.stdout, "0\n", "a fresh /tmp");
      }
      assert.notEqual(runs[0]!.json.vm_id, runs[1]!.json.vm_id);
      const drain = await runCliJson<{ destroyed: number }>(["pool", "drain", "--json"], { env });
      assert.equal(drain.json.destroyed, 2);
      assert.equal(existsSync(join(stateDir, "pool")), false);
    },
    { PYRO_POOL_SIZE: "2", PYRO_POOL_KEYS: "debian:12#qemu", PYRO_POOL_TOPUP: "0" },
  );
});
