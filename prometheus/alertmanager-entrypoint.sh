#!/bin/sh
# Start Alertmanager with the deployment's non-secret settings from the environment.
# Alertmanager 0.25 expands no environment variables, so the defaults written in
# /etc/alertmanager/alertmanager.yml are replaced here, and the result is written to the data
# directory (the root filesystem stays read-only). Extra arguments go to Alertmanager.
set -eu

src=/etc/alertmanager/alertmanager.yml
dst=/alertmanager/alertmanager.yml

# Escape a value for the replacement side of a sed s|||.
esc() { printf '%s' "$1" | sed -e 's/[|&\\]/\\&/g'; }

sed \
  -e "s|http://alert-webhook:9095/alerts|$(esc "${ALERT_WEBHOOK_URL:-http://alert-webhook:9095/alerts}")|" \
  -e "s|oncall@example.invalid|$(esc "${ALERT_EMAIL_TO:-oncall@example.invalid}")|" \
  -e "s|alertmanager@example.invalid|$(esc "${ALERT_EMAIL_FROM:-alertmanager@example.invalid}")|" \
  -e "s|smtp.example.invalid:587|$(esc "${SMTP_SMARTHOST:-smtp.example.invalid:587}")|" \
  -e "s|smtp_auth_username: \"alertmanager\"|smtp_auth_username: \"$(esc "${SMTP_USERNAME:-alertmanager}")\"|" \
  -e "s|channel: \"#alerts\"|channel: \"$(esc "${SLACK_CHANNEL:-#alerts}")\"|" \
  "$src" > "$dst"

exec /bin/alertmanager --config.file="$dst" --storage.path=/alertmanager "$@"
