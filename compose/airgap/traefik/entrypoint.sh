#!/bin/sh
# Same contract as the official image's entrypoint: flags alone run traefik with them.
set -e
if [ "${1#-}" != "$1" ]; then
  set -- traefik "$@"
fi
if traefik "$1" --help >/dev/null 2>&1; then
  set -- traefik "$@"
fi
exec "$@"
