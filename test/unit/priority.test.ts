import assert from "node:assert/strict";
import { test } from "node:test";
import { buildOciConfig } from "../../src/engines/gvisor/bundle.js";
import { PyroError } from "../../src/index.js";
import {
  cpuSharesForNice,
  DEFAULT_SANDBOX_NICE,
  niced,
  sandboxNice,
  sandboxPriorityDetail,
} from "../../src/util/priority.js";

test("PYRO_SANDBOX_NICE: 10 by default, 0 turns it off, anything outside 0-19 refused with the fix", () => {
  assert.equal(sandboxNice({}), DEFAULT_SANDBOX_NICE);
  assert.equal(DEFAULT_SANDBOX_NICE, 10);
  assert.equal(sandboxNice({ PYRO_SANDBOX_NICE: " " }), DEFAULT_SANDBOX_NICE);
  assert.equal(sandboxNice({ PYRO_SANDBOX_NICE: "0" }), 0);
  assert.equal(sandboxNice({ PYRO_SANDBOX_NICE: "19" }), 19);
  for (const bad of ["-5", "20", "1.5", "low"]) {
    assert.throws(
      () => sandboxNice({ PYRO_SANDBOX_NICE: bad }),
      (e: unknown) =>
        e instanceof PyroError &&
        e.code === "invalid_argument" &&
        e.message.includes(`PYRO_SANDBOX_NICE=${bad}`) &&
        /0 .* to 19/.test(e.hint ?? ""),
    );
  }
});

test("a niceness wraps the argv in `nice -n` and weighs a cgroup like one task of it; 0 changes nothing", () => {
  assert.deepEqual(niced(10, "runsc", ["run", "x"]), ["nice", ["-n", "10", "runsc", "run", "x"]]);
  assert.deepEqual(niced(0, "runsc", ["run", "x"]), ["runsc", ["run", "x"]]);
  assert.equal(cpuSharesForNice(0), undefined);
  assert.equal(cpuSharesForNice(10), 110);
  assert.equal(cpuSharesForNice(19), 15);
  assert.match(sandboxPriorityDetail(10), /nice 10 .*cpu\.shares 110/);
  assert.match(sandboxPriorityDetail(0), /PYRO_SANDBOX_NICE=0/);
  const spec = {
    id: "x",
    environment: "debian:12",
    rootfs: "/r",
    sandboxDir: "/s/x",
    vcpuCount: 2,
    memMib: 256,
    network: false,
  };
  const cpu = (shares?: number) =>
    buildOciConfig(spec, { args: ["true"], cwd: "/" }, undefined, undefined, shares).linux.resources?.cpu;
  assert.deepEqual(cpu(110), { quota: 200_000, period: 100_000, shares: 110 });
  assert.deepEqual(cpu(undefined), { quota: 200_000, period: 100_000 });
});
