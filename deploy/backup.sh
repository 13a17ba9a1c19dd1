#!/usr/bin/env bash
# Back up the database and evidence files into a dated folder, keeping the newest KEEP backups.
#   deploy/backup.sh /srv/hoctap/backups          (settings from the environment or .env)
set -euo pipefail
umask 077  # backups hold personal data: readable by this user only
target=${1:?usage: backup.sh <backup folder>}
keep=${KEEP:-14}
here=$(cd "$(dirname "$0")/.." && pwd)
hoctap=${HOCTAP:-$here/.venv/bin/hoctap}

"$hoctap" backup --out "$target"
# Oldest first; remove all but the newest $keep complete backups (those with a manifest).
mapfile -t backups < <(find "$target" -mindepth 1 -maxdepth 1 -type d -name 'hoctap-*' \
    -exec test -f '{}/manifest.json' \; -print | sort)
excess=$(( ${#backups[@]} - keep ))
for (( i = 0; i < excess; i++ )); do
    rm -rf -- "${backups[$i]}"
done
