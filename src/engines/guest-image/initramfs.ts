import { createHash } from "node:crypto";
import { mkdir, open, readFile, rename, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { PyroError } from "../../core/errors.js";
import { ignore } from "../../util/best-effort.js";
import { ensureStaticBinary, readStaticBinary } from "../../util/static-binaries.js";
import { buildCpio, type CpioEntry } from "./cpio.js";
import { type GuestKernel, resolveModules } from "./kernel.js";

/** Bumped when the init script or layout changes, so cached initramfs files are rebuilt. */
export const INITRAMFS_VERSION = 2;

/** Modules every guest loads (virtio transport, disk, agent channel, entropy), in dependency order. */
export const BASE_MODULES = ["virtio_mmio", "virtio_blk", "virtio_console"] as const;
export const OPTIONAL_BASE_MODULES = ["virtio_rng", "ext4"] as const;
/** Loaded only when the guest has a network device (pyro.net=1). */
export const NET_MODULES = ["virtio_net"] as const;
/** Loaded only for Firecracker guests, whose agent channel is virtio-vsock (pyro.vsock=1). */
export const VSOCK_MODULES = ["vmw_vsock_virtio_transport"] as const;
/** The guest vsock port the agent listens on under Firecracker. */
export const AGENT_VSOCK_PORT = 1024;

const AGENT_HINT = "run `npm run build` (compiles guest/agent.c with `cc -static`), or set PYRO_GUEST_AGENT";
const BUSYBOX_HINT =
  "install busybox-static (`sudo scripts/setup-host.sh`), or set PYRO_BUSYBOX to a static busybox";

/**
 * /init of the initramfs (busybox sh). Loads the virtio modules, mounts the root disk,
 * configures networking when asked, then switch_roots into the root disk with the agent as
 * PID 1. `pyro.probe=1` stops right after the modules load: engine probes boot to there.
 * Any failure prints "pyro-init: FAILED" and reboots, which QEMU (-no-reboot) turns into an exit.
 */
export const INIT_SCRIPT = `#!/bin/sh
export PATH=/bin
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
fail() { echo "pyro-init: $*"; echo "pyro-init: FAILED"; reboot -f; exit 1; }
net=0; probe=0; vsock=0
for a in $(cat /proc/cmdline); do
  case "$a" in pyro.net=1) net=1 ;; pyro.probe=1) probe=1 ;; pyro.vsock=1) vsock=1 ;; esac
done
load() { while read -r m; do if [ -n "$m" ]; then insmod "/lib/modules/$m.ko" || echo "pyro-init: insmod $m failed"; fi; done < "$1"; }
load /modules
[ "$net" = 1 ] && load /modules.net
[ "$vsock" = 1 ] && load /modules.vsock
if [ "$probe" = 1 ]; then echo "PYRO-PROBE-OK"; reboot -f; exit 0; fi
i=0
while [ ! -b /dev/vda ]; do i=$((i+1)); [ $i -gt 1000 ] && fail "no root disk /dev/vda"; usleep 10000; done
mkdir -p /newroot
mount -t ext4 -o rw,noatime /dev/vda /newroot || fail "cannot mount the root disk"
for d in proc sys dev run tmp workspace; do mkdir -p /newroot/$d; done
chmod 1777 /newroot/tmp
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /newroot/run
mkdir -p /newroot/run/pyro
cp /pyro-agent /bin/busybox /newroot/run/pyro/
ip link set lo up
hostname pyro
# Minimal images have no /etc/hosts; test suites resolve localhost.
[ -s /newroot/etc/hosts ] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tpyro\n' > /newroot/etc/hosts
if [ "$net" = 1 ]; then
  ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2 || echo "pyro-init: network setup failed"
  rm -f /newroot/etc/resolv.conf
  echo "nameserver 10.0.2.3" > /newroot/etc/resolv.conf
fi
mount --move /dev /newroot/dev
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /newroot/dev/pts
mount -t tmpfs -o nosuid,nodev tmpfs /newroot/dev/shm
if [ "$vsock" = 1 ]; then exec switch_root /newroot /run/pyro/pyro-agent --vm --vsock ${AGENT_VSOCK_PORT}; fi
exec switch_root /newroot /run/pyro/pyro-agent --vm
`;

/**
 * The static guest agent: PYRO_GUEST_AGENT, else dist/guest/pyro-agent (built by
 * `npm run build`), else compiled from guest/agent.c into the cache when a C compiler exists.
 */
export function ensureAgentBinary(cacheDir: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return ensureStaticBinary(
    { name: "pyro-agent", source: "agent.c", envVar: "PYRO_GUEST_AGENT", hint: AGENT_HINT },
    cacheDir,
    env,
  );
}

export async function findBusybox(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const candidates = env.PYRO_BUSYBOX
    ? [env.PYRO_BUSYBOX]
    : ["/bin/busybox", "/usr/bin/busybox", "/usr/lib/initramfs-tools/bin/busybox"];
  for (const c of candidates) if (await readStaticBinary(c)) return c;
  throw new PyroError(
    "host_dependency_missing",
    "no static busybox found for the guest initramfs",
    BUSYBOX_HINT,
  );
}

export interface InitramfsInfo {
  path: string;
  digest: string;
}

/**
 * Builds (or reuses) the initramfs for this kernel + agent + busybox: an uncompressed cpio
 * (the guest need not inflate it, which matters under TCG), cached by content digest.
 */
export async function ensureInitramfs(
  cacheDir: string,
  kernel: GuestKernel,
  agentPath: string,
  busyboxPath: string,
): Promise<InitramfsInfo> {
  const base = await resolveModules(kernel.modulesDir, BASE_MODULES, OPTIONAL_BASE_MODULES);
  const baseNames = new Set(base.map((m) => m.name));
  const net = (await resolveModules(kernel.modulesDir, NET_MODULES)).filter((m) => !baseNames.has(m.name));
  const vsock = (await resolveModules(kernel.modulesDir, [], VSOCK_MODULES)).filter(
    (m) => !baseNames.has(m.name),
  );
  const agent = await readFile(agentPath);
  const busybox = await readFile(busyboxPath);
  const h = createHash("sha256");
  h.update(`v${INITRAMFS_VERSION}\0${kernel.release}\0${INIT_SCRIPT}\0`);
  h.update(agent).update(busybox);
  const mods: { name: string; data: Buffer }[] = [];
  for (const m of [...base, ...net, ...vsock]) {
    const data = await readFile(m.path);
    mods.push({ name: m.name, data });
    h.update(`${m.name}\0`).update(data);
  }
  h.update(
    `${base.map((m) => m.name).join(",")}|${net.map((m) => m.name).join(",")}|${vsock.map((m) => m.name).join(",")}`,
  );
  const digest = h.digest("hex").slice(0, 24);
  const path = join(cacheDir, "guest-images", `initramfs-${digest}.cpio`);
  if (await stat(path).catch(ignore("no cached initramfs: it is built"))) return { path, digest };
  const entries: CpioEntry[] = [
    { kind: "dir", name: "bin" },
    { kind: "dir", name: "dev" },
    { kind: "chardev", name: "dev/console", major: 5, minor: 1 },
    { kind: "dir", name: "proc" },
    { kind: "dir", name: "sys" },
    { kind: "dir", name: "newroot" },
    { kind: "dir", name: "lib" },
    { kind: "dir", name: "lib/modules" },
    { kind: "file", name: "bin/busybox", data: busybox, mode: 0o755 },
    { kind: "file", name: "pyro-agent", data: agent, mode: 0o755 },
    { kind: "file", name: "init", data: Buffer.from(INIT_SCRIPT), mode: 0o755 },
    { kind: "file", name: "modules", data: Buffer.from(base.map((m) => `${m.name}\n`).join("")) },
    { kind: "file", name: "modules.net", data: Buffer.from(net.map((m) => `${m.name}\n`).join("")) },
    { kind: "file", name: "modules.vsock", data: Buffer.from(vsock.map((m) => `${m.name}\n`).join("")) },
  ];
  for (const applet of [
    "sh",
    "mount",
    "insmod",
    "mkdir",
    "cat",
    "cp",
    "rm",
    "chmod",
    "ip",
    "hostname",
    "reboot",
    "usleep",
    "switch_root",
    "sleep",
    "echo",
    "ls",
  ]) {
    entries.push({ kind: "symlink", name: `bin/${applet}`, target: "busybox" });
  }
  for (const m of mods) entries.push({ kind: "file", name: `lib/modules/${m.name}.ko`, data: m.data });
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await open(tmp, "w");
  try {
    await fh.writeFile(buildCpio(entries));
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  return { path, digest };
}
