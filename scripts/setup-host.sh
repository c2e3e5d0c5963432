#!/usr/bin/env bash
# Installs what pyro's engines need on a Debian 12 host. Idempotent; needs root (or sudo).
#   - runsc (gVisor) from Debian trixie: bookworm's build fails statx on directories.
#     Fetched with a private apt list so the host's apt configuration is left untouched.
#   - mmdebstrap to build environment root filesystems from Debian packages.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
RUNSC_DEST="${PYRO_RUNSC_DEST:-/usr/local/bin/runsc}"
MIN_RUNSC_DATE=20240729

log() { printf 'setup-host: %s\n' "$*" >&2; }

need_pkgs=()
for p in mmdebstrap ca-certificates e2fsprogs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$p")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

runsc_ok() {
  [ -x "$RUNSC_DEST" ] || return 1
  local v
  v="$("$RUNSC_DEST" --version 2>/dev/null | sed -n 's/^runsc version release-\([0-9]\{8\}\).*/\1/p; s/^runsc version 0.0~\([0-9]\{8\}\).*/\1/p' | head -1)"
  [ -n "$v" ] && [ "$v" -ge "$MIN_RUNSC_DATE" ]
}

if runsc_ok; then
  log "runsc already installed: $("$RUNSC_DEST" --version | head -1)"
else
  log "fetching runsc from Debian trixie"
  tmp="$(mktemp -d)"; chmod 755 "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial"
  cat >"$tmp/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
SRC
  apt_opts=(-o "Dir::Etc::SourceList=$tmp/sources.list" -o "Dir::Etc::SourceParts=-"
            -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o "APT::Get::List-Cleanup=0"
            -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
  $SUDO apt-get "${apt_opts[@]}" update -qq
  (cd "$tmp" && $SUDO apt-get "${apt_opts[@]}" download -qq runsc)
  $SUDO chmod -R a+rwX "$tmp"
  dpkg-deb -x "$tmp"/runsc_*.deb "$tmp/root"
  $SUDO install -m 0755 "$tmp/root/usr/bin/runsc" "$RUNSC_DEST"
  log "installed $("$RUNSC_DEST" --version | head -1) at $RUNSC_DEST"
fi
