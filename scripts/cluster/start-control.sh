#!/usr/bin/env bash
# Starts kube-controller-manager (service-account tokens, garbage collection, PV binding, ...)
# and kube-scheduler, both without leader election and without serving ports of their own.
source "$(dirname "$0")/lib.sh"
start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
  --kubeconfig "$STATE/controller-manager.kubeconfig" --leader-elect=false \
  --bind-address 127.0.0.1 --secure-port 0 \
  --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
  --use-service-account-credentials \
  --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" --enable-hostpath-provisioner
start kube-scheduler "$K8S_BIN/kube-scheduler" \
  --kubeconfig "$STATE/scheduler.kubeconfig" --leader-elect=false \
  --bind-address 127.0.0.1 --secure-port 0
