#!/bin/sh
# Entrypoint of the socket proxy (docker-compose.ha.yml): start HAProxy as the unprivileged
# haproxy user in the group that owns the Docker socket, whatever that group's id is on this host.
# HAProxy itself drops from root to these ids after reading its configuration (needs only the
# SETUID/SETGID capabilities); without the root start it keeps the user compose gives it.
set -eu
sock=/var/run/docker.sock
[ -S "$sock" ] || { echo "socket-proxy: $sock is not mounted" >&2; exit 1; }
if [ "$(id -u)" = 0 ]; then
  SOCKET_PROXY_UID=${SOCKET_PROXY_UID:-$(id -u haproxy)}
  SOCKET_PROXY_GID=${SOCKET_PROXY_GID:-$(stat -c %g "$sock")}
else
  SOCKET_PROXY_UID=$(id -u) SOCKET_PROXY_GID=$(id -g)
fi
export SOCKET_PROXY_UID SOCKET_PROXY_GID
exec haproxy -db -f "${HAPROXY_CONFIG:-/usr/local/etc/haproxy/haproxy.cfg}" "$@"
