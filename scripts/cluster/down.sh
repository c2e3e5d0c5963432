#!/usr/bin/env bash
# `npm run cluster:down`: stops everything cluster:up started and removes what it left on the
# host: processes (by pid file, then any process still naming $STATE), mounts under $STATE
# (overlay rootfs, network namespaces, kubelet volumes), the pod bridge, cgroups under
# $CGROUP_ROOT, the kubelet's sysctls, hostPath volumes, CNI cache entries, the fixed host paths
# the cluster created (HOST_PATHS in lib.sh), and $STATE itself.
# Safe to run twice and after a crash of anything (or of up.sh itself).
source "$(dirname "$0")/lib.sh"
set +e
ctr() { timeout 20 "$CONTAINERD_BIN/ctr" --address "$STATE/containerd.sock" -n k8s.io "$@"; }

# stop NAME: SIGTERM to the process group up started, SIGKILL after 10 s.
stop() {
  local f="$PIDS/$1.pid" pid i
  [ -f "$f" ] || return 0
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL -- "-$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null
    log "stopped $1 (pid $pid)"
  fi
  rm -f "$f"
}

[ -d "$STATE" ] || { log "nothing to do: $STATE does not exist"; exit 0; }
# hostPath volumes the provisioner made live outside $STATE: ask the API before it goes.
pv_paths=()
if [ -f "$KUBECONFIG_ADMIN" ] && [ -x "$K8S_BIN/kubectl" ]; then
  mapfile -t pv_paths < <(timeout 15 "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" --request-timeout 10s \
    get pv -o jsonpath='{range .items[*]}{.spec.hostPath.path}{"\n"}{end}' 2>/dev/null)
fi
stop agent-sandbox-controller
stop kube-scheduler
stop kube-controller-manager
stop kubelet
# Pods: kill and delete every task and container while containerd still runs, so the runsc
# shims exit and remove their own sockets and sandboxes.
if [ -S "$STATE/containerd.sock" ]; then
  for t in $(ctr tasks ls -q 2>/dev/null); do ctr tasks kill -a -s SIGKILL "$t" >/dev/null 2>&1; done
  sleep 1
  for t in $(ctr tasks ls -q 2>/dev/null); do ctr tasks delete -f "$t" >/dev/null 2>&1; done
  for c in $(ctr containers ls -q 2>/dev/null); do ctr containers delete "$c" >/dev/null 2>&1; done
fi
stop containerd
stop kube-apiserver
stop etcd
# Anything still naming our state dir (a shim or runsc sandbox whose containerd died first).
for p in /proc/[0-9]*; do
  pid="${p#/proc/}"
  [ "$pid" = $$ ] && continue
  if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF "$STATE/"; then
    log "killing leftover $(tr '\0' ' ' <"$p/cmdline" | cut -c1-80) (pid $pid)"
    kill -KILL "$pid" 2>/dev/null
  fi
done
sleep 0.5
# Mounts under $STATE, deepest first; lazily if still busy.
for i in 1 2 3; do
  mapfile -t mnts < <(awk -v s="$STATE/" 'index($5, s) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  [ ${#mnts[@]} -eq 0 ] && break
  for m in "${mnts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
done
ip link show "$BRIDGE" >/dev/null 2>&1 && ip link delete "$BRIDGE" && log "deleted bridge $BRIDGE"
# cgroups: every hierarchy's $CGROUP_ROOT subtree, leaves first.
for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
  [ -d "$h${CGROUP_ROOT#/}" ] && find "$h${CGROUP_ROOT#/}" -depth -type d -exec rmdir {} + 2>/dev/null
done
restore_sysctls
for p in "${pv_paths[@]}"; do
  case "$p" in /tmp/hostpath_pv/*) rm -rf "$p" ;; esac
done
rmdir /tmp/hostpath_pv 2>/dev/null
rm -f /var/lib/cni/results/"$CNI_NET"-* 2>/dev/null
find /var/log/containers -maxdepth 1 -lname "$STATE/*" -delete 2>/dev/null
# Fixed host paths the cluster created (up.sh listed those the host lacked), unless another
# cluster of ours still runs and uses them.
others=0
for p in /run/pyro-cluster*/pids/kubelet.pid; do
  [ -f "$p" ] && [ "$p" != "$PIDS/kubelet.pid" ] && kill -0 "$(cat "$p")" 2>/dev/null && others=1
done
if [ -f "$STATE/host-lacked" ] && [ $others = 0 ]; then
  while read -r p; do
    case "$p" in /var/lib/kubelet | /var/log/containers | /run/containerd | /var/lib/cni | /usr/libexec/kubernetes) rm -rf "$p" ;; esac
  done <"$STATE/host-lacked"
fi
left="$(awk -v s="$STATE/" 'index($5, s) == 1' /proc/self/mountinfo | wc -l)"
[ "$left" = 0 ] || die "$left mounts under $STATE remain busy; see /proc/self/mountinfo"
rm -rf "$STATE"
log "cluster down"
