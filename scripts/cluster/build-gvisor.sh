#!/usr/bin/env bash
# Provides runsc and containerd-shim-runsc-v1 at the gVisor version pyro pins. The runsc in
# /usr/local/bin (scripts/setup-host.sh) is used when it is that version; otherwise it is
# built, and the shim always is, from gVisor's Go module (`go install pkg@version` works: no replace directives) into
# $GVISOR_BIN. Debian packages no shim at all.
source "$(dirname "$0")/lib.sh"
mkdir -p "$GVISOR_BIN"
ldflags="-s -w -X gvisor.dev/gvisor/runsc/version.version=$GVISOR_STAMP"
# The shim sets its own oom_score_adj to -999 and fails when the kernel refuses (EACCES without
# CAP_SYS_RESOURCE, as in a container or a sandboxed VM like this project's test machines).
# containerd's sys.SetOOMScore already shrugs that refusal off for unprivileged and
# user-namespaced callers; the shim is built against a copy of containerd/v2 that shrugs it off
# always (the shim then keeps containerd's score). The wrapper module is set-up's scripts/gvisor-build/; the copy
# and the build live in the cache (Go refuses overlays of module-cache files).
build_shim() {
  local b="$GVISOR_BIN/shim-build" dir tmp
  [ -x "$GVISOR_BIN/containerd-shim-runsc-v1" ] && return 0
  command -v go >/dev/null || die "go is not installed; install Go >= 1.26 (https://go.dev/dl) and retry"
  log "building containerd-shim-runsc-v1 from gvisor.dev/gvisor@$GVISOR_VERSION (cold: several minutes)"
  rm -rf "$b"; mkdir -p "$b"
  cp "$GVISOR_BUILD_MOD/"{go.mod,go.sum,tools.go} "$b/"
  dir="$(cd "$b" && go mod download -json github.com/containerd/containerd/v2 | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
  cp -r "$dir" "$b/containerd-v2"; chmod -R u+w "$b/containerd-v2"
  sed -i 's/if os.IsPermission(err) && (!runningPrivileged() || userns.RunningInUserNS()) {/if os.IsPermission(err) \&\& (true || !runningPrivileged() || userns.RunningInUserNS()) {/' \
    "$b/containerd-v2/pkg/sys/oom_linux.go"
  grep -q 'true || !runningPrivileged()' "$b/containerd-v2/pkg/sys/oom_linux.go" || die "could not patch containerd's pkg/sys/oom_linux.go (changed upstream?)"
  echo 'replace github.com/containerd/containerd/v2 => ./containerd-v2' >>"$b/go.mod"
  (cd "$b" && CGO_ENABLED=0 go build -o "$b/shim" -ldflags "$ldflags" gvisor.dev/gvisor/shim)
  mv "$b/shim" "$GVISOR_BIN/containerd-shim-runsc-v1"
  rm -rf "$b"
}
build() { # build PKG NAME
  local pkg="$1" name="$2" tmp
  [ -x "$GVISOR_BIN/$name" ] && return 0
  # Not `runsc --version | grep -q`: grep's early exit is a SIGPIPE for runsc, which pipefail
  # turned into "not that version", and runsc was built a second time.
  if [ "$name" = runsc ] && [[ "$(/usr/local/bin/runsc --version 2>/dev/null)" == *"$GVISOR_STAMP"* ]]; then
    ln -sf /usr/local/bin/runsc "$GVISOR_BIN/runsc"; return 0
  fi
  command -v go >/dev/null || die "go is not installed; install Go >= 1.26 (https://go.dev/dl) and retry"
  log "building $name from gvisor.dev/gvisor@$GVISOR_VERSION (cold: several minutes)"
  tmp="$(mktemp -d)"
  # CGO off, as set-up builds it: runsc re-executes itself inside the sandbox's empty root,
  # where a dynamically linked runsc finds no libc ("cannot read client sync file: EOF").
  CGO_ENABLED=0 GOBIN="$tmp" go install -ldflags "$ldflags" "gvisor.dev/gvisor/$pkg@$GVISOR_VERSION"
  mv "$tmp/$(basename "$pkg")" "$GVISOR_BIN/$name"
  rm -rf "$tmp"
}
build runsc runsc
build_shim
