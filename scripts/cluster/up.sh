#!/usr/bin/env bash
# `npm run cluster:up`: builds or fetches what is missing (cached by version), starts a
# single-node cluster on loopback, and prints the admin kubeconfig's path as the LAST line of
# stdout (everything else goes to stderr). Idempotent: pieces already running are left alone.
# `npm run cluster:down` (down.sh) removes everything this started.
source "$(dirname "$0")/lib.sh"
d="$CLUSTER_LIB_DIR"
why="$("$d/check.sh")" || die "$why"
t0=$SECONDS
trap 'log "cluster:up failed after $((SECONDS - t0))s; logs in $LOGS; clean up with: npm run cluster:down"' ERR
{
  "$d/build.sh"
  t1=$SECONDS
  mkdir -p "$STATE"; chmod 711 "$STATE"
  # What the host had before us, so down.sh removes only what the cluster added.
  if [ ! -f "$STATE/host-lacked" ]; then
    for p in "${HOST_PATHS[@]}"; do [ -e "$p" ] || echo "$p"; done >"$STATE/host-lacked"
  fi
  "$d/certs.sh"
  "$d/start-etcd.sh"
  "$d/start-apiserver.sh"
  "$d/start-control.sh"
  "$d/start-containerd.sh"
  "$d/start-kubelet.sh"
  wait_for "node $NODE_NAME" 120 kctl get node "$NODE_NAME"
  kctl wait --for condition=Ready --timeout 120s "node/$NODE_NAME" >/dev/null
  # The kubelet sets its sysctls in its container manager's start, before the node turns Ready.
  restore_sysctls
  "$d/objects.sh"
  "$d/start-agent-sandbox.sh"
  log "cluster up in $((SECONDS - t0))s (start $((SECONDS - t1))s): namespace $NAMESPACE, RuntimeClass gvisor, images $PAUSE_IMAGE $DEBIAN_IMAGE"
} >&2
echo "$KUBECONFIG_ADMIN"
