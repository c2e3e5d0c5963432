# shellcheck shell=bash
# Shared settings of the test cluster's scripts (sourced, never run). One place names every
# version, port, path and process so up, down and the tests agree on them.
#
# Why these versions (stack "A"): this host has cgroup v1 (hybrid) and no systemd as PID 1.
#   - Kubernetes 1.34.4: the last minor whose kubelet only warns on cgroup v1 (1.35 refuses it
#     unless failCgroupV1: false, KEP-5573) and that still works with containerd 1.7 (1.36 needs
#     containerd 2.x, which Debian has only in sid). Built from the Go module proxy through the
#     wrapper module in k8s-build/ (k8s.io/kubernetes replaces its staging modules with local
#     paths, so `go install ...@v1.34.4` refuses it).
#   - containerd 1.7.24 and etcd-server 3.5.16: Debian trixie's (bookworm's etcd 3.4 is too old
#     for apiserver >= 1.31; trixie's binaries run on bookworm's libc). Fetched with a private apt
#     list + `apt-get download` + `dpkg-deb -x` into the cache: nothing is installed on the host.
#   - CNI plugins: Debian's containernetworking-plugins 1.1.1 (bridge, host-local, loopback).
#   - gVisor: runsc and containerd-shim-runsc-v1 from gvisor.dev/gvisor at the pseudo-version
#     pyro pins (the go branch; the proxy serves only the versions in its list).
#   - agent-sandbox v0.5.6 controller from its Go module; its CRDs come from the module cache.

set -euo pipefail

K8S_VERSION=v1.34.4
CONTAINERD_DEB=containerd=1.7.24~ds1-6+deb13u1
ETCD_DEB=etcd-server=3.5.16-4
CNI_DEB=containernetworking-plugins=1.1.1+ds1-3+b17
AGENT_SANDBOX_VERSION=v0.5.6

CLUSTER_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# gVisor's pin is set-up's (scripts/gvisor-build/go.mod, which install-runsc.sh builds runsc
# from): one version of runsc on the host and in the cluster.
GVISOR_BUILD_MOD="$CLUSTER_LIB_DIR/../gvisor-build"
GVISOR_VERSION="$(sed -n 's/^require gvisor\.dev\/gvisor \(v[^ ]*\)$/\1/p' "$GVISOR_BUILD_MOD/go.mod")"
GVISOR_STAMP="$(printf '%s' "$GVISOR_VERSION" | sed -n 's/^v0\.0\.0-\([0-9]\{14\}\)-\([0-9a-f]\{12\}\)$/go-\1-\2/p')"
# Binaries and images, cached by version: a second `cluster:up` reuses them.
CACHE="${PYRO_CLUSTER_CACHE:-/var/cache/pyro-cluster}"
K8S_BIN="$CACHE/k8s/$K8S_VERSION"
DEB_DIR="$CACHE/debian"
GVISOR_BIN="$CACHE/gvisor/$GVISOR_VERSION"
AS_BIN="$CACHE/agent-sandbox/$AGENT_SANDBOX_VERSION"
IMAGE_DIR="$CACHE/images"
deb_root() { echo "$DEB_DIR/${1%%=*}_${1#*=}"; }
CONTAINERD_BIN="$(deb_root "$CONTAINERD_DEB")/usr/bin"
ETCD_BIN="$(deb_root "$ETCD_DEB")/usr/bin"
CNI_BIN="$(deb_root "$CNI_DEB")/usr/lib/cni"
# Everything one running cluster owns: certs, data, sockets, logs, pids. `down` removes it.
STATE="${PYRO_CLUSTER_DIR:-/run/pyro-cluster}"
PIDS="$STATE/pids"
LOGS="$STATE/logs"
PKI="$STATE/pki"
KUBECONFIG_ADMIN="$STATE/admin.kubeconfig"

