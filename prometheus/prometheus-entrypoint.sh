#!/bin/sh
# Start Prometheus with the desired replica count of `web` (WEB_DESIRED_REPLICAS, from
# WEB_REPLICAS in compose) written as a rules file, since Prometheus reads no environment.
# See prometheus/rules/replicas.yml. Arguments go to Prometheus.
set -eu

desired=${WEB_DESIRED_REPLICAS:-3}
case $desired in
  '' | *[!0-9]*) echo "WEB_DESIRED_REPLICAS must be a whole number, got '$desired'" >&2; exit 2 ;;
esac

dir=/etc/prometheus/generated
cat > "$dir/desired_replicas.yml" <<RULES
# Written by prometheus-entrypoint.sh at start from WEB_DESIRED_REPLICAS.
groups:
  - name: compose_ha_desired_replicas
    rules:
      - record: compose_ha_web_desired_replicas
        expr: vector($desired)
        labels:
          source: env
RULES

exec /bin/prometheus "$@"
