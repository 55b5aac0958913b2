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
    /etc/traefik/traefik.yml >"$out"
exec traefik --configFile="$out" "$@"
