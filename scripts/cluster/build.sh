#!/usr/bin/env bash
# Builds or fetches everything the test cluster runs (cached by version; a second call costs
# seconds): Debian's containerd/etcd/CNI, Kubernetes, gVisor's shim, the agent-sandbox
# controller and the two images. up.sh calls it first. It holds a lock, so `npm test` can start
# it early in the background (scripts/run-tests.mjs) and a later up.sh waits for it instead of
# building the same things twice.
source "$(dirname "$0")/lib.sh"
d="$CLUSTER_LIB_DIR"
mkdir -p "$CACHE"
exec 9>"$CACHE/build.lock"
flock 9
t0=$SECONDS
"$d/fetch-debs.sh"
"$d/build-k8s.sh"
"$d/build-gvisor.sh"
"$d/build-agent-sandbox.sh"
"$d/images.sh"
log "everything built or cached in $((SECONDS - t0))s"
