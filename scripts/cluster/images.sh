#!/usr/bin/env bash
# Builds the cluster's two images as OCI archives in $IMAGE_DIR (nothing is pulled from a
# registry): the pause image (a static binary from pause.c) and a Debian 12 image for pods the
# engine runs commands in, from pyro's own debian:12-base environment rootfs when the shared cache
# has one (else mmdebstrap). up.sh imports them with `ctr images import`.
source "$(dirname "$0")/lib.sh"
mkdir -p "$IMAGE_DIR"

# oci_archive NAME ROOTFS ENTRYPOINT_JSON OUT: one uncompressed layer (no gzip: it is imported
# once, locally, and compressing ~180 MB costs more than it saves).
oci_archive() {
  local name="$1" rootfs="$2" entry="$3" out="$4" d
  d="$(mktemp -d)"; mkdir -p "$d/blobs/sha256"
  tar -C "$rootfs" --numeric-owner --sort=name --mtime=@0 -cf "$d/layer.tar" .
  local ldig lsize cdig csize mdig msize
  ldig="$(sha256sum "$d/layer.tar" | cut -d' ' -f1)"; lsize="$(stat -c %s "$d/layer.tar")"
  mv "$d/layer.tar" "$d/blobs/sha256/$ldig"
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":%s,"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$entry" "$ldig" >"$d/config.json"
  cdig="$(sha256sum "$d/config.json" | cut -d' ' -f1)"; csize="$(stat -c %s "$d/config.json")"
  mv "$d/config.json" "$d/blobs/sha256/$cdig"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$cdig" "$csize" "$ldig" "$lsize" >"$d/manifest.json"
  mdig="$(sha256sum "$d/manifest.json" | cut -d' ' -f1)"; msize="$(stat -c %s "$d/manifest.json")"
  mv "$d/manifest.json" "$d/blobs/sha256/$mdig"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$mdig" "$msize" "$name" "${name##*:}" >"$d/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$d/oci-layout"
  tar -C "$d" -cf "$out.tmp" oci-layout index.json blobs
  mv "$out.tmp" "$out"
  rm -rf "$d"
}

pause_tar="$IMAGE_DIR/pause.tar"
if [ ! -f "$pause_tar" ]; then
  log "building $PAUSE_IMAGE"
  r="$(mktemp -d)"
  cc -static -O2 -o "$r/pause" "$CLUSTER_LIB_DIR/pause.c"
  oci_archive "$PAUSE_IMAGE" "$r" '["/pause"]' "$pause_tar"
  rm -rf "$r"
fi

debian_tar="$IMAGE_DIR/debian.tar"
if [ ! -f "$debian_tar" ]; then
  shared="${PYRO_SHARED_CACHE-/var/cache/pyro}"
  src="$(ls -1dt "$shared"/environments/debian-12-base-*/rootfs 2>/dev/null | head -1 || true)"
  tmp=""
  if [ -z "$src" ]; then
    command -v mmdebstrap >/dev/null || die "no debian:12-base environment in $shared and no mmdebstrap; run scripts/setup-host.sh (or apt-get install mmdebstrap) and retry"
    log "building the Debian 12 rootfs with mmdebstrap (no pyro environment cache found)"
    tmp="$(mktemp -d)"; src="$tmp/rootfs"
    mmdebstrap --quiet --variant=minbase bookworm "$src"
  fi
  log "building $DEBIAN_IMAGE from $src"
  oci_archive "$DEBIAN_IMAGE" "$src" '["/bin/sh"]' "$debian_tar"
  # Not `[ -n "$tmp" ] && rm …`: as the script's last command, a false test was its exit
  # status, and a first cluster:up failed right after building the image.
  if [ -n "$tmp" ]; then rm -rf "$tmp"; fi
fi
