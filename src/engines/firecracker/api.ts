/**
 * Firecracker's REST API (HTTP/1.1 over a unix socket), as documented by its OpenAPI spec
 * (src/firecracker/swagger/firecracker.yaml): typed request bodies and pure builders for the
 * calls pyro makes. Unit-tested; the engine sends them with node:http.
 */

export interface ApiRequest {
  method: "GET" | "PUT" | "PATCH";
  path: string;
  body?: unknown;
}

/** PUT /boot-source */
export interface BootSource {
  kernel_image_path: string;
  initrd_path?: string;
  boot_args?: string;
}

/** PUT /drives/{drive_id} (virtio-block) */
export interface Drive {
  drive_id: string;
  path_on_host: string;
  is_root_device: boolean;
  is_read_only: boolean;
  cache_type?: "Unsafe" | "Writeback";
  io_engine?: "Sync" | "Async";
}

/** PATCH /drives/{drive_id} (post-boot, or between snapshot load and resume) */
export interface PartialDrive {
  drive_id: string;
  path_on_host?: string;
}

/** PUT /machine-config */
export interface MachineConfiguration {
  vcpu_count: number;
  mem_size_mib: number;
  smt?: boolean;
  track_dirty_pages?: boolean;
}

/** PUT /vsock: host-initiated connections go through `uds_path` with `CONNECT <port>\n`. */
export interface Vsock {
  guest_cid: number;
  uds_path: string;
}

/** PUT /network-interfaces/{iface_id}: Firecracker networking needs a host TAP device. */
export interface NetworkInterface {
  iface_id: string;
  host_dev_name: string;
  guest_mac?: string;
}

/** PUT /actions */
export interface InstanceActionInfo {
  action_type: "InstanceStart" | "SendCtrlAltDel" | "FlushMetrics";
}

/** PATCH /vm */
export interface VmState {
  state: "Paused" | "Resumed";
}

/** PUT /snapshot/create (the VM must be paused) */
export interface SnapshotCreateParams {
  snapshot_path: string;
  mem_file_path: string;
  snapshot_type?: "Full" | "Diff";
}

/** PUT /snapshot/load (only on a fresh Firecracker process) */
export interface SnapshotLoadParams {
  snapshot_path: string;
  mem_backend: { backend_type: "File" | "Uffd"; backend_path: string };
  resume_vm?: boolean;
  track_dirty_pages?: boolean;
  vsock_override?: { uds_path: string };
}

/** PUT /entropy: virtio-rng for the guest. */
export type EntropyDevice = Record<string, never>;

export const ROOT_DRIVE_ID = "rootfs";
/** Guest CIDs 0-2 are reserved; every VM has its own vsock device, so one CID serves all. */
export const GUEST_CID = 3;

export function bootSource(b: { kernel: string; initrd?: string; bootArgs?: string }): ApiRequest {
  const body: BootSource = {
    kernel_image_path: b.kernel,
    ...(b.initrd ? { initrd_path: b.initrd } : {}),
    ...(b.bootArgs ? { boot_args: b.bootArgs } : {}),
  };
  return { method: "PUT", path: "/boot-source", body };
}

function checkId(kind: string, id: string): string {
  if (!/^[A-Za-z0-9_]{1,64}$/.test(id))
    throw new Error(`invalid Firecracker ${kind} id ${JSON.stringify(id)}`);
  return id;
}

export function drive(d: { id: string; path: string; root: boolean; readOnly: boolean }): ApiRequest {
  const body: Drive = {
    drive_id: checkId("drive", d.id),
    path_on_host: d.path,
    is_root_device: d.root,
    is_read_only: d.readOnly,
  };
  return { method: "PUT", path: `/drives/${body.drive_id}`, body };
}

export function patchDrive(id: string, path: string): ApiRequest {
  const body: PartialDrive = { drive_id: checkId("drive", id), path_on_host: path };
  return { method: "PATCH", path: `/drives/${body.drive_id}`, body };
}

/** Firecracker takes 1-32 vCPUs; memory in MiB. SMT stays off, so odd counts are fine. */
export function machineConfig(m: { vcpuCount: number; memMib: number }): ApiRequest {
  if (!Number.isInteger(m.vcpuCount) || m.vcpuCount < 1 || m.vcpuCount > 32) {
    throw new Error(`Firecracker supports 1-32 vCPUs, not ${m.vcpuCount}`);
  }
  if (!Number.isInteger(m.memMib) || m.memMib < 128) throw new Error(`invalid memory size ${m.memMib} MiB`);
  const body: MachineConfiguration = { vcpu_count: m.vcpuCount, mem_size_mib: m.memMib, smt: false };
  return { method: "PUT", path: "/machine-config", body };
}

