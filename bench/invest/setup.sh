#!/usr/bin/env bash
# The InVEST bench environment: natcap-invest built from its source distribution
# in its own virtual environment (.venv-invest), so its pinned GDAL/numpy stack
# never mixes with terraops' .venv. Only `make bench` needs it; `make test` never
# does. Idempotent: a second run with everything in place costs a few seconds.
# About 8 minutes on 2 cores the first time (GDAL bindings, pygeoprocessing and
# InVEST's Cython extensions are compiled here).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${INVEST_VENV:-$ROOT/.venv-invest}"
PYTHON="${PYTHON:-python3}"
INVEST_VERSION="${INVEST_VERSION:-3.20.*}"
export MAKEFLAGS="${MAKEFLAGS:--j1}"

# System headers and a compiler: the GDAL Python bindings compile against them.
need=()
command -v gdal-config >/dev/null 2>&1 || need+=(libgdal-dev)
command -v g++ >/dev/null 2>&1 || need+=(g++)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then AS_ROOT=(); else AS_ROOT=(sudo -n); fi
  "${AS_ROOT[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${AS_ROOT[@]}" apt-get install -y -qq "${need[@]}"
fi

if "$VENV/bin/python" -c "import natcap.invest.urban_cooling_model, osgeo.gdal_array" 2>/dev/null; then
  echo "invest: $("$VENV/bin/python" -c 'import natcap.invest; print(natcap.invest.__version__)') ready in $VENV"
  exit 0
fi

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
# InVEST's build calls the venv's tools (pybabel) by name.
export PATH="$VENV/bin:$PATH"
PIP=("$VENV/bin/python" -m pip install --quiet --no-build-isolation)
"$VENV/bin/python" -m pip install --quiet --upgrade "pip>=24"
# Build tools first: every package below is built without isolation against these.
"$VENV/bin/python" -m pip install --quiet numpy "setuptools>=77,<80" "cython<3.1" babel wheel \
  "setuptools_scm>=8"
# The bindings must match the system library exactly.
"${PIP[@]}" "GDAL==$(gdal-config --version)"
"${PIP[@]}" pygeoprocessing
"${PIP[@]}" --no-binary natcap-invest "natcap-invest==$INVEST_VERSION"
"$VENV/bin/python" -c "import natcap.invest.urban_cooling_model, osgeo.gdal_array; \
import natcap.invest; print('invest:', natcap.invest.__version__, 'ready')"
