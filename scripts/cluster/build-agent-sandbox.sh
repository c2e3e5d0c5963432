#!/usr/bin/env bash
# Builds the agent-sandbox controller (sigs.k8s.io/agent-sandbox, no replace directives, so
# `go install ...@version` works) into $AS_BIN, and fetches its module so up.sh can apply the
# CRDs from the module cache (k8s/crds/; never copied into this repository).
source "$(dirname "$0")/lib.sh"
command -v go >/dev/null || die "go is not installed; install Go >= 1.26 (https://go.dev/dl) and retry"
mkdir -p "$AS_BIN"
if [ ! -x "$AS_BIN/agent-sandbox-controller" ]; then
  log "building agent-sandbox-controller $AGENT_SANDBOX_VERSION (cold: a few minutes)"
  tmp="$(mktemp -d)"
  GOBIN="$tmp" go install -ldflags "-s -w" "sigs.k8s.io/agent-sandbox/cmd/agent-sandbox-controller@$AGENT_SANDBOX_VERSION"
  mv "$tmp/agent-sandbox-controller" "$AS_BIN/agent-sandbox-controller"
  rm -rf "$tmp"
fi
go mod download -json "sigs.k8s.io/agent-sandbox@$AGENT_SANDBOX_VERSION" |
  sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' >"$AS_BIN/module-dir"
[ -d "$(cat "$AS_BIN/module-dir")/k8s/crds" ] || die "agent-sandbox module has no k8s/crds (looked in $(cat "$AS_BIN/module-dir"))"
