#!/usr/bin/env bash
# Installs what pyro's engines need on a Debian 12 host. Idempotent; needs root (or sudo).
#   - runsc (gVisor) and containerd-shim-runsc-v1 built from the gVisor pinned in
#     scripts/gvisor-build/go.mod where Go is present (kept per version, so a second run does
#     not rebuild), Debian trixie's runsc where it is not; Debian's is also kept beside it as
#     runsc-20240729 (scripts/install-runsc.sh).
#   - mmdebstrap to build environment root filesystems from Debian packages.
#   - umoci to unpack OCI images (and, for the tests, skopeo and docker-registry).
#   - What pyro needs to run as an ordinary user (no root after this script): uidmap
#     (newuidmap, for building environments in a user namespace), erofs-utils (gVisor boots
#     environments from EROFS images without root), subordinate id ranges for the users named
#     with --user (and the one who ran sudo), and the shared read-only environment cache
#     /var/cache/pyro (PYRO_SHARED_CACHE), filled when pyro is built (docs/architecture.md).
# Usage: setup-host.sh [--user NAME]...
set -euo pipefail
umask 022

users=()
while [ $# -gt 0 ]; do
  case "$1" in
    --user) [ $# -ge 2 ] || { echo "setup-host: --user needs a user name" >&2; exit 2; }; users+=("$2"); shift 2 ;;
    --user=*) users+=("${1#--user=}"); shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "setup-host: unknown argument $1 (usage: setup-host.sh [--user NAME]...)" >&2; exit 2 ;;
  esac
done
if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then users+=("$SUDO_USER"); fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

log() { printf 'setup-host: %s\n' "$*" >&2; }

need_pkgs=()
# iproute2 and nftables: a network namespace and firewall per sandbox with network (docs/network.md).
# passt (pasta): network for ordinary users' sandboxes, in a namespace the user owns.
for p in mmdebstrap ca-certificates e2fsprogs uidmap erofs-utils iproute2 nftables passt; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$p")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
# pasta opens /dev/net/tun as the user; udev makes it 0666 on Debian, a host without udev
# (containers, microVMs) may leave it 0600 (root only). Creating a tap still needs
# CAP_NET_ADMIN in the namespace's owner, so 0666 opens nothing else.
if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
  log "making /dev/net/tun usable by ordinary users (mode 0666, as udev does)"
  $SUDO chmod 0666 /dev/net/tun
fi

bash "$(cd "$(dirname "$0")" && pwd)/install-runsc.sh"

# --- QEMU microVM engine (PYRO_ENGINE=qemu; the default only where KVM really boots guests):
#     QEMU and qemu-img, a static busybox for the guest initramfs, e2fsprogs for the guest disk
#     image, and Debian's cloud kernel fetched with `apt-get download` and unpacked with
#     `dpkg-deb -x` into pyro's cache (never the host's /boot). pyro also fetches the kernel by
#     itself on first use; this just does it ahead of time.
qemu_pkgs=()
for p in qemu-system-x86 qemu-utils busybox-static e2fsprogs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || qemu_pkgs+=("$p")
done
if [ "${#qemu_pkgs[@]}" -gt 0 ]; then
  log "installing ${qemu_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${qemu_pkgs[@]}" >/dev/null
fi

# --- OCI images as environments: umoci unpacks image layers (runtime). The tests also run
#     Debian's docker-registry on 127.0.0.1 (a free port of their own) and push test images
#     with skopeo. docker-registry's package starts a registry service on :5000 when it is
#     installed; pyro never uses that service, so when this script installs the package it
#     stops and disables the service again (an already-installed registry is left alone).
oci_pkgs=()
for p in umoci skopeo docker-registry; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || oci_pkgs+=("$p")
done
if [ "${#oci_pkgs[@]}" -gt 0 ]; then
  log "installing ${oci_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${oci_pkgs[@]}" >/dev/null
  if printf '%s\n' "${oci_pkgs[@]}" | grep -qx docker-registry; then
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
      $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/docker-registry ]; then
      $SUDO /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
    fi
    log "docker-registry installed for the tests; its own service (port 5000) is stopped and disabled"
  fi
fi

if [ -n "${PYRO_CACHE_DIR:-}" ]; then
  pyro_cache="$PYRO_CACHE_DIR"
elif [ -n "${PYRO_HOME:-}" ]; then
  pyro_cache="$PYRO_HOME/cache"
else
  user_home="$HOME"
  if [ "$(id -u)" -eq 0 ] && [ -n "${SUDO_USER:-}" ]; then user_home="$(getent passwd "$SUDO_USER" | cut -d: -f6)"; fi
  pyro_cache="${XDG_CACHE_HOME:-$user_home/.cache}/pyro-mcp"
fi
kernels_dir="$pyro_cache/guest-kernels"
kernel_pkg="$(apt-cache depends --no-recommends --no-suggests "${PYRO_GUEST_KERNEL_PACKAGE:-linux-image-cloud-amd64}" 2>/dev/null \
  | sed -n 's/^ *Depends: \(linux-image-[^ <>]*\).*/\1/p' | head -1)"
if [ -z "$kernel_pkg" ]; then
  log "warning: apt cannot resolve linux-image-cloud-amd64; skipping the guest kernel (run apt-get update?)"
