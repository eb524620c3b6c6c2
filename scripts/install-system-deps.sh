#!/usr/bin/env bash
# Debian packages terraops' tests need. Installs only what is missing, so a
# second run costs nothing. Installing needs root (CI runs as root) or
# passwordless sudo. Without either it installs nothing, says which packages
# are missing and which tests that costs, and exits 0: `make install` as an
# ordinary user still gives a working .venv (`make check-env` repeats the list).
set -euo pipefail

# In this order: package, a file (glob) that proves it is installed, and what a
# machine without it loses in the test suite.
PACKAGES=(chromium prometheus prometheus-alertmanager postgresql)
declare -A PROOF=(
  [chromium]=/usr/bin/chromium
  [prometheus]=/usr/bin/prometheus
  [prometheus-alertmanager]=/usr/bin/prometheus-alertmanager
  [postgresql]='/usr/lib/postgresql/*/bin/postgres'
)
declare -A LOSS=(
  [chromium]="browser tests (tests/e2e, marker e2e) fail"
  [prometheus]="metrics tests (tests/integration/test_prometheus.py) fail; promtool SLO rule tests and the alert delivery test are skipped"
  [prometheus-alertmanager]="alert delivery test (tests/integration/test_alerting.py) is skipped"
  [postgresql]="scale-out tests (tests/integration/test_shared_registry.py) are skipped"
)

installed() {
  local proof
  for proof in ${PROOF[$1]}; do # unquoted on purpose: the glob expands here
    [ -e "$proof" ] && return 0
  done
  return 1
}

missing=()
for pkg in "${PACKAGES[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

AS_ROOT=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    AS_ROOT=(sudo -n)
  else
    {
      echo "system-deps: not root and no passwordless sudo, so these Debian packages are NOT installed:"
      for pkg in "${missing[@]}"; do
        printf '  %-23s -> %s\n' "$pkg" "${LOSS[$pkg]}"
      done
      echo "  install them as root: apt-get install -y --no-install-recommends ${missing[*]}"
      echo "  (Python packages are not affected; \`make check-env\` lists what is missing)"
    } >&2
    exit 0
  fi
fi
echo "installing Debian packages: ${missing[*]}"
APT=("${AS_ROOT[@]}" env DEBIAN_FRONTEND=noninteractive apt-get) # env: sudo resets it
"${APT[@]}" update -qq
"${APT[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
