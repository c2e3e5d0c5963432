#!/usr/bin/env bash
# Starts etcd (Debian trixie's 3.5.16) on 127.0.0.1, plain HTTP (loopback only, one member),
# data under $STATE/etcd.
source "$(dirname "$0")/lib.sh"
mkdir -p "$STATE/etcd"; chmod 700 "$STATE/etcd"
start etcd "$ETCD_BIN/etcd" --name pyro-cluster --data-dir "$STATE/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "pyro-cluster=http://127.0.0.1:$ETCD_PEER_PORT" --listen-metrics-urls "" \
  --quota-backend-bytes 1073741824 --log-level warn
wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"
