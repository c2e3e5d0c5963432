import assert from "node:assert/strict";
import { test } from "node:test";
import { buildOciConfig } from "../../src/engines/gvisor/bundle.js";
import { withDeadline } from "../../src/engines/gvisor/engine.js";
import { decodeFrames } from "../../src/engines/gvisor/exec-channel.js";
import { DEFAULT_PIDS_LIMIT, hostPidsLimit, pidsLimit } from "../../src/engines/gvisor/pids.js";
import type { Engine, ExecOutcome, SandboxHandle } from "../../src/engines/types.js";
import { PyroError } from "../../src/index.js";

test("PYRO_PIDS_LIMIT: on by default, 0/off for none, anything else out of range refused with the fix", () => {
  assert.equal(pidsLimit({}), DEFAULT_PIDS_LIMIT);
  assert.equal(pidsLimit({ PYRO_PIDS_LIMIT: "" }), DEFAULT_PIDS_LIMIT);
  assert.equal(pidsLimit({ PYRO_PIDS_LIMIT: "4096" }), 4096);
  assert.equal(pidsLimit({ PYRO_PIDS_LIMIT: "0" }), 0);
  assert.equal(pidsLimit({ PYRO_PIDS_LIMIT: "off" }), 0);
  for (const bad of ["12", "1.5", "lots", "100000", "-1"]) {
    assert.throws(
      () => pidsLimit({ PYRO_PIDS_LIMIT: bad }),
      (e: unknown) =>
        e instanceof PyroError &&
        e.code === "invalid_argument" &&
        e.message.includes(`PYRO_PIDS_LIMIT=${bad}`) &&
        /64 to 65536/.test(e.hint ?? ""),
    );
  }
});

test("the host backstop sits above the guest limit and goes into the OCI spec's pids resource", () => {
  assert.ok(hostPidsLimit(1024) > 2 * 1024);
  const spec = {
    id: "x",
    environment: "debian:12",
    rootfs: "/r",
    sandboxDir: "/s/x",
    vcpuCount: 1,
    memMib: 256,
    network: false,
  };
  assert.equal(buildOciConfig(spec, { args: ["true"], cwd: "/" }).linux.resources?.pids, undefined);
  assert.deepEqual(
    buildOciConfig(spec, { args: ["true"], cwd: "/" }, undefined, 3584).linux.resources?.pids,
    {
      limit: 3584,
    },
  );
});

test("the init's run wrapper carries the limit only when there is one", () => {
  assert.deepEqual(withDeadline(["true"], 1000, 256), [
    "/.pyro/init",
    "run",
    "--deadline-ms",
    "2500",
    "--pids-limit",
    "256",
    "--",
    "true",
  ]);
  assert.ok(!withDeadline(["true"], 1000).includes("--pids-limit"));
});

test("exec channel frames: P (at the process limit) and V (a ping's answer) parse like the others", () => {
  const f = (t: string, body: string) => {
    const h = Buffer.alloc(5);
    h.write(t, 0, "latin1");
    h.writeUInt32LE(Buffer.byteLength(body), 1);
    return Buffer.concat([h, Buffer.from(body)]);
  };
  const seen: string[] = [];
  const rest = decodeFrames(
    Buffer.concat([f("P", ""), f("V", "pyro-sandbox-init 4"), f("X", "0").subarray(0, 3)]),
    (t, b) => seen.push(`${t}:${b.toString()}`),
  );
  assert.deepEqual(seen, ["P:", "V:pyro-sandbox-init 4"]);
  assert.equal(rest.length, 3);
});

test("secrets read back: a sandbox that does not answer is a timeout, never a blame on the guest", async () => {
  const { readSecrets } = await import("../../src/secrets/guest.js");
  const outcome = (o: Partial<ExecOutcome>): ExecOutcome => ({
    exitCode: 0,
    stdout: "",
    stderr: "",
    stdoutTruncated: false,
    stderrTruncated: false,
    timedOut: false,
    execMs: 1,
    ...o,
  });
  const engineAnswering = (o: Partial<ExecOutcome>, seen?: { timeoutMs?: number }) =>
    ({
      exec: async (_h: unknown, req: { timeoutMs: number }) => {
        if (seen) seen.timeoutMs = req.timeoutMs;
        return outcome(o);
      },
    }) as unknown as Engine;
  const handle = { engine: "gvisor", id: "ws_0123456789abcdef", sandboxDir: "/s", data: {} } as SandboxHandle;
  const metas = [{ name: "TOKEN", bytes: 5 }];
  const seen: { timeoutMs?: number } = {};
  await assert.rejects(
    readSecrets(engineAnswering({ exitCode: 124, timedOut: true }, seen), handle, metas, handle.id),
    (e: unknown) => e instanceof PyroError && e.code === "timeout" && !/changed/.test(e.message),
  );
  assert.equal(seen.timeoutMs, 10_000);
  // What the guest did change is still refused (fail closed).
  await assert.rejects(
    readSecrets(
      engineAnswering({ stdout: "abc", stdoutBytes: Buffer.from("abc") }),
      handle,
      metas,
      handle.id,
    ),
    /removed or changed inside the sandbox/,
  );
  const ok = await readSecrets(
    engineAnswering({ stdout: "hello", stdoutBytes: Buffer.from("hello") }),
    handle,
    metas,
    handle.id,
  );
  assert.equal(ok[0]?.value.toString(), "hello");
});
