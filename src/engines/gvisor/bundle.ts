import type { SandboxSpec } from "../types.js";

/** The subset of the OCI runtime spec pyro writes (no typings for it are published on npm). */
export interface OciConfig {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number };
    args: string[];
    env: string[];
    cwd: string;
    capabilities?: Record<string, string[]>;
    rlimits?: { type: string; hard: number; soft: number }[];
    noNewPrivileges?: boolean;
  };
  root: { path: string; readonly: boolean };
  annotations?: Record<string, string>;
  hostname: string;
  mounts: { destination: string; type: string; source: string; options?: string[] }[];
  linux: {
    namespaces: { type: string; path?: string }[];
    resources?: {
      memory?: { limit: number };
      cpu?: { quota: number; period: number; shares?: number };
      pids?: { limit: number };
    };
  };
}

/** Where the sandbox init and its control directory appear inside the sandbox. */
export const INIT_IN_GUEST = "/.pyro/init";
/**
 * The sandbox init enforces each command's deadline inside the sandbox, so a command ends on
 * time even when the pyro process that started it was killed. The host's own timer fires
 * first (and reports the timeout); the one inside is the backstop, this much later. Here, not
 * in engine.ts, so the CLI's fast path (cli/fast-run.ts) takes it without the engine.
 */
export const IN_SANDBOX_DEADLINE_GRACE_MS = 1_500;
export const CTL_IN_GUEST = "/.pyro/ctl";
/** Shells' and services' files (see `init supervise`): read-write, outside /workspace. */
export const RUN_IN_GUEST = "/.pyro/run";
/**
 * The init's exec channel (`init idle --listen`): a directory only the guest's root can enter,
 * bound read-write so the init can create its socket on the host (runsc --host-uds=create).
 */
export const SOCK_IN_GUEST = "/.pyro/sock";
export const EXEC_SOCKET = "exec.sock";
export const HOSTNAME = "pyro";

export const HOSTS_FILE = `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${HOSTNAME}\n`;

export const GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export function guestEnv(extra: Record<string, string> = {}): string[] {
  const base: Record<string, string> = {
    PATH: GUEST_PATH,
    HOME: "/root",
    LANG: "C.UTF-8",
    TERM: "dumb",
    ...extra,
  };
  return Object.entries(base).map(([k, v]) => `${k}=${v}`);
}

const CAPS = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_MKNOD",
  "CAP_AUDIT_WRITE",
  "CAP_SETFCAP",
];

/**
 * Builds the OCI config for one sandbox. The root is the shared environment rootfs; runsc's
 * `--overlay2=root:memory` puts an in-memory upper layer over it, so the guest can write
 * anywhere while the cached rootfs is never modified. `/workspace`, when given, is a
 * read-write bind of a host directory under pyro's state dir.
 */
/** Host files pyro mounts read-only into every sandbox (see engine.ts). */
export interface SandboxMounts {
  /** The static sandbox init, at /.pyro/init. */
  init: string;
  /** A host directory the init reads its expiry from, at /.pyro/ctl (persistent sandboxes). */
  ctlDir?: string;
  /** A host directory shared read-write at /.pyro/run: shells' and services' files. */
  runDir?: string;
  /** A host directory (mode 0700) at /.pyro/sock where the init creates its exec socket. */
  sockDir?: string;
  /** /etc/hosts with localhost and the sandbox's hostname: many rootfs trees have none. */
  hostsFile?: string;
  /**
   * The environment as an EROFS image, read by the sentry itself (see util/erofs.ts); the OCI
   * root is then `emptyRoot`, an empty directory of ours, so nothing is ever created in the
   * shared environment tree (runsc makes mount points in a directory root).
   */
  rootfsImage?: { image: string; emptyRoot: string };
  /**
   * With network: the sandbox's own network namespace and the resolv.conf made for it (see
   * network/netns.ts); `netstack`: runsc runs with --network=sandbox (net-route.ts), so the
   * spec names the namespace for runsc to join and take its interfaces from.
   */
  net?: { nsPath: string; resolvConf: string; netstack?: boolean };
}

