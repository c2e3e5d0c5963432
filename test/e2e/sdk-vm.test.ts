import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { Pyro, PyroError } from "../../src/index.js";
import {
  assertNoSandboxes,
  CLI,
  runCli,
  runCliJson,
  runscList,
  type Skippable,
  type TestState,
  withGvisorState,
} from "../helpers.js";

/**
 * Issue 2 through the SDK, in this process, against the real gVisor engine: one-shot runs,
 * the VM lifecycle, environments, a VM shared with CLI processes, and TTL reaping.
 */

type Ctx = TestState & { pyro: Pyro };

/** A fresh state dir on the gVisor engine, and an SDK on it. */
function withPyro(t: Skippable, fn: (c: Ctx) => Promise<void>): Promise<void> {
  return withGvisorState(t, (c) => fn({ ...c, pyro: new Pyro({ env: c.env }) }));
}

/** Asserts that `p` rejects with a PyroError of this code whose message matches. */
async function rejectsWith(p: Promise<unknown>, code: string, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof PyroError, `expected PyroError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, re);
    return true;
  });
}

test("runInVm runs one command in a fresh Debian 12 sandbox and removes it", async (t) => {
  await withPyro(t, async ({ pyro, stateDir }) => {
    const r = await pyro.runInVm({
      environment: "debian:12",
      command: "cat /etc/debian_version; echo oops >&2; exit 4",
      timeoutSeconds: 20,
    });
    assert.equal(r.exit_code, 4);
    assert.match(r.stdout, /^12\.\d+\n$/);
    assert.equal(r.stderr, "oops\n");
    assert.equal(r.execution_mode, "gvisor");
    assert.equal(r.environment, "debian:12");
    assert.equal(r.cleaned_up, true);
    assert.match(r.vm_id, /^vm_[0-9a-f]{16}$/);
    const argv = await pyro.runInVm({ command: ["git", "--version"] });
    assert.equal(argv.exit_code, 0, argv.stderr);
    assert.match(argv.stdout, /^git version 2\./, "debian:12 (the default) has git");
    assert.deepEqual(await pyro.listVms(), []);
    assert.deepEqual(await runscList(stateDir), []);
    await rejectsWith(pyro.runInVm({ command: "true", memMib: 1 }), "invalid_argument", /memMib/); // named as the caller spelt it
    await rejectsWith(
      pyro.runInVm({ environment: "arch:latest", command: "true" }),
      "unknown_environment",
      /known environments: debian:12/,
    );
  });
});

test("VM lifecycle: create → start → status → networkInfo → exec (then gone)", async (t) => {
  await withPyro(t, async ({ pyro, stateDir }) => {
    const vm = await pyro.createVm({ environment: "debian:12", vcpuCount: 2, memMib: 512, ttlSeconds: 300 });
    assert.equal(vm.status.state, "created");
    assert.equal(vm.status.vcpu_count, 2);
    assert.equal(vm.status.mem_mib, 512);
    assert.equal(vm.status.network, false);
    assert.equal(vm.status.execution_mode, "gvisor");
    const ttl = Date.parse(vm.status.expires_at) - Date.parse(vm.status.created_at);
    assert.ok(Math.abs(ttl - 300_000) < 2_000, `ttl ${ttl} ms`);
    assert.deepEqual(await runscList(stateDir), [], "create does not boot yet");

    const started = await pyro.startVm(vm.vm_id);
    assert.equal(started.state, "running");
    assert.deepEqual(await runscList(stateDir), [`pyro-${vm.vm_id}`]);
    const st = await pyro.statusVm(vm.vm_id);
    assert.equal(st.state, "running");
    assert.equal(st.reason, null);
    assert.deepEqual(
      (await pyro.listVms()).map((v) => v.vm_id),
      [vm.vm_id],
    );

    const net = await pyro.networkInfoVm(vm.vm_id);
    const { network_info, ...rest } = net;
    assert.deepEqual(rest, { vm_id: vm.vm_id, network: false, mode: "none", execution_mode: "gvisor" });
    assert.equal(network_info?.policy, "off");

    const r = await pyro.execVm(vm.vm_id, {
      command: ["sh", "-c", "cat /etc/debian_version; nproc; cat /proc/net/dev | grep -c :"],
    });
    assert.equal(r.exit_code, 0, r.stderr);
    assert.match(r.stdout, /^12\.\d+\n/);
    assert.match(r.stdout, /\n1\n$/, "only lo in /proc/net/dev");
    assert.equal(r.vm_id, vm.vm_id);
    assert.equal(r.cleaned_up, true);

    await rejectsWith(pyro.statusVm(vm.vm_id), "not_found", new RegExp(`no VM with id ${vm.vm_id}`));
    assert.deepEqual(await runscList(stateDir), []);
    assert.deepEqual(await readdir(join(stateDir, "vms")), []);
  });
});

test("execVm on a VM never started boots it, runs, cleans up; timeouts report 124", async (t) => {
  await withPyro(t, async ({ pyro, stateDir }) => {
    const vm = await pyro.createVm();
    const r = await pyro.execVm(vm.vm_id, { command: "sleep 30", timeoutSeconds: 1 });
    assert.equal(r.timed_out, true);
    assert.equal(r.exit_code, 124);
    assert.ok(r.boot_ms > 0, "boot time measured when exec had to start the VM");
    await rejectsWith(pyro.statusVm(vm.vm_id), "not_found", /no VM/);
    assert.deepEqual(await runscList(stateDir), []);
  });
});

test("stopVm keeps the record, startVm boots it fresh, deleteVm removes it", async (t) => {
  await withPyro(t, async ({ pyro, stateDir }) => {
    const vm = await pyro.createVm();
    await pyro.startVm(vm.vm_id);
    const stopped = await pyro.stopVm(vm.vm_id);
    assert.equal(stopped.state, "stopped");
    assert.deepEqual(await runscList(stateDir), []);
    assert.equal((await pyro.statusVm(vm.vm_id)).state, "stopped");
    assert.equal((await vm.start()).state, "running");
    assert.equal((await vm.refresh()).state, "running");
    assert.deepEqual(await pyro.deleteVm(vm.vm_id), { vm_id: vm.vm_id, deleted: true });
    assert.deepEqual(await runscList(stateDir), []);
    await rejectsWith(pyro.statusVm(vm.vm_id), "not_found", /no VM/);
    await rejectsWith(pyro.deleteVm(vm.vm_id), "not_found", /no VM/);
    await rejectsWith(pyro.statusVm("vm_../../etc"), "invalid_argument", /malformed VM id/);
    await rejectsWith(pyro.startVm("vm_0000000000000000"), "not_found", /no VM/);
  });
});

test("listEnvironments and inspectEnvironment", async (t) => {
  await withPyro(t, async ({ pyro }) => {
    const envs = await pyro.listEnvironments();
    assert.deepEqual(
      envs.map((e) => e.name),
      ["debian:12", "debian:12-base", "debian:12-build"],
    );
    assert.equal(envs[0]!.installed, true);
    const info = await pyro.inspectEnvironment("debian:12");
    assert.equal(info.name, "debian:12");
    assert.equal(info.installed, true);
    assert.equal(info.digest, envs[0]!.digest);
    assert.deepEqual(info.recipe?.packages, ["ca-certificates", "git"]);
    await rejectsWith(
      pyro.inspectEnvironment("debian:11"),
      "unknown_environment",
      /unknown environment "debian:11"/,
    );
  });
});

test("a VM created by one CLI process and started by another is visible to and deletable from the SDK", async (t) => {
  await withPyro(t, async ({ pyro, env, stateDir }) => {
    const created = await runCliJson<{ vm_id: string; state: string }>(["vm", "create", "debian:12"], {
      env,
    });
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.json.state, "created");
    const id = created.json.vm_id;
    const started = await runCliJson<{ state: string }>(["vm", "start", id], { env });
    assert.equal(started.json.state, "running");
    // The CLI process has exited; the sandbox outlives it and the SDK re-attaches.
    const st = await pyro.statusVm(id);
    assert.equal(st.state, "running");
    assert.equal(st.execution_mode, "gvisor");
    assert.deepEqual(await runscList(stateDir), [`pyro-${id}`]);
    assert.deepEqual(await pyro.deleteVm(id), { vm_id: id, deleted: true });
    assert.deepEqual(await runscList(stateDir), []);
    const after = await runCli(["vm", "status", id], { env });
    assert.equal(after.code, 1);
    assert.match(after.stderr, new RegExp(`no VM with id ${id}`));
  });
});

test("TTL: an expired VM is reaped (sandbox gone), reports expired, refuses exec, and can be deleted", async (t) => {
  await withPyro(t, async ({ pyro, stateDir }) => {
    const vm = await pyro.createVm({ ttlSeconds: 1 });
    await pyro.startVm(vm.vm_id);
    assert.deepEqual(await runscList(stateDir), [`pyro-${vm.vm_id}`]);
    await new Promise((r) => setTimeout(r, 1_300));
    const reaped = await pyro.reapExpired();
    assert.deepEqual(reaped.reaped_vms, [vm.vm_id]);
    assert.deepEqual(await runscList(stateDir), [], "the reaper stops the sandbox");
    const st = await pyro.statusVm(vm.vm_id);
    assert.equal(st.state, "expired");
    assert.match(st.reason ?? "", /ttl/);
    await rejectsWith(pyro.execVm(vm.vm_id, { command: "true" }), "expired", /expired/);
    assert.deepEqual((await pyro.reapExpired()).reaped_vms, [], "reaping again is a no-op");
    assert.equal((await pyro.deleteVm(vm.vm_id)).deleted, true);
    await assertNoSandboxes(stateDir);
  });
});

test("a one-shot run whose pyro process was SIGKILLed is cleaned up by the next reap", async (t) => {
  await withPyro(t, async ({ pyro, env, stateDir }) => {
    const child = spawn(process.execPath, [CLI, "run", "debian:12", "--", "sleep", "60"], {
      env,
      stdio: "ignore",
    });
    const closed = new Promise((res) => child.on("close", res));
    const deadline = Date.now() + 20_000;
    while ((await runscList(stateDir)).length === 0) {
      assert.ok(Date.now() < deadline, "the run's sandbox never appeared");
      await new Promise((res) => setTimeout(res, 100));
    }
    const [container] = await runscList(stateDir);
    child.kill("SIGKILL"); // no chance to clean up: the sandbox and its state dir stay behind
    await closed;
    assert.deepEqual(await runscList(stateDir), [container], "the killed run left its sandbox");
    const vmId = container!.replace(/^pyro-/, "");
    assert.deepEqual((await pyro.reapExpired()).reaped_vms, [vmId]);
    assert.deepEqual(await runscList(stateDir), []);
    assert.deepEqual(await readdir(join(stateDir, "vms")), []);
  });
});