# Loopback only. Ports away from the usual defaults so a real cluster on a dev box is untouched.
# Every name below can be moved by its PYRO_CLUSTER_* variable, so a second cluster can run beside
# the first (test/e2e/cluster.test.ts does, to leave a running one alone).
ETCD_PORT="${PYRO_CLUSTER_ETCD_PORT:-23790}"
ETCD_PEER_PORT="${PYRO_CLUSTER_ETCD_PEER_PORT:-23800}"
APISERVER_PORT="${PYRO_CLUSTER_APISERVER_PORT:-16443}"
KUBELET_PORT="${PYRO_CLUSTER_KUBELET_PORT:-20250}"
KUBELET_HEALTHZ_PORT="${PYRO_CLUSTER_KUBELET_HEALTHZ_PORT:-20248}"
AS_METRICS_PORT="${PYRO_CLUSTER_AS_METRICS_PORT:-16480}"
AS_PROBE_PORT="${PYRO_CLUSTER_AS_PROBE_PORT:-16481}"
# The node is named localhost: the apiserver reaches the kubelet by the node's Hostname address
# (kubelet refuses a loopback --node-ip), and localhost resolves to 127.0.0.1 where it listens.
NODE_NAME=localhost
# Private ranges: pods on a bridge of their own; service IPs are only ever virtual (no kube-proxy).
POD_CIDR="${PYRO_CLUSTER_POD_CIDR:-10.244.77.0/24}"
SERVICE_CIDR="${PYRO_CLUSTER_SERVICE_CIDR:-10.96.77.0/24}"
BRIDGE="${PYRO_CLUSTER_BRIDGE:-pyrok8s0}"
CNI_NET="${PYRO_CLUSTER_CNI_NET:-pyro-cluster}"
# cgroup parent of every pod (kubepods lives under it): down removes the subtree.
CGROUP_ROOT="${PYRO_CLUSTER_CGROUP_ROOT:-/pyro-cluster}"
NAMESPACE="${PYRO_CLUSTER_NAMESPACE:-pyro}"
PAUSE_IMAGE=localhost/pyro/pause:3.10-pyro1
DEBIAN_IMAGE=localhost/pyro/debian:12-pyro1

# Host paths the kubelet, containerd and libcni create at fixed places whatever their settings
# (device plugins, /var/log/containers symlinks, shim sockets, CNI results, volume plugins). up.sh
# records which of them the host lacked; down.sh removes exactly those.
HOST_PATHS=(/var/lib/kubelet /var/log/containers /run/containerd /var/lib/cni /usr/libexec/kubernetes)

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] error: %s\n' "$*" >&2; exit 1; }

# start NAME CMD...: runs CMD in its own session (so down can stop its whole process group),
# logs to $LOGS/NAME.log, and records its pid in $PIDS/NAME.pid.
start() {
  local name="$1"; shift
  mkdir -p "$PIDS" "$LOGS"
  if [ -f "$PIDS/$name.pid" ] && kill -0 "$(cat "$PIDS/$name.pid")" 2>/dev/null; then
    log "$name already running (pid $(cat "$PIDS/$name.pid"))"; return 0
  fi
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
  log "$name started (pid $!, log $LOGS/$name.log)"
}

# wait_for WHAT SECONDS CMD...: polls CMD until it succeeds or the deadline passes.
wait_for() {
  local what="$1" secs="$2"; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    # A process of ours that died will never answer: say so now, with its last words.
    if [ -f "$PIDS/$what.pid" ] && ! kill -0 "$(cat "$PIDS/$what.pid")" 2>/dev/null; then
      tail -n 5 "$LOGS/$what.log" >&2
      die "$what exited (log: $LOGS/$what.log)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      die "$what not ready after ${secs}s (logs: $LOGS)"
    fi
    sleep 0.5
  done
}

# The kubelet sets vm.overcommit_memory=1, kernel.panic=10, kernel.panic_on_oops=1 (and keys
# limits) once, when it starts (protectKernelDefaults: true would make it refuse to start instead).
# start-kubelet.sh saves the host's values first, up.sh puts them back once the node is Ready, and
# down.sh does it again.
restore_sysctls() {
  [ -f "$STATE/sysctl.saved" ] || return 0
  local k v
  while read -r k v; do
    if [ "$(cat "/proc/sys/$k" 2>/dev/null)" != "$v" ] && [ -w "/proc/sys/$k" ]; then
      echo "$v" >"/proc/sys/$k" && log "restored ${k//\//.} = $v"
    fi
  done <"$STATE/sysctl.saved"
}

kctl() { "${PYRO_CLUSTER_KUBECTL:-$K8S_BIN/kubectl}" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