/**
 * Boots the config from an EROFS image instead of its root directory: the sentry reads the
 * image (owners and modes as recorded in it) and writes go to memory, as
 * `--overlay2=root:memory` does for a directory root.
 */
export function useRootfsImage(config: OciConfig, img: { image: string; emptyRoot: string }): OciConfig {
  return {
    ...config,
    root: { path: img.emptyRoot, readonly: false },
    annotations: {
      ...config.annotations,
      "dev.gvisor.spec.rootfs.type": "erofs",
      "dev.gvisor.spec.rootfs.source": img.image,
      "dev.gvisor.spec.rootfs.overlay": "memory",
    },
  };
}

function bind(destination: string, source: string, mode: "ro" | "rw"): OciConfig["mounts"][number] {
  return { destination, type: "bind", source, options: ["rbind", mode] };
}

export function buildOciConfig(
  spec: SandboxSpec,
  /** `user`: the process's own user, over the spec's (the idle init is root whatever the image says). */
  process: { args: string[]; cwd: string; env?: Record<string, string>; user?: { uid: number; gid: number } },
  extra?: SandboxMounts,
  /** The host cgroup's task limit (see pids.ts: the backstop of the init's guest limit). */
  hostPids?: number,
  /** The host cgroup's CPU weight (see util/priority.ts: below pyro's own processes). */
  cpuShares?: number,
): OciConfig {
  const mounts: OciConfig["mounts"] = [
    { destination: "/proc", type: "proc", source: "proc" },
    {
      destination: "/dev",
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
  ];
  if (spec.workspaceDir) mounts.push(bind("/workspace", spec.workspaceDir, "rw"));
  if (extra) {
    mounts.push(bind(INIT_IN_GUEST, extra.init, "ro"));
    if (extra.ctlDir) mounts.push(bind(CTL_IN_GUEST, extra.ctlDir, "ro"));
    if (extra.runDir) mounts.push(bind(RUN_IN_GUEST, extra.runDir, "rw"));
    if (extra.sockDir) mounts.push(bind(SOCK_IN_GUEST, extra.sockDir, "rw"));
    if (extra.hostsFile) mounts.push(bind("/etc/hosts", extra.hostsFile, "ro"));
  }
  if (spec.network && extra?.net) mounts.push(bind("/etc/resolv.conf", extra.net.resolvConf, "ro"));
  const config: OciConfig = {
    ociVersion: "1.0.0",
    process: {
      terminal: false,
      user: process.user ?? spec.user ?? { uid: 0, gid: 0 },
      args: process.args,
      env: guestEnv(process.env),
      cwd: process.cwd,
      capabilities: { bounding: CAPS, effective: CAPS, permitted: CAPS },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 65536, soft: 65536 }],
      noNewPrivileges: false,
    },
    root: { path: spec.rootfs, readonly: false },
    hostname: HOSTNAME,
    mounts,
    linux: {
      // Without network a namespace of runsc's own holds just loopback. With it on the
      // netstack route, runsc joins the namespace pyro made (named here) and moves its eth0
      // into gVisor's stack; on the host-stack route runsc is started inside that namespace
      // (see engine.ts, `inNetns`) with --network=host and the sandbox inherits it: no entry.
      namespaces: [
        { type: "pid" },
        ...(spec.network && extra?.net
          ? extra.net.netstack
            ? [{ type: "network", path: extra.net.nsPath }]
            : []
          : [{ type: "network" }]),
        { type: "ipc" },
        { type: "uts" },
        { type: "mount" },
      ],
      resources: {
        memory: { limit: spec.memMib * 1024 * 1024 },
        cpu: {
          quota: spec.vcpuCount * 100_000,
          period: 100_000,
          ...(cpuShares ? { shares: cpuShares } : {}),
        },
        ...(hostPids ? { pids: { limit: hostPids } } : {}),
      },
    },
  };
  return extra?.rootfsImage ? useRootfsImage(config, extra.rootfsImage) : config;
}
