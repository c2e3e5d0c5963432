import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import {
  action,
  bootPlan,
  bootSource,
  drive,
  GUEST_CID,
  machineConfig,
  networkInterface,
  parseVsockReply,
  patchDrive,
  restorePlan,
  setVmState,
  snapshotCreate,
  snapshotLoad,
  snapshotPlan,
  vsock,
  vsockConnectLine,
} from "../../src/engines/firecracker/api.js";
import { extractVmlinux, lz4DecodeBlock, lz4LegacyDecode } from "../../src/engines/firecracker/vmlinux.js";

/** Request shapes as firecracker.yaml (the OpenAPI description of Firecracker's API) defines them. */

test("boot-source, drives, machine-config, vsock and InstanceStart match the documented bodies", () => {
  assert.deepEqual(bootSource({ kernel: "/k/vmlinux", initrd: "/k/initrd", bootArgs: "console=ttyS0" }), {
    method: "PUT",
    path: "/boot-source",
    body: { kernel_image_path: "/k/vmlinux", initrd_path: "/k/initrd", boot_args: "console=ttyS0" },
  });
  assert.deepEqual(bootSource({ kernel: "/k/vmlinux" }).body, { kernel_image_path: "/k/vmlinux" });
  assert.deepEqual(drive({ id: "rootfs", path: "/s/disk.raw", root: true, readOnly: false }), {
    method: "PUT",
    path: "/drives/rootfs",
    body: { drive_id: "rootfs", path_on_host: "/s/disk.raw", is_root_device: true, is_read_only: false },
  });
  assert.deepEqual(machineConfig({ vcpuCount: 2, memMib: 1024 }), {
    method: "PUT",
    path: "/machine-config",
    body: { vcpu_count: 2, mem_size_mib: 1024, smt: false },
  });
  assert.deepEqual(vsock("/s/vsock.sock"), {
    method: "PUT",
    path: "/vsock",
    body: { guest_cid: GUEST_CID, uds_path: "/s/vsock.sock" },
  });
  assert.deepEqual(action("InstanceStart"), {
    method: "PUT",
    path: "/actions",
    body: { action_type: "InstanceStart" },
  });
  assert.deepEqual(networkInterface({ id: "eth0", tap: "tap0" }), {
    method: "PUT",
    path: "/network-interfaces/eth0",
    body: { iface_id: "eth0", host_dev_name: "tap0" },
  });
});

test("invalid resources and ids are refused before anything is sent", () => {
  assert.throws(() => machineConfig({ vcpuCount: 0, memMib: 1024 }));
  assert.throws(() => machineConfig({ vcpuCount: 33, memMib: 1024 }), /1-32/);
  assert.throws(() => machineConfig({ vcpuCount: 1, memMib: 64 }));
  assert.throws(() => drive({ id: "../x", path: "/d", root: true, readOnly: false }), /drive id/);
  assert.throws(() => vsock("/s", 2), /CID/);
});

test("snapshot create/load and pause/resume use the documented shapes", () => {
  assert.deepEqual(setVmState("Paused"), { method: "PATCH", path: "/vm", body: { state: "Paused" } });
  assert.deepEqual(snapshotCreate({ snapshotPath: "/c/vmstate", memPath: "/c/memory" }), {
    method: "PUT",
    path: "/snapshot/create",
    body: { snapshot_type: "Full", snapshot_path: "/c/vmstate", mem_file_path: "/c/memory" },
  });
  assert.deepEqual(snapshotLoad({ snapshotPath: "/c/vmstate", memPath: "/c/memory", resume: true }), {
    method: "PUT",
    path: "/snapshot/load",
    body: {
      snapshot_path: "/c/vmstate",
      mem_backend: { backend_type: "File", backend_path: "/c/memory" },
      resume_vm: true,
    },
  });
  assert.deepEqual(
    snapshotLoad({ snapshotPath: "/c/s", memPath: "/c/m", resume: false, vsockUds: "/v.sock" }).body,
    {
      snapshot_path: "/c/s",
      mem_backend: { backend_type: "File", backend_path: "/c/m" },
      resume_vm: false,
      vsock_override: { uds_path: "/v.sock" },
    },
  );
  assert.deepEqual(patchDrive("rootfs", "/mine.raw"), {
    method: "PATCH",
    path: "/drives/rootfs",
    body: { drive_id: "rootfs", path_on_host: "/mine.raw" },
  });
});

