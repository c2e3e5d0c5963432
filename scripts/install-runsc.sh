#!/usr/bin/env bash
# Installs gVisor's runsc for pyro; run by setup-host.sh. (The containerd shim is built by the
# test cluster's scripts/cluster/build-gvisor.sh from the same pin, only where a cluster runs.)
# Idempotent; needs root (or sudo) for the default paths.
#   - Where Go is present: builds the gVisor pinned in scripts/gvisor-build/go.mod (go.sum
#     checks the module's hash), stamps it `go-<time>-<commit>`, checks that the built runsc
#     says so, and installs it. Builds are kept per pinned version in
#     PYRO_GVISOR_CACHE (default /var/cache/pyro-build/gvisor/<version>/), so a second set-up,
#     or one after the binaries were removed, installs without building.
#   - Always: Debian trixie's runsc (0.0~20240729, the newest Debian ships) beside it as
#     runsc-20240729, the "old runsc" for benchmarks and the tests of pyro's fallbacks. Where
#     Go is absent it is also the runsc pyro uses. Fetched with a private apt list, so the
#     host's apt configuration is left untouched (bookworm's own build fails statx on
#     directories).
# Settings: PYRO_RUNSC_DEST (runsc's path, default /usr/local/bin/runsc; the old runsc goes
# beside it), PYRO_GVISOR_CACHE, PYRO_RUNSC_SOURCE=go|debian (default: go when a Go
# toolchain is found), PYRO_GO (the go binary; else PATH, then /usr/local/go/bin/go).
set -euo pipefail
umask 022

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
script_dir="$(cd "$(dirname "$0")" && pwd)"
build_mod="$script_dir/gvisor-build"
RUNSC_DEST="${PYRO_RUNSC_DEST:-/usr/local/bin/runsc}"
bin_dir="$(dirname "$RUNSC_DEST")"
CACHE="${PYRO_GVISOR_CACHE:-/var/cache/pyro-build/gvisor}"
# The oldest runsc pyro runs on (src/engines/gvisor/features.ts MIN_RUNSC_DATE), and the
# Debian build kept beside the new one.
MIN_RUNSC_DATE=20240729
OLD_DATE=20240729
OLD_DEST="$bin_dir/runsc-$OLD_DATE"

