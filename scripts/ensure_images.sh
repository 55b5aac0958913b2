#!/usr/bin/env bash
# Make sure every image the compose files name exists locally. Where a registry answers, pull the
# upstream images; where none does (air gap, or FORCE_LOCAL_IMAGES=1), build local equivalents
# with scripts/airgap/build_images.sh. Either way .env.images names what compose should use.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
env_file=${IMAGES_ENV_FILE:-$root/.env.images}

say() { printf '\033[1mimages:\033[0m %s\n' "$*"; }

# Upstream defaults, the same as in the compose files.
UPSTREAM=(
  PYTHON_BASE_IMAGE=python:3.12-slim
  TRAEFIK_IMAGE=traefik:v3.7
  POSTGRES_IMAGE=postgres:16
  PROMETHEUS_IMAGE=prom/prometheus:v2.55.1
  ALERTMANAGER_IMAGE=prom/alertmanager:v0.27.0
  NODE_EXPORTER_IMAGE=prom/node-exporter:v1.8.2
  SOCKET_PROXY_IMAGE=haproxy:2.6
  FRONTEND_IMAGE=nginx:1.27
)

all_present() {  # every variable above is named in the env file, and its image exists
  [ -s "$env_file" ] || return 1
  local line missing=0 pair
  # An env file written before a variable was added (e.g. FRONTEND_IMAGE) must be completed.
  for pair in "${UPSTREAM[@]}"; do
    grep -q "^${pair%%=*}=" "$env_file" || { say "${pair%%=*} not in $(basename "$env_file")"; missing=1; }
  done
  while IFS='=' read -r var image; do
    [[ "$var" =~ ^[A-Z_]+_IMAGE$ ]] || continue
    docker image inspect "$image" >/dev/null 2>&1 || { say "missing $image ($var)"; missing=1; }
  done <"$env_file"
  return $missing
}

if [ "${FORCE_LOCAL_IMAGES:-0}" != 1 ] && all_present; then
  say "all images in $(basename "$env_file") present"
  exit 0
fi

registry_answers() { timeout 60 docker pull -q "${UPSTREAM[1]#*=}" >/dev/null 2>&1; }

if [ "${FORCE_LOCAL_IMAGES:-0}" != 1 ] && registry_answers; then
  say "a registry answers: pulling upstream images"
  for pair in "${UPSTREAM[@]}"; do docker pull -q "${pair#*=}" >/dev/null; done
  printf '%s\n' "# Written by scripts/ensure_images.sh: upstream images, pulled." "${UPSTREAM[@]}" >"$env_file"
else
  say "no registry answers (or FORCE_LOCAL_IMAGES=1): building local images"
  "$here/airgap/build_images.sh"
fi
all_present || { echo "images: error: images still missing after the build" >&2; exit 1; }
