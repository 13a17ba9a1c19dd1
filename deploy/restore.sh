#!/usr/bin/env bash
# Restore a backup folder. Stop the bot first (web workers and scheduler):
#   systemctl stop 'hoctap-web@*' hoctap-scheduler
#   deploy/restore.sh /srv/hoctap/backups/hoctap-20261125-023000
#   systemctl start hoctap-web@8081 hoctap-web@8082 hoctap-scheduler
set -euo pipefail
folder=${1:?usage: restore.sh <backup folder>}
here=$(cd "$(dirname "$0")/.." && pwd)
hoctap=${HOCTAP:-$here/.venv/bin/hoctap}
"$hoctap" restore "$folder"
