#!/usr/bin/env bash
# Runs the agent-sandbox controller as a host process (out of cluster, its own kubeconfig and
# ClusterRoles from objects.sh), with the extensions (templates, warm pools, claims), without its
# webhook and leader election, and with metrics and health on loopback ports.
source "$(dirname "$0")/lib.sh"
start agent-sandbox-controller env KUBECONFIG="$STATE/agent-sandbox.kubeconfig" \
  "$AS_BIN/agent-sandbox-controller" --extensions --enable-webhook=false \
  --leader-elect=false --metrics-bind-address "127.0.0.1:$AS_METRICS_PORT" \
  --health-probe-bind-address "127.0.0.1:$AS_PROBE_PORT"
wait_for agent-sandbox-controller 60 curl -sf "http://127.0.0.1:$AS_PROBE_PORT/readyz"
