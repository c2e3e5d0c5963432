import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { buildCpio } from "../../src/engines/guest-image/cpio.js";
import { imageSizeBytes, rootImageDigest } from "../../src/engines/guest-image/image.js";
import { INIT_SCRIPT } from "../../src/engines/guest-image/initramfs.js";
import { modinfoDepends, moduleName, resolveModules } from "../../src/engines/guest-image/kernel.js";
import { isStaticElf } from "../../src/util/static-binaries.js";
import { tempDir } from "../helpers.js";

/** A reader for the newc records buildCpio writes (what the kernel's unpacker checks). */
function readCpio(buf: Buffer) {
  const out: { name: string; mode: number; data: Buffer; rdev: [number, number] }[] = [];
  let off = 0;
  const pad = (n: number) => (4 - (n % 4)) % 4;
  for (;;) {
    assert.equal(buf.toString("ascii", off, off + 6), "070701", `bad magic at ${off}`);
    const f = (i: number) => Number.parseInt(buf.toString("ascii", off + 6 + i * 8, off + 14 + i * 8), 16);
    const mode = f(1);
    const size = f(6);
    const namesize = f(11);
    const name = buf.toString("utf8", off + 110, off + 110 + namesize - 1);
    assert.equal(buf[off + 110 + namesize - 1], 0);
    let p = off + 110 + namesize;
    p += pad(110 + namesize);
    const data = buf.subarray(p, p + size);
    p += size + pad(size);
    if (name === "TRAILER!!!") return out;
    out.push({ name, mode, data, rdev: [f(9), f(10)] });
    off = p;
  }
}

test("buildCpio writes aligned newc records the way the kernel unpacks them", () => {
  const buf = buildCpio([
    { kind: "dir", name: "bin" },
    { kind: "file", name: "init", data: Buffer.from("#!/bin/sh\n"), mode: 0o755 },
    { kind: "symlink", name: "bin/sh", target: "busybox" },
    { kind: "chardev", name: "dev/console", major: 5, minor: 1 },
    { kind: "file", name: "odd", data: Buffer.from("x") },
  ]);
  assert.equal(buf.length % 4, 0);
  const e = readCpio(buf);
  assert.deepEqual(
    e.map((x) => [x.name, x.mode.toString(8)]),
    [
      ["bin", "40755"],
      ["init", "100755"],
      ["bin/sh", "120777"],
      ["dev/console", "20600"],
      ["odd", "100644"],
    ],
  );
  assert.equal(e[1]!.data.toString(), "#!/bin/sh\n");
  assert.equal(e[2]!.data.toString(), "busybox");
  assert.deepEqual(e[3]!.rdev, [5, 1]);
  assert.throws(() => buildCpio([{ kind: "dir", name: "../escape" }]));
  // Deterministic: the initramfs is cached by the digest of its inputs.
  assert.deepEqual(
    buildCpio([{ kind: "file", name: "a", data: Buffer.from("1") }]),
    buildCpio([{ kind: "file", name: "a", data: Buffer.from("1") }]),
  );
});

test("module dependencies come from .modinfo and resolve dependencies-first", async () => {
  assert.deepEqual(
    modinfoDepends(Buffer.from("\0license=GPL\0depends=virtio,virtio_ring\0name=virtio_blk\0")),
    ["virtio", "virtio_ring"],
  );
  assert.deepEqual(modinfoDepends(Buffer.from("\0depends=\0")), []);
  assert.equal(moduleName("virtio-rng.ko"), "virtio_rng");
  assert.equal(moduleName("ext4.ko.xz"), "ext4");
  const dir = await tempDir("pyro-mods-");
  try {
    const kdir = join(dir, "kernel", "drivers");
    await mkdir(kdir, { recursive: true });
    const mod = (name: string, deps: string) =>
      writeFile(join(kdir, `${name}.ko`), `\0depends=${deps}\0name=${name}\0`);
    await mod("virtio_ring", "");
    await mod("virtio", "virtio_ring");
    await mod("virtio_blk", "virtio,virtio_ring");
    await mod("virtio_mmio", "virtio,virtio_ring");
    await writeFile(join(dir, "modules.builtin"), "kernel/fs/ext4/ext4.ko\n");
    const order = await resolveModules(dir, ["virtio_mmio", "virtio_blk"], ["ext4", "virtio_rng"]);
    assert.deepEqual(
      order.map((m) => m.name),
      ["virtio_ring", "virtio", "virtio_mmio", "virtio_blk"],
    );
    await assert.rejects(resolveModules(dir, ["virtio_net"]), /virtio_net not found/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("only static executables qualify as busybox/agent for the initramfs", async () => {
  assert.equal(isStaticElf(await readFile("/bin/sh")), false);
  assert.equal(isStaticElf(Buffer.from("#!/bin/sh\n")), false);
  if (existsSync("/bin/busybox") && !isStaticElf(await readFile("/bin/busybox"))) return;
  if (existsSync("/bin/busybox")) assert.equal(isStaticElf(await readFile("/bin/busybox")), true);
});

test("the init script hands over to the agent and fails loudly", () => {
  assert.match(INIT_SCRIPT, /exec switch_root \/newroot \/run\/pyro\/pyro-agent --vm/);
  assert.match(INIT_SCRIPT, /pyro-init: FAILED/);
  assert.match(INIT_SCRIPT, /pyro\.probe=1/);
});

test("disk images leave room for workspaces and are keyed by rootfs identity", () => {
  const gib = 1024 ** 3;
  assert.equal(imageSizeBytes(100 * 1024 ** 2), 4 * gib);
  assert.ok(imageSizeBytes(3 * gib) >= 8 * gib);
  assert.equal(imageSizeBytes(123_456_789) % (1024 * 1024), 0);
  assert.notEqual(rootImageDigest("a@1"), rootImageDigest("a@2"));
});
