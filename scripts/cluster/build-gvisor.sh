#!/usr/bin/env bash
# Provides runsc and containerd-shim-runsc-v1 at the gVisor version pyro pins. The ones in
# /usr/local/bin (scripts/setup-host.sh) are used when they are that version; otherwise each is
# built from gVisor's Go module (no replace directives, so `go install pkg@version` works) into
# $GVISOR_BIN. Debian packages no shim at all.
source "$(dirname "$0")/lib.sh"
mkdir -p "$GVISOR_BIN"
ldflags="-s -w -X gvisor.dev/gvisor/runsc/version.version=$GVISOR_STAMP"
build() { # build PKG NAME
  local pkg="$1" name="$2" tmp
  [ -x "$GVISOR_BIN/$name" ] && return 0
  if [ "$name" = runsc ] && /usr/local/bin/runsc --version 2>/dev/null | grep -q "$GVISOR_STAMP"; then
    ln -sf /usr/local/bin/runsc "$GVISOR_BIN/runsc"; return 0
  fi
  if [ "$name" = containerd-shim-runsc-v1 ] && [ -x /usr/local/bin/containerd-shim-runsc-v1 ] &&
     /usr/local/bin/runsc --version 2>/dev/null | grep -q "$GVISOR_STAMP"; then
    ln -sf /usr/local/bin/containerd-shim-runsc-v1 "$GVISOR_BIN/$name"; return 0
  fi
  command -v go >/dev/null || die "go is not installed; install Go >= 1.26 (https://go.dev/dl) and retry"
  log "building $name from gvisor.dev/gvisor@$GVISOR_VERSION (cold: several minutes)"
  tmp="$(mktemp -d)"
  GOBIN="$tmp" go install -ldflags "$ldflags" "gvisor.dev/gvisor/$pkg@$GVISOR_VERSION"
  mv "$tmp/$(basename "$pkg")" "$GVISOR_BIN/$name"
  rm -rf "$tmp"
}
build runsc runsc
build shim containerd-shim-runsc-v1
