import assert from "node:assert/strict";
import { test } from "node:test";
import {
  buildQemuArgs,
  hostTscKhz,
  kernelCmdline,
  qemuEscape,
  shellQuote,
} from "../../src/engines/qemu/args.js";
import { type SnapshotKeyParts, snapshotKey } from "../../src/engines/qemu/snapshot.js";

const base = {
  name: "pyro-vm_0123456789abcdef",
  accel: "tcg" as const,
  vcpuCount: 2,
  memMib: 512,
  network: false,
  kernel: "/k/vmlinuz",
  initrd: "/k/initramfs.cpio",
  disk: "/s/disk.qcow2",
  agentSocket: "/s/agent.sock",
  qmpSocket: "/s/qmp.sock",
  consoleLog: "/s/console.log",
};

function opt(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
}

test("a microvm with the requested resources, the disk, the agent port and QMP", () => {
  const a = buildQemuArgs(base);
  assert.deepEqual(opt(a, "-machine"), ["microvm,isa-serial=on,pit=on,pic=on,rtc=on"]);
  assert.deepEqual(opt(a, "-accel"), ["tcg"]);
  assert.deepEqual(opt(a, "-m"), ["512"]);
  assert.deepEqual(opt(a, "-smp"), ["2"]);
  assert.ok(a.includes("-nodefaults") && a.includes("-no-reboot"));
  assert.ok(!a.includes("-cpu"), "-cpu host/max abort under TCG here; the default model is used");
  assert.deepEqual(opt(a, "-drive"), ["id=root,file=/s/disk.qcow2,format=qcow2,if=none,discard=unmap"]);
  assert.ok(opt(a, "-chardev").includes("socket,id=agent0,path=/s/agent.sock,server=on,wait=off"));
  assert.ok(opt(a, "-device").includes("virtserialport,chardev=agent0,name=org.pyro.agent"));
  assert.deepEqual(opt(a, "-qmp"), ["unix:/s/qmp.sock,server=on,wait=off"]);
  assert.ok(!a.includes("-netdev"), "network is off by default");
  assert.ok(!a.includes("-incoming"));
});

test("network adds user-mode networking; restore waits for an incoming stream", () => {
  const a = buildQemuArgs({ ...base, network: true, incoming: true });
  assert.deepEqual(opt(a, "-netdev"), ["user,id=net0"]);
  assert.ok(opt(a, "-device").includes("virtio-net-device,netdev=net0"));
  assert.deepEqual(opt(a, "-incoming"), ["defer"]);
  assert.match(opt(a, "-append")[0]!, /pyro\.net=1/);
});

test("commas in paths are escaped for QEMU's option parser; bad resources are refused", () => {
  const a = buildQemuArgs({ ...base, disk: "/a,b/disk.qcow2" });
  assert.ok(opt(a, "-drive")[0]!.includes("file=/a,,b/disk.qcow2,"));
  assert.equal(qemuEscape("x,y,,z"), "x,,y,,,,z");
  assert.throws(() => buildQemuArgs({ ...base, vcpuCount: 0 }));
  assert.throws(() => buildQemuArgs({ ...base, memMib: 16 }));
});

test("the TSC rate goes on the command line only under TCG", () => {
  assert.match(opt(buildQemuArgs({ ...base, tscKhz: 2_596_128 }), "-append")[0]!, /tsc_early_khz=2596128/);
  assert.doesNotMatch(
    opt(buildQemuArgs({ ...base, accel: "kvm", tscKhz: 2_596_128 }), "-append")[0]!,
    /tsc_early_khz/,
  );
  assert.doesNotMatch(kernelCmdline(false), /tsc_early_khz/);
  assert.match(kernelCmdline(false), /console=ttyS0.*panic=-1/);
  assert.equal(hostTscKhz("processor\t: 0\ncpu MHz\t\t: 2596.128\n"), 2_596_128);
  assert.equal(hostTscKhz("no such line"), undefined);
});

test("exec: migration URIs quote paths for /bin/sh", () => {
  assert.equal(shellQuote("/a b/it's"), `'/a b/it'\\''s'`);
});

test("snapshot keys change with anything the saved machine depends on", () => {
  const p: SnapshotKeyParts = {
    qemu: "q",
    accel: "tcg",
    kernel: "k",
    initramfs: "i",
    image: "img",
    vcpuCount: 1,
    memMib: 1024,
    network: false,
  };
  const k = snapshotKey(p);
  assert.equal(snapshotKey({ ...p }), k);
  for (const change of [
    { vcpuCount: 2 },
    { memMib: 512 },
    { network: true },
    { image: "other" },
    { initramfs: "x" },
    { accel: "kvm" },
  ]) {
    assert.notEqual(snapshotKey({ ...p, ...change }), k, JSON.stringify(change));
  }
});
