#!/usr/bin/env bash
# Starts containerd (Debian trixie's 1.7.24) with private root, state, sockets and CNI config
# under $STATE, gVisor (runsc) as the default and only runtime (Debian's runc for trixie needs a
# newer libc than this host's, and every pod here is meant to run in gVisor), the locally built
# pause image, and the streaming server on 127.0.0.1. Then imports the cluster's images.
source "$(dirname "$0")/lib.sh"
cd="$STATE/containerd"
mkdir -p "$cd/root" "$cd/state" "$STATE/cni/net.d" "$STATE/cni/ipam" "$STATE/runsc"
# Pod network: a bridge of its own on a private /24. No gateway address on the host and no
# masquerade: pods reach each other and nothing else (no iptables rules to clean up either).
cat >"$STATE/cni/net.d/10-$CNI_NET.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "$CNI_NET", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": false, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "dataDir": "$STATE/cni/ipam"}},
  {"type": "loopback"}]}
JSON
# The runsc shim's options: runsc binary and root of our own; the sandbox's network stack owns the
# pod's veth (network=sandbox), systrap as pyro's gVisor engine uses.
cat >"$STATE/runsc.toml" <<TOML
binary_name = "$GVISOR_BIN/runsc"
root = "$STATE/runsc"
[runsc_config]
  platform = "systrap"
  network = "sandbox"
TOML
cat >"$STATE/containerd.toml" <<TOML
version = 2
root = "$cd/root"
state = "$cd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$STATE/containerd.sock"
[ttrpc]
  address = "$STATE/containerd.sock.ttrpc"
[debug]
  address = "$STATE/containerd-debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$cd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  # Never ask for an oom_score_adj below containerd's own (the pause container's -998): lowering
  # it needs CAP_SYS_RESOURCE, which containers and sandboxed VMs (this project's CI) do not have.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runsc"
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc]
      runtime_type = "io.containerd.runsc.v1"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc.options]
        TypeUrl = "io.containerd.runsc.v1.options"
        ConfigPath = "$STATE/runsc.toml"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$STATE/cni/net.d"
    max_conf_num = 1
TOML
# containerd finds the shim (containerd-shim-runsc-v1) on PATH.
start containerd env PATH="$GVISOR_BIN:$CONTAINERD_BIN:$PATH" "$CONTAINERD_BIN/containerd" --config "$STATE/containerd.toml"
ctr() { "$CONTAINERD_BIN/ctr" --address "$STATE/containerd.sock" -n k8s.io "$@"; }
wait_for containerd 30 ctr version
for img in pause debian; do
  ctr images import "$IMAGE_DIR/$img.tar" >/dev/null
done
log "images: $(ctr images ls -q | tr '\n' ' ')"
