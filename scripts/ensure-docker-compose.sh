#!/usr/bin/env bash
# Installs Debian's docker-compose (v1), which `make test` uses to validate docker-compose.yml. Quiet unless it
# fails; runs `apt-get update` only when the first install attempt fails.
set -euo pipefail

if command -v docker-compose >/dev/null 2>&1; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo -n"
fi
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "installing docker-compose (Debian package) to validate docker-compose.yml ..."
if ! $sudo apt-get install -y -q docker-compose >"$log" 2>&1; then
  $sudo apt-get update -q >>"$log" 2>&1 || true
  if ! $sudo apt-get install -y -q docker-compose >>"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "error: could not install docker-compose (apt-get install docker-compose)" >&2
    exit 1
  fi
fi