elif ls "$kernels_dir/${kernel_pkg}_"*/kernel.json >/dev/null 2>&1; then
  log "guest kernel $kernel_pkg already in $kernels_dir"
else
  log "fetching guest kernel $kernel_pkg into $kernels_dir"
  ktmp="$(mktemp -d)"; chmod 755 "$ktmp"
  apt_dl_opts=()
  if [ "$(id -u)" -eq 0 ]; then apt_dl_opts=(-o "APT::Sandbox::User=root"); fi
  (cd "$ktmp" && apt-get "${apt_dl_opts[@]}" download -qq "$kernel_pkg")
  kdeb="$(ls "$ktmp"/*.deb | head -1)"
  kname="$(basename "$kdeb" .deb)"
  dpkg-deb -x "$kdeb" "$ktmp/tree"
  krelease="$(ls "$ktmp/tree/boot" | sed -n 's/^vmlinuz-//p' | head -1)"
  kversion="$(printf '%s' "$kname" | cut -d_ -f2)"
  # kernel.json last: pyro treats a directory without it as an interrupted fetch.
  printf '{"package":"%s","version":"%s","release":"%s"}\n' "$kernel_pkg" "$kversion" "$krelease" >"$ktmp/tree/kernel.json.tmp"
  mkdir -p "$kernels_dir"
  rm -rf "${kernels_dir:?}/$kname"
  mv "$ktmp/tree" "$kernels_dir/$kname"
  mv "$kernels_dir/$kname/kernel.json.tmp" "$kernels_dir/$kname/kernel.json"
  rm -rf "$ktmp"
  if [ "$(id -u)" -eq 0 ] && [ -n "${SUDO_USER:-}" ]; then chown -R "$SUDO_USER": "$kernels_dir"; fi
  log "guest kernel $krelease unpacked at $kernels_dir/$kname"
fi

# --- Running as an ordinary user. Subordinate ids let mmdebstrap build environments in a user
#     namespace (`useradd` gives new users a range on Debian; older accounts may have none).
#     The range is the first free 65536 ids above every range already given out.
has_subids() {
  awk -F: -v u="$1" -v id="$(id -u "$1")" '($1==u || $1==id) && $3>=65536 {f=1} END {exit !f}' "$2" 2>/dev/null
}
for u in "${users[@]}"; do
  if ! id "$u" >/dev/null 2>&1; then log "no such user: $u"; exit 2; fi
  if has_subids "$u" /etc/subuid && has_subids "$u" /etc/subgid; then continue; fi
  start="$(awk -F: 'BEGIN {m=100000} {e=$2+$3; if (e>m) m=e} END {print m}' /etc/subuid /etc/subgid 2>/dev/null)"
  has_subids "$u" /etc/subuid || $SUDO usermod --add-subuids "${start}-$((start + 65535))" "$u"
  has_subids "$u" /etc/subgid || $SUDO usermod --add-subgids "${start}-$((start + 65535))" "$u"
  log "gave $u subordinate ids ${start}-$((start + 65535))"
done

# --- The shared environment cache: root builds, every user reads (never writes) it. pyro
#     looks there after the user's own cache. Filled with every catalog environment
#     (PYRO_SHARED_ENVIRONMENTS: a space-separated list instead) once pyro is built; before
#     that, the script prints the one command that fills it. `pyro doctor` tells each user
#     whether it is filled.
shared="${PYRO_SHARED_CACHE:-/var/cache/pyro}"
$SUDO mkdir -p "$shared/environments"
$SUDO chmod 0755 "$shared" "$shared/environments"
script_dir="$(cd "$(dirname "$0")" && pwd)"
pyro_cli=""
if [ -x "$script_dir/../dist/cli/main.js" ]; then pyro_cli="$script_dir/../dist/cli/main.js"
elif command -v pyro >/dev/null 2>&1; then pyro_cli="$(command -v pyro)"; fi
if [ -z "$pyro_cli" ]; then
  log "pyro is not built yet, so $shared is still empty: after \`npm run build\`, run \`sudo bash $script_dir/setup-host.sh\` to fill it for all users"
else
  shared_envs="${PYRO_SHARED_ENVIRONMENTS:-}"
  if [ -z "$shared_envs" ]; then
    shared_envs="$($SUDO env PYRO_CACHE_DIR="$shared" PYRO_SHARED_CACHE= PYRO_QUIET=1 "$pyro_cli" env list --json | node -e 'let s="";process.stdin.on("data",(d)=>{s+=d}).on("end",()=>{console.log(JSON.parse(s).environments.filter((e)=>e.kind==="catalog").map((e)=>e.name).join(" "))})')" || shared_envs="debian:12"
  fi
  for e in $shared_envs; do
    # A run, not just a pull: it also packs the EROFS image non-root sandboxes boot from,
    # and proves the environment boots.
    # (root's own state dir for it: pyro refuses a state dir that is not the caller's)
    st="$($SUDO mktemp -d)"
    log "preparing shared environment $e in $shared (a first build takes about 20 s)"
    if $SUDO env PYRO_CACHE_DIR="$shared" PYRO_SHARED_CACHE= PYRO_STATE_DIR="$st" PYRO_QUIET=1 "$pyro_cli" run "$e" -- true >/dev/null; then
      log "shared environment $e ready in $shared"
    else
      log "warning: could not prepare $e in $shared (see the error above)"
    fi
    $SUDO rm -rf "$st"
  done
fi
