#!/usr/bin/env bash
# Says why this machine cannot run the test cluster (one line on stdout, exit 1), or nothing
# (exit 0). up.sh runs it first; test/e2e/support/cluster.ts turns its line into a test skip.
source "$(dirname "$0")/lib.sh"
no() { echo "$*"; exit 1; }
[ "$(uname -s)" = Linux ] || no "the test cluster runs on Linux only"
[ "$(id -u)" = 0 ] || no "the test cluster needs root (kubelet, containerd and runsc manage mounts, cgroups and network namespaces)"
[ -d /sys/fs/cgroup/memory ] || [ -f /sys/fs/cgroup/cgroup.controllers ] || no "no cgroup memory controller under /sys/fs/cgroup"
grep -qw overlay /proc/filesystems || no "the kernel has no overlay filesystem (containerd's snapshotter needs it)"
for tool in curl openssl cc tar sha256sum ip node; do
  command -v "$tool" >/dev/null || no "$tool is not installed (run scripts/setup-host.sh, or apt-get install it)"
done
for spec in "$CONTAINERD_DEB" "$ETCD_DEB" "$CNI_DEB"; do
  [ -d "$(deb_root "$spec")" ] && continue
  command -v apt-get >/dev/null && [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] ||
    no "containerd, etcd and the CNI plugins come from Debian packages: needs apt-get and debian-archive-keyring"
done
built=1
for b in "$K8S_BIN"/{kube-apiserver,kube-controller-manager,kube-scheduler,kubelet,kubectl} \
         "$GVISOR_BIN"/{runsc,containerd-shim-runsc-v1} "$AS_BIN/agent-sandbox-controller"; do
  [ -x "$b" ] || built=0
done
[ $built = 1 ] || command -v go >/dev/null ||
  no "Kubernetes, gVisor's shim and the agent-sandbox controller are built from Go modules: install Go >= 1.26 (https://go.dev/dl)"
exit 0
