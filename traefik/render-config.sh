#!/bin/sh
# Fill traefik.yml's @VARS@ from the environment and run Traefik on the result (see traefik.yml).
set -eu
: "${COMPOSE_PROJECT:?COMPOSE_PROJECT must name the compose project Traefik serves}"
out=/tmp/traefik.yml
drop_acme=
[ -n "${ACME_EMAIL:-}" ] || drop_acme='/^# BEGIN acme/,/^# END acme/d'
sed -e "${drop_acme:-/^# BEGIN acme/d}" -e "s|@COMPOSE_PROJECT@|${COMPOSE_PROJECT}|g" \
    -e "s|@DOCKER_ENDPOINT@|${DOCKER_ENDPOINT:-unix:///var/run/docker.sock}|g" \
    -e "s|@ACME_EMAIL@|${ACME_EMAIL:-}|g" \
    -e "s|@LOG_LEVEL@|${TRAEFIK_LOG_LEVEL:-INFO}|g" \
    -e "s|@METRICS_PORT@|${TRAEFIK_METRICS_PORT:-8082}|g" \
    -e "s|@INSTANCE_API_PORT@|${TRAEFIK_INSTANCE_API_PORT:-9082}|g" \
    -e "s|@INSTANCE@|${TRAEFIK_INSTANCE:-traefik}|g" \
    /etc/traefik/traefik.yml >"$out"

# Drain before stopping (compose/traefik-net/drain_config.py says why): on SIGTERM, mark this
# instance draining, so that traefik-net serves it a `drain` middleware answering
# `Connection: close`; give its HTTP provider time to load it and every client time for one more
# request, which ends its keep-alive connection cleanly; only then pass SIGTERM to Traefik.
marks=/run/lb
mark="$marks/drain-${TRAEFIK_INSTANCE:-traefik}"
rm -f "$mark" 2>/dev/null || true
traefik --configFile="$out" "$@" &
pid=$!
drain() {
  touch "$mark" 2>/dev/null || true
  sleep "${TRAEFIK_DRAIN_SECONDS:-2}"
  kill -TERM "$pid" 2>/dev/null || true
}
trap drain TERM INT
status=0
wait "$pid" || status=$?
if [ -e "$mark" ]; then  # the trap ran: wait for Traefik's own graceful stop
  status=0
  wait "$pid" || status=$?
  rm -f "$mark" 2>/dev/null || true
fi
exit "$status"