test("a cold boot configures everything before InstanceStart; restore loads paused, swaps the disk, resumes", () => {
  const plan = bootPlan({
    kernel: "/k/vmlinux",
    initrd: "/k/initrd",
    bootArgs: "console=ttyS0 pyro.vsock=1",
    rootDisk: "/s/disk.raw",
    vsockUds: "/s/v.sock",
    vcpuCount: 1,
    memMib: 512,
  });
  assert.deepEqual(
    plan.map((r) => `${r.method} ${r.path}`),
    [
      "PUT /machine-config",
      "PUT /boot-source",
      "PUT /drives/rootfs",
      "PUT /vsock",
      "PUT /entropy",
      "PUT /actions",
    ],
  );
  assert.deepEqual(plan.at(-1)!.body, { action_type: "InstanceStart" });
  const snap = snapshotPlan({ snapshotPath: "/c/s", memPath: "/c/m" });
  assert.deepEqual(
    [...snap.before, ...snap.after].map((r) => `${r.method} ${r.path}`),
    ["PATCH /vm", "PUT /snapshot/create", "PATCH /vm"],
  );
  const r = restorePlan({
    snapshotPath: "/c/s",
    memPath: "/c/m",
    vsockUds: "/s/v.sock",
    rootDisk: "/s/disk.raw",
  });
  assert.deepEqual(
    r.map((x) => `${x.method} ${x.path}`),
    ["PUT /snapshot/load", "PATCH /drives/rootfs", "PATCH /vm"],
  );
  assert.equal((r[0]!.body as { resume_vm: boolean }).resume_vm, false);
  assert.deepEqual(r[2]!.body, { state: "Resumed" });
});

test("vsock CONNECT handshake lines", () => {
  assert.equal(vsockConnectLine(1024), "CONNECT 1024\n");
  assert.throws(() => vsockConnectLine(0));
  assert.deepEqual(parseVsockReply("OK 1073741824\n"), { ok: true, hostPort: 1073741824 });
  assert.deepEqual(parseVsockReply(""), { ok: false, reason: "connection closed" });
  assert.equal(parseVsockReply("ERR no listener\n").ok, false);
});

test("the LZ4 decoder handles literals, overlapping matches and the kernel's legacy framing", () => {
  // "abcabcabcabc!": 3 literals, a match of 9 at offset 3, then a final literal run.
  const block = Buffer.from([0x35, 0x61, 0x62, 0x63, 0x03, 0x00, 0x10, 0x21]);
  const out = Buffer.alloc(64);
  const n = lz4DecodeBlock(block, 0, block.length, out, 0);
  assert.equal(out.subarray(0, n).toString(), "abcabcabcabc!");
  const framed = Buffer.alloc(8 + block.length + 4);
  framed.writeUInt32LE(0x184c2102, 0);
  framed.writeUInt32LE(block.length, 4);
  block.copy(framed, 8);
  framed.writeUInt32LE(0xffffffff, 8 + block.length); // trailing size word, not a block
  assert.equal(lz4LegacyDecode(framed).toString(), "abcabcabcabc!");
  assert.throws(() => lz4DecodeBlock(Buffer.from([0x0f, 0x05, 0x00]), 0, 3, Buffer.alloc(8), 0), /offset/);
});

test("Debian's bzImage yields an ELF vmlinux (when a guest kernel is cached here)", (t) => {
  const root = join(process.env.HOME ?? "/root", ".cache", "pyro-mcp", "guest-kernels");
  const dir = existsSync(root)
    ? readdirSync(root).find((n) => existsSync(join(root, n, "kernel.json")))
    : undefined;
  if (!dir) return t.skip("skipped: no guest kernel in the cache");
  const boot = join(root, dir, "boot");
  const vmlinuz = readdirSync(boot).find((n) => n.startsWith("vmlinuz-"))!;
  const elf = extractVmlinux(readFileSync(join(boot, vmlinuz)));
  assert.equal(elf.readUInt32BE(0), 0x7f454c46);
  assert.equal(elf[4], 2, "64-bit ELF");
  assert.ok(elf.length > 10 * 1024 * 1024);
});
