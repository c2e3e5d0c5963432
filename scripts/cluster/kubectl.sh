#!/usr/bin/env bash
# kubectl (the cluster's own build) with the test cluster's admin kubeconfig:
#   scripts/cluster/kubectl.sh get pods -A
source "$(dirname "$0")/lib.sh"
exec "${PYRO_CLUSTER_KUBECTL:-$K8S_BIN/kubectl}" --kubeconfig "$KUBECONFIG_ADMIN" "$@"