export function vsock(udsPath: string, cid = GUEST_CID): ApiRequest {
  if (!Number.isInteger(cid) || cid < 3) throw new Error(`guest CID must be >= 3, not ${cid}`);
  const body: Vsock = { guest_cid: cid, uds_path: udsPath };
  return { method: "PUT", path: "/vsock", body };
}

export function networkInterface(n: { id: string; tap: string; mac?: string }): ApiRequest {
  const body: NetworkInterface = {
    iface_id: checkId("interface", n.id),
    host_dev_name: n.tap,
    ...(n.mac ? { guest_mac: n.mac } : {}),
  };
  return { method: "PUT", path: `/network-interfaces/${body.iface_id}`, body };
}

export function entropy(): ApiRequest {
  const body: EntropyDevice = {};
  return { method: "PUT", path: "/entropy", body };
}

export function action(type: InstanceActionInfo["action_type"]): ApiRequest {
  const body: InstanceActionInfo = { action_type: type };
  return { method: "PUT", path: "/actions", body };
}

export function setVmState(state: VmState["state"]): ApiRequest {
  const body: VmState = { state };
  return { method: "PATCH", path: "/vm", body };
}

export function snapshotCreate(s: { snapshotPath: string; memPath: string }): ApiRequest {
  const body: SnapshotCreateParams = {
    snapshot_type: "Full",
    snapshot_path: s.snapshotPath,
    mem_file_path: s.memPath,
  };
  return { method: "PUT", path: "/snapshot/create", body };
}

export function snapshotLoad(s: {
  snapshotPath: string;
  memPath: string;
  resume: boolean;
  vsockUds?: string;
}): ApiRequest {
  const body: SnapshotLoadParams = {
    snapshot_path: s.snapshotPath,
    mem_backend: { backend_type: "File", backend_path: s.memPath },
    resume_vm: s.resume,
    ...(s.vsockUds ? { vsock_override: { uds_path: s.vsockUds } } : {}),
  };
  return { method: "PUT", path: "/snapshot/load", body };
}

export interface BootPlanSpec {
  kernel: string;
  initrd: string;
  bootArgs: string;
  rootDisk: string;
  vsockUds: string;
  vcpuCount: number;
  memMib: number;
  tap?: string;
}

/** Everything a cold boot sends, in order: configuration first, InstanceStart last. */
export function bootPlan(s: BootPlanSpec): ApiRequest[] {
  return [
    machineConfig({ vcpuCount: s.vcpuCount, memMib: s.memMib }),
    bootSource({ kernel: s.kernel, initrd: s.initrd, bootArgs: s.bootArgs }),
    drive({ id: ROOT_DRIVE_ID, path: s.rootDisk, root: true, readOnly: false }),
    vsock(s.vsockUds),
    entropy(),
    ...(s.tap ? [networkInterface({ id: "eth0", tap: s.tap })] : []),
    action("InstanceStart"),
  ];
}

/** Pause, write the snapshot, (the caller copies the disk), resume. */
export function snapshotPlan(s: { snapshotPath: string; memPath: string }): {
  before: ApiRequest[];
  after: ApiRequest[];
} {
  return { before: [setVmState("Paused"), snapshotCreate(s)], after: [setVmState("Resumed")] };
}

/**
 * Restore into a fresh process: load paused (with this VM's own vsock socket), point the
 * root drive at this VM's own copy of the disk, then resume.
 */
export function restorePlan(s: {
  snapshotPath: string;
  memPath: string;
  vsockUds: string;
  rootDisk: string;
}): ApiRequest[] {
  return [
    snapshotLoad({ snapshotPath: s.snapshotPath, memPath: s.memPath, resume: false, vsockUds: s.vsockUds }),
    patchDrive(ROOT_DRIVE_ID, s.rootDisk),
    setVmState("Resumed"),
  ];
}

/** Firecracker answers `CONNECT <port>\n` on the vsock socket with `OK <host port>\n`. */
export function vsockConnectLine(port: number): string {
  if (!Number.isInteger(port) || port < 1 || port > 0xffffffff) throw new Error(`invalid vsock port ${port}`);
  return `CONNECT ${port}\n`;
}

export function parseVsockReply(
  line: string,
): { ok: true; hostPort: number } | { ok: false; reason: string } {
  const m = /^OK (\d+)\r?\n?$/.exec(line);
  if (m) return { ok: true, hostPort: Number(m[1]) };
  return { ok: false, reason: line.trim() || "connection closed" };
}
