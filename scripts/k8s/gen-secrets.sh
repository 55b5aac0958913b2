#!/usr/bin/env bash
# Write the secret files an overlay's secretGenerator reads, never overwriting one (git-ignored:
# <overlay>/secrets/). Random API tokens and, for an overlay with a bundled database (dev), a
# random PostgreSQL password and the URL to it. An external database's URL (prod) is yours:
# pass it in DATABASE_URL; nothing in the repository holds one.
#   scripts/k8s/gen-secrets.sh k8s/overlays/dev
#   DATABASE_URL='postgresql://USER:PASSWORD@HOST:5432/DB' scripts/k8s/gen-secrets.sh k8s/overlays/prod
set -euo pipefail
overlay=${1:?usage: gen-secrets.sh <overlay dir>}
[ -f "$overlay/kustomization.yaml" ] || { echo "gen-secrets: $overlay has no kustomization.yaml" >&2; exit 2; }
dir=$overlay/secrets
mkdir -p "$dir"
chmod 0700 "$dir"
rand() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
write() {  # name, value: only when missing
	[ -s "$dir/$1" ] && return
	(umask 077 && printf '%s' "$2" >"$dir/$1.part")
	mv "$dir/$1.part" "$dir/$1"
	echo "gen-secrets: wrote $dir/$1"
}

write api_tokens "$(rand)"
if grep -q 'postgres-password=' "$overlay/kustomization.yaml"; then
	write postgres_password "$(rand)"
	write database_url "postgresql://app:$(cat "$dir/postgres_password")@postgres:5432/app"
elif [ ! -s "$dir/database_url" ]; then
	[ -n "${DATABASE_URL:-}" ] || {
		echo "gen-secrets: $overlay uses an external database: set DATABASE_URL" >&2
		exit 2
	}
	write database_url "$DATABASE_URL"
fi
