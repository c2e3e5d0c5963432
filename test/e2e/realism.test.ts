import assert from "node:assert/strict";
import { test } from "node:test";
import { runCliJsonGuest, withGvisorState } from "../helpers.js";

/** A sandbox that behaves like a machine: localhost resolves, and results say where it differs. */

interface Run {
  exit_code: number;
  stdout: string;
  stderr: string;
  notes: string[];
}

test("localhost resolves in every catalog environment (getent, and Python's resolver)", {
  timeout: 600_000,
}, async (t) => {
  await withGvisorState(t, async ({ env }) => {
    for (const environment of ["debian:12", "debian:12-base"]) {
      const r = await runCliJsonGuest<Run>(["run", environment, "--", "getent", "hosts", "localhost"], {
        env,
        timeoutMs: 300_000,
      });
      assert.equal(r.json.exit_code, 0, `${environment}: ${r.json.stderr}`);
      assert.match(r.json.stdout, /^(127\.0\.0\.1|::1)\s+localhost/m, environment);
      const host = await runCliJsonGuest<Run>(["run", environment, "--", "getent", "hosts", "pyro"], { env });
      assert.match(host.json.stdout, /^127\.0\.1\.1\s+pyro/m, `${environment}: its own hostname`);
    }
    // debian:12-build has Python (built here on first use, about a minute, then cached).
    const py = await runCliJsonGuest<Run>(
      [
        "run",
        "debian:12-build",
        "--",
        "python3",
        "-c",
        "import socket; print(socket.gethostbyname('localhost'))",
      ],
      { env, timeoutMs: 600_000 },
    );
    assert.equal(py.json.exit_code, 0, py.json.stderr);
    assert.equal(py.json.stdout.trim(), "127.0.0.1");
  });
});

test("vcpu_count below what gVisor can show is said in the result's notes", async (t) => {
  await withGvisorState(t, async ({ env }) => {
    const one = await runCliJsonGuest<Run>(["run", "debian:12", "--vcpu-count", "1", "--", "nproc"], { env });
    assert.equal(one.json.exit_code, 0, one.json.stderr);
    assert.ok(
      one.json.notes.some((n) => /at least 2 CPUs/.test(n) && /vcpu_count=1/.test(n)),
      JSON.stringify(one.json.notes),
    );
    const two = await runCliJsonGuest<Run>(["run", "debian:12", "--vcpu-count", "2", "--", "nproc"], { env });
    assert.deepEqual(two.json.notes, []);
  });
});
