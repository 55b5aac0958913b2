#!/usr/bin/env bash
# Create the stack's secret files once (never overwrites): random values, mode 0600/0644 as the
# consuming container needs, in SECRETS_DIR (git-ignored). Compose mounts them as `secrets:`.
set -euo pipefail
dir=${SECRETS_DIR:-$(cd "$(dirname "$0")/.." && pwd)/secrets}
mkdir -p "$dir" "$dir/alertmanager"  # alertmanager/: optional receiver secrets
chmod 0700 "$dir"

rand() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
made=()
make_secret() {  # name, command producing the value
  local f="$dir/$1"; shift
  [ -s "$f" ] && return
  "$@" >"$f.part"
  mv "$f.part" "$f"
  made+=("$(basename "$f")")
}

make_secret postgres_password rand
make_secret api_tokens rand
make_secret dashboard_password rand
make_secret grafana_admin_password rand
# Traefik's basicAuth reads htpasswd lines; apr1 (MD5) is what `htpasswd -m` writes.
make_secret dashboard_htpasswd sh -c "printf 'admin:%s\n' \"\$(openssl passwd -apr1 -in '$dir/dashboard_password')\""
# A self-signed certificate for websecure on this machine; production uses ACME (docs/production.md).
if [ ! -s "$dir/tls.crt" ] || [ ! -s "$dir/tls.key" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$dir/tls.key" -out "$dir/tls.crt" 2>/dev/null
  made+=(tls.crt tls.key)
fi
# Containers run as non-root users that are not the file owner, so the files are world-readable;
# the directory stays 0700, which keeps other host users out (a bind mount ignores host parents).
find "$dir" -maxdepth 1 -type f -exec chmod 0644 {} +
chmod 0755 "$dir/alertmanager"
chmod 0700 "$dir"
if [ ${#made[@]} -gt 0 ]; then echo "secrets: created ${made[*]} in $dir"; fi
