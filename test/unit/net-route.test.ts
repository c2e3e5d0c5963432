import assert from "node:assert/strict";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { PyroError } from "../../src/core/errors.js";
import { buildOciConfig } from "../../src/engines/gvisor/bundle.js";
import { netRouteFor, runscNetRoute } from "../../src/engines/gvisor/net-route.js";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

test("the route follows the version: netstack from release-20240807 on, host-stack before it and for an undated runsc", () => {
  assert.equal(netRouteFor("runsc version 0.0~20240729.0", {}), "host-stack");
  assert.equal(netRouteFor("runsc version release-20240806.0", {}), "host-stack");
  assert.equal(netRouteFor("runsc version release-20240807.0", {}), "netstack");
  assert.equal(netRouteFor("runsc version go-20260905035102-160fafc42237", {}), "netstack");
  assert.equal(netRouteFor("runsc version VERSION_MISSING", {}), "host-stack");
  assert.equal(netRouteFor(undefined, {}), "host-stack");
});

test("PYRO_GVISOR_NET_ROUTE overrides the version either way; anything else is refused with the values", () => {
  const old = "runsc version 0.0~20240729.0";
  const current = "runsc version go-20260905035102-160fafc42237";
  assert.equal(netRouteFor(current, { PYRO_GVISOR_NET_ROUTE: "host-stack" }), "host-stack");
  assert.equal(netRouteFor(old, { PYRO_GVISOR_NET_ROUTE: "netstack" }), "netstack");
  assert.equal(netRouteFor(current, { PYRO_GVISOR_NET_ROUTE: "" }), "netstack");
  assert.throws(
    () => netRouteFor(current, { PYRO_GVISOR_NET_ROUTE: "host" }),
    (e: unknown) =>
      e instanceof PyroError &&
      e.code === "invalid_argument" &&
      /"host"/.test(e.message) &&
      /netstack or host-stack/.test(e.hint ?? ""),
  );
});

test("the runsc version is asked once per binary and asked again when the binary changes", async () => {
  const dir = await mkdtemp(join(tmpdir(), "pyro-netroute-unit-"));
  dirs.push(dir);
  const bin = join(dir, "runsc");
  const calls = join(dir, "calls");
  const fake = (version: string) =>
    writeFile(bin, `#!/bin/sh\necho x >> ${JSON.stringify(calls)}\necho 'runsc version ${version}'\n`);
  await fake("0.0~20240729.0");
  await chmod(bin, 0o755);
  const count = async () =>
    (await readFile(calls, "utf8").catch(() => "")).split("\n").filter(Boolean).length;
  assert.equal(await runscNetRoute(bin, dir, {}), "host-stack");
  assert.equal(await runscNetRoute(bin, dir, {}), "host-stack");
  assert.equal(await count(), 1, "the second sandbox reads the kept version");
  // A new runsc at the same path (another size): asked again.
  await fake("go-20260905035102-160fafc42237");
  assert.equal(await runscNetRoute(bin, dir, {}), "netstack");
  assert.equal(await count(), 2);
  // The override needs no version at all.
  assert.equal(await runscNetRoute(bin, dir, { PYRO_GVISOR_NET_ROUTE: "host-stack" }), "host-stack");
  assert.equal(await count(), 2);
});

test("the OCI spec names the sandbox's namespace on the netstack route only", () => {
  const spec = {
    id: "x",
    environment: "debian:12",
    rootfs: "/r",
    sandboxDir: "/s/x",
    vcpuCount: 1,
    memMib: 256,
    network: true,
  };
  const net = { nsPath: "/run/netns/pyro-x", resolvConf: "/s/x/resolv.conf" };
  const nets = (c: ReturnType<typeof buildOciConfig>) =>
    c.linux.namespaces.filter((n) => n.type === "network");
  const proc = { args: ["true"], cwd: "/" };
  // netstack: runsc joins the namespace and takes its eth0.
  assert.deepEqual(nets(buildOciConfig(spec, proc, { init: "/i", net: { ...net, netstack: true } })), [
    { type: "network", path: "/run/netns/pyro-x" },
  ]);
  // host-stack: runsc is started inside it (nsenter) and the sandbox inherits it.
  assert.deepEqual(nets(buildOciConfig(spec, proc, { init: "/i", net })), []);
  // No network: a namespace of runsc's own, loopback only.
  assert.deepEqual(nets(buildOciConfig({ ...spec, network: false }, proc, { init: "/i" })), [
    { type: "network" },
  ]);
});
