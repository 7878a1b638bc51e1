#!/usr/bin/env bash
# Installs Debian's chromium, which the dashboard's browser test drives headless through Playwright (no browser
# download). Quiet unless it fails; runs `apt-get update` only when the first install attempt fails.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo -n"
fi
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "installing chromium (Debian package) for the dashboard's browser test ..."
if ! $sudo apt-get install -y -q chromium >"$log" 2>&1; then
  $sudo apt-get update -q >>"$log" 2>&1 || true
  if ! $sudo apt-get install -y -q chromium >>"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "error: could not install chromium (apt-get install chromium)" >&2
    exit 1
  fi
fi
