#!/usr/bin/env bash
# Starts the kubelet (1.34.4) on 127.0.0.1 as node "localhost", talking to our containerd.
# This host: cgroup v1 and no systemd as PID 1, so cgroupfs; every pod cgroup under
# $CGROUP_ROOT (down removes the subtree). The kubelet's host-wide side effects are turned off
# where a setting exists (iptables util chains) and undone where not (the sysctls it sets at
# start: saved here first, put back by up.sh once the node is Ready; see restore_sysctls in lib.sh).
source "$(dirname "$0")/lib.sh"
kd="$STATE/kubelet"
mkdir -p "$kd" "$STATE/pod-logs"
# The kubelet sets these kernel knobs when protectKernelDefaults is false: remember the host's.
if [ ! -f "$STATE/sysctl.saved" ]; then
  for k in vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes; do
    [ -f "/proc/sys/$k" ] && echo "$k $(cat "/proc/sys/$k")"
  done >"$STATE/sysctl.saved"
fi
# The kubelet wants its cgroupRoot to exist in every v1 hierarchy; cpuset needs its cpus and mems
# filled in before anything can join.
for h in /sys/fs/cgroup/*/; do
  [ -f "${h}cgroup.procs" ] || continue
  mkdir -p "$h${CGROUP_ROOT#/}"
  if [ -f "${h}cpuset.cpus" ]; then
    cat "${h}cpuset.cpus" >"$h${CGROUP_ROOT#/}/cpuset.cpus"
    cat "${h}cpuset.mems" >"$h${CGROUP_ROOT#/}/cpuset.mems"
  fi
done
cat >"$STATE/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$STATE/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
failSwapOn: false
failCgroupV1: false
makeIPTablesUtilChains: false
podLogsDir: $STATE/pod-logs
volumePluginDir: $STATE/volume-plugins
clusterDomain: cluster.local
resolvConf: ""
registerNode: true
staticPodPath: ""
serializeImagePulls: false
imageGCHighThresholdPercent: 100
evictionHard: {}
evictionPressureTransitionPeriod: 0s
imageMinimumGCAge: 0s
maxPods: 110
YAML
start kubelet "$K8S_BIN/kubelet" --config "$STATE/kubelet.yaml" --kubeconfig "$STATE/kubelet.kubeconfig" \
  --root-dir "$kd" --hostname-override "$NODE_NAME" --v 1
wait_for kubelet 60 curl -sf "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz"
