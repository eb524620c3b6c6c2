#!/usr/bin/env bash
# Debian packages terraops' tests need. Installs only what is missing, so a
# second run costs nothing. Needs root (CI runs as root) or sudo.
set -euo pipefail

# package -> a file that proves it is installed
declare -A WANT=(
  [chromium]=/usr/bin/chromium
  [prometheus]=/usr/bin/prometheus
)

missing=()
for pkg in "${!WANT[@]}"; do
  [ -e "${WANT[$pkg]}" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "missing Debian packages: ${missing[*]} (run as root: apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
