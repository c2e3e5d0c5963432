#!/usr/bin/env bash
# Fetches containerd, etcd and the CNI plugins from Debian trixie through a private apt list
# (`apt-get download` + `dpkg-deb -x`, as scripts/setup-host.sh does for runsc) and unpacks each
# into $DEB_DIR/<package>_<version>/: the host's apt state and /usr are untouched.
source "$(dirname "$0")/lib.sh"
missing=()
for spec in "$CONTAINERD_DEB" "$ETCD_DEB" "$CNI_DEB"; do
  [ -d "$DEB_DIR/${spec%%=*}_${spec#*=}" ] || missing+=("$spec")
done
[ ${#missing[@]} -eq 0 ] && exit 0
log "fetching ${missing[*]} from Debian trixie"
tmp="$(mktemp -d)"; chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$DEB_DIR"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" >"$tmp/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$tmp/sources.list" -o "Dir::Etc::SourceParts=-"
          -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o "APT::Get::List-Cleanup=0"
          -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
apt-get "${apt_opts[@]}" update -qq
(cd "$tmp" && apt-get "${apt_opts[@]}" download -qq "${missing[@]}")
for spec in "${missing[@]}"; do
  pkg="${spec%%=*}"; dest="$DEB_DIR/${pkg}_${spec#*=}"
  dpkg-deb -x "$tmp/${pkg}"_*.deb "$dest.tmp"
  mv "$dest.tmp" "$dest"
done