log() { printf 'setup-host: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# The YYYYMMDD a runsc's --version names (Debian's 0.0~DATE, release-DATE, go-DATEhhmmss-…).
runsc_date() {
  # sed reads every line (no `head`): an early-exiting reader is a SIGPIPE for runsc.
  "$1" --version 2>/dev/null \
    | sed -n '1s/^runsc version \(release-\|0\.0~\|go-\)\([0-9]\{8\}\).*/\2/p'
}

# Copies a binary into place atomically: running sandboxes keep the file they started from.
put() {
  $SUDO mkdir -p "$(dirname "$2")"
  $SUDO install -m 0755 "$1" "$2.new.$$"
  $SUDO mv -f "$2.new.$$" "$2"
}

# --- Debian trixie's runsc, kept as $OLD_DEST.
fetch_debian_runsc() {
  local v
  v="$(runsc_date "$OLD_DEST" || true)"
  if [ "$v" = "$OLD_DATE" ]; then return 0; fi
  # A host set up before the pinned build still has Debian's at $RUNSC_DEST: keep that copy.
  # The version read whole, not piped into head/grep: their early exit is a SIGPIPE for runsc,
  # which pipefail would count as "another version".
  if [[ "$("$RUNSC_DEST" --version 2>/dev/null)" == "runsc version 0.0~$OLD_DATE."* ]]; then
    put "$RUNSC_DEST" "$OLD_DEST"
    log "kept Debian's runsc as $OLD_DEST"
    return 0
  fi
  log "fetching runsc from Debian trixie"
  local tmp
  tmp="$(mktemp -d)"; chmod 755 "$tmp"
  mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial"
  cat >"$tmp/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
SRC
  local apt_opts=(-o "Dir::Etc::SourceList=$tmp/sources.list" -o "Dir::Etc::SourceParts=-"
            -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o "APT::Get::List-Cleanup=0"
            -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
  $SUDO apt-get "${apt_opts[@]}" update -qq
  (cd "$tmp" && $SUDO apt-get "${apt_opts[@]}" download -qq runsc)
  $SUDO chmod -R a+rwX "$tmp"
  dpkg-deb -x "$tmp"/runsc_*.deb "$tmp/root"
  v="$(runsc_date "$tmp/root/usr/bin/runsc" || true)"
  [ "$v" = "$OLD_DATE" ] || log "warning: Debian trixie now ships runsc $v, not $OLD_DATE; kept as $OLD_DEST all the same"
  put "$tmp/root/usr/bin/runsc" "$OLD_DEST"
  $SUDO rm -rf "$tmp"
  log "installed $("$OLD_DEST" --version | head -1) at $OLD_DEST"
}

# --- The Go toolchain, if any (sudo's PATH often lacks /usr/local/go/bin).
find_go() {
  if [ -n "${PYRO_GO:-}" ]; then printf '%s\n' "$PYRO_GO"; return 0; fi
  command -v go 2>/dev/null && return 0
  [ -x /usr/local/go/bin/go ] && { printf '%s\n' /usr/local/go/bin/go; return 0; }
  return 1
}

source="${PYRO_RUNSC_SOURCE:-}"
go_bin=""
if [ "$source" != debian ]; then
  if go_bin="$(find_go)"; then source=go
  elif [ "$source" = go ]; then die "PYRO_RUNSC_SOURCE=go, but no Go toolchain found (install Go, or set PYRO_GO)"
  else source=debian; log "no Go toolchain found: using Debian trixie's runsc (install Go for the pinned, newer gVisor)"
  fi
fi

fetch_debian_runsc

if [ "$source" = debian ]; then
  # A runsc new enough already in place (this script's, or gVisor's own apt package in
  # /usr/bin) is kept: Debian's is no newer.
  have=""
  for r in "$RUNSC_DEST" "$(command -v runsc || true)"; do
    v="$(runsc_date "$r" || true)"
    if [ -n "$v" ] && [ "$v" -ge "$MIN_RUNSC_DATE" ]; then have="$r"; break; fi
  done
  if [ -n "$have" ]; then
    log "runsc already installed: $("$have" --version | head -1) at $have"
  else
    put "$OLD_DEST" "$RUNSC_DEST"
    log "installed $("$RUNSC_DEST" --version | head -1) at $RUNSC_DEST"
  fi
  exit 0
fi

# --- The pinned build. The version is the go.mod's require line; the stamp is its time and commit.
pin="$(sed -n 's/^require gvisor\.dev\/gvisor \(v[^ ]*\)$/\1/p' "$build_mod/go.mod")"
stamp="$(printf '%s' "$pin" | sed -n 's/^v0\.0\.0-\([0-9]\{14\}\)-\([0-9a-f]\{12\}\)$/go-\1-\2/p')"
[ -n "$stamp" ] || die "cannot read the pinned gVisor pseudo-version from $build_mod/go.mod (found '$pin')"
want="runsc version $stamp"
dir="$CACHE/$stamp"

if [ -f "$dir/VERSION" ] && [ -x "$dir/runsc" ]; then
  log "gVisor $stamp already built in $dir"
else
  log "building gVisor $pin (runsc) with $("$go_bin" env GOVERSION); a first build takes minutes"
  out="$(mktemp -d)"
  t0=$(date +%s)
  # CGO off: static binaries, as gVisor's releases are. -mod=readonly: go.sum is the pin's
  # checksum and is never rewritten. nice: set-up shares the machine.
  (
    cd "$build_mod"
    export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false"
    nice -n 10 "$go_bin" build -o "$out/runsc" \
      -ldflags "-s -w -X gvisor.dev/gvisor/runsc/version.version=$stamp" gvisor.dev/gvisor/runsc
  ) || { rm -rf "$out"; die "building gVisor $pin failed (see above); PYRO_RUNSC_SOURCE=debian installs Debian's runsc instead"; }
  got="$("$out/runsc" --version 2>&1 | head -1 || true)"
  if [ "$got" != "$want" ]; then rm -rf "$out"; die "the built runsc says '$got', not '$want': not installed"; fi
  $SUDO mkdir -p "$dir"
  $SUDO install -m 0755 "$out/runsc" "$dir/"
  # VERSION last: a directory without it is an interrupted build, rebuilt next time.
  printf 'gvisor.dev/gvisor %s\nstamp %s\ngo.sum %s\nbuilt %s with %s in %s s\n' "$pin" "$stamp" \
    "$(grep "^gvisor.dev/gvisor $pin h1:" "$build_mod/go.sum" | cut -d' ' -f3)" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$("$go_bin" env GOVERSION)" "$(($(date +%s) - t0))" \
    | $SUDO tee "$dir/VERSION.tmp" >/dev/null
  $SUDO mv "$dir/VERSION.tmp" "$dir/VERSION"
  rm -rf "$out"
  log "built gVisor $stamp in $(($(date +%s) - t0)) s, kept in $dir"
fi

# The cached binary is checked too: a cache is a directory anyone with root could have touched.
got="$("$dir/runsc" --version 2>&1 | head -1 || true)"
[ "$got" = "$want" ] || die "$dir/runsc says '$got', not '$want': remove $dir and run set-up again"
if cmp -s "$dir/runsc" "$RUNSC_DEST"; then
  log "runsc already installed: $want at $RUNSC_DEST"
else
  was="$("$RUNSC_DEST" --version 2>/dev/null | head -1 || true)"
  put "$dir/runsc" "$RUNSC_DEST"
  log "installed $want at $RUNSC_DEST${was:+ (was: $was)}"
fi
