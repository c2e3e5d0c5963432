#!/usr/bin/env bash
# Builds the Kubernetes commands the cluster runs (apiserver, controller-manager, scheduler,
# kubelet, kubectl) from the Go module proxy into $K8S_BIN, one at a time (the linker peaks at
# 2-3 GiB per binary), skipping any already cached. The wrapper module is k8s-build/.
source "$(dirname "$0")/lib.sh"
command -v go >/dev/null || die "go is not installed; install Go >= 1.24 (https://go.dev/dl) and retry"
mkdir -p "$K8S_BIN"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34"
ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do
  [ -x "$K8S_BIN/$cmd" ] && continue
  log "building $cmd $K8S_VERSION (cold: several minutes; cached afterwards in $K8S_BIN)"
  t0=$SECONDS
  (cd "$CLUSTER_LIB_DIR/k8s-build" && go build -o "$K8S_BIN/$cmd.tmp" -ldflags "$ldflags" "k8s.io/kubernetes/cmd/$cmd")
  mv "$K8S_BIN/$cmd.tmp" "$K8S_BIN/$cmd"
  log "built $cmd in $((SECONDS - t0))s"
done
