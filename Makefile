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
# Two real cities on the map beside it: Liverpool (Landsat 8 Level-2 with surface temperature;
# the map opens on it) and dense Olinda/Recife (Landsat 7, no thermal band, with an elevation
# model, from a Debian package). Fetched by `terraops samples fetch`, checksum verified, from
# the copies `make test-samples` keeps (else their public sources).
SAMPLES_KEPT := $(CURDIR)/.cache/samples/downloads
LIVERPOOL_SAMPLE_DIR := $(TERRAOPS_HOME)/samples/landsat8-l2-LC08_L2SP_204023_20200927-cropped
OLINDA_SAMPLE_DIR := $(TERRAOPS_HOME)/samples/olinda-recife-landsat7-r-cran-stars
OLINDA_CITY ?= $(TERRAOPS_HOME)/real/olinda-recife
MAP_OPENS_ON ?= LC08_L2SP_204023_20200927_20201006_02_T1
STORMS      ?= 30 50 100
ADMIN_TOKEN_FILE := $(TERRAOPS_HOME)/admin-token
# The U-Net for building, water and tree footprints, trained on two demo cities and checked on
# a third: the service's defaults but half its epochs (about 2 minutes on 2 cores), promoted
# through the building-IoU gate (forced, and said so, only if it falls short on that city).
SEG_SCENES  ?= $(SCENES)/city1 $(SCENES)/city2
SEG_VAL     ?= $(SCENES)/city3
SEG_EPOCHS  ?= 24
SEG_PARAMS  ?=
# `make cards` refreshes the committed cards; the demo writes its own under the home.
CARDS_DIR   ?= docs/model_cards
DEMO_CARDS  := $(TERRAOPS_HOME)/model_cards
DEMO_START  := $(TERRAOPS_HOME)/.demo-started
STEP        := $(BIN)/python scripts/demo.py step --start-file $(DEMO_START)
# `make demo` installs once, then runs each stage with DEMO_STAGE=1, which skips the re-check.
SUBMAKE     := $(MAKE) --no-print-directory DEMO_STAGE=1
INSTALL_STEPS := $(if $(DEMO_STAGE),,$(STAMP) system-deps test-samples)
PYTEST_ARGS ?=

.PHONY: help install system-deps test-samples check-env demo demo-cards demo-whatif case-studies bench-segmentation-home scenes train segmentation unseen real evalsets promote maps real-eval cards serve smoke test test-fast lint format bench bench-invest-env clean docs

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

# Everything: core + the U-Net stack (segment extra) + test tools + the docs site (docs
# extra). A core install without torch is `pip install -c constraints.txt -e .` (README). As a user without root or
# passwordless sudo, system-deps installs nothing and says which tests that costs.
install: $(INSTALL_STEPS) ## Create/refresh .venv and install pinned dependencies

# The real samples the tests read (tests never download; without them those tests skip).
# Offline, the tests still run: the failure is reported and the sample tests skip.
test-samples: $(STAMP) ## Fetch the real samples the tests read into .cache/samples
	@$(BIN)/python scripts/fetch_test_samples.py || \
	  echo "samples: not fetched (see above); the tests that read them will skip"

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@rm -f $(VENV)/.installed-*
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,segment,docs]"
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

train: scenes ## Train both services (alias 'challenger'; the first that passes the gates: champion)
	$(BIN)/terraops train uhi --scenes $(SCENES)/city* --champion-if-none
	$(BIN)/terraops train flood --scenes $(SCENES)/city* --champion-if-none

segmentation: scenes unseen ## The U-Net champion (reused when there is one) → footprints on the map
	@$(BIN)/python scripts/demo.py has-champion segmentation || ( \
	  $(BIN)/terraops segment train --scenes $(SEG_SCENES) --val-scenes $(SEG_VAL) \
	    --epochs $(SEG_EPOCHS) $(SEG_PARAMS) && \
	  ( $(BIN)/terraops promote segmentation --challenger --reason "demo: the default training, $(SEG_EPOCHS) epochs" || \
	    $(BIN)/terraops promote segmentation --challenger --force \
	      --reason "demo: below the building-IoU gate on the demo's held-out city" ) )
	$(BIN)/terraops segment predict --scene $(MAP_CITY)

unseen: install ## The held-out city no model trains on (evaluation sets and the map)
	@test -f $(MAP_CITY)/scene.json || $(BIN)/terraops scene generate --seed $(MAP_SEED) \
	  --morphology $(MAP_MORPH) --size $(MAP_SIZE) --out $(MAP_CITY)
real: install ## Fetch the real samples and import them as scenes (each skipped when present)
	@test -f $(REAL_CITY)/scene.json || ($(BIN)/terraops samples fetch --sample landsat8 && \
	  $(BIN)/terraops scene import landsat $(REAL_PRODUCT) --bbox $(REAL_BBOX) --bbox-crs product \
	    --out $(REAL_CITY))
	@test -f $(LIVERPOOL_CITY)/scene.json || (TERRAOPS_SAMPLES_MIRROR=$${TERRAOPS_SAMPLES_MIRROR:-$(SAMPLES_KEPT)} \
	  $(BIN)/terraops samples fetch --sample liverpool || echo "Liverpool: skipped, its sample \
	could not be fetched (above); the demo goes on with the other cities")
	@test -f $(LIVERPOOL_CITY)/scene.json || test ! -d $(LIVERPOOL_SAMPLE_DIR) || \
	  $(BIN)/terraops scene import landsat $(LIVERPOOL_SAMPLE_DIR) --out $(LIVERPOOL_CITY)
	@test -f $(OLINDA_CITY)/scene.json || (TERRAOPS_SAMPLES_MIRROR=$${TERRAOPS_SAMPLES_MIRROR:-$(SAMPLES_KEPT)} \
	  $(BIN)/terraops samples fetch --sample olinda && \
	  $(BIN)/terraops scene import landsat7 $(OLINDA_SAMPLE_DIR)/L7_ETMs.tif --name olinda-recife \
	    --dem $(OLINDA_SAMPLE_DIR)/olinda_dem_utm25s.tif --out $(OLINDA_CITY))

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
	  TERRAOPS_MAP_SCENE=$${TERRAOPS_MAP_SCENE-$(MAP_OPENS_ON)} \
	  $(BIN)/terraops serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

smoke: install ## Ask a running server for a prediction (make serve in another shell)
	$(BIN)/python scripts/smoke.py --url http://$(HOST):$(PORT)

maps: unseen real ## Predict the unseen city and the real ones with the champions → COGs, layers
	$(BIN)/terraops predict-raster uhi --scene $(MAP_CITY)
	$(BIN)/terraops predict-raster uhi --scene $(REAL_CITY)
	@test ! -f $(LIVERPOOL_CITY)/scene.json || $(BIN)/terraops predict-raster uhi --scene $(LIVERPOOL_CITY)
	$(BIN)/terraops predict-raster uhi --scene $(OLINDA_CITY)
	$(BIN)/terraops predict-raster flood --scene $(OLINDA_CITY) --param rainfall_mm=50
	@for storm in $(STORMS); do \
	  $(BIN)/terraops predict-raster flood --scene $(MAP_CITY) --param rainfall_mm=$$storm || exit 1; done
	$(BIN)/terraops layers list

real-eval: real ## Score the UHI champion on the real Landsat cities against a one-line NDVI fit
	$(BIN)/terraops evaluate-real uhi --scene $(REAL_CITY)
	@test ! -f $(LIVERPOOL_CITY)/scene.json || $(BIN)/terraops evaluate-real uhi --scene $(LIVERPOOL_CITY)
cards: install ## Refresh the committed model cards (docs/model_cards) from the champions in MLflow
	$(BIN)/terraops card uhi --out $(CARDS_DIR)/uhi.md
	$(BIN)/terraops card flood --out $(CARDS_DIR)/flood.md

# The heat case study of the map city, in the home: it draws a greening plan from the scene
# (street trees, a park), runs it as a what-if whose layers land on the map, and writes the
# page with its figures (skipped when present).
demo-whatif: install ## A what-if and its case study on the map city (under the home)
	@test -f $(TERRAOPS_HOME)/case-studies/heat/index.md || $(BIN)/terraops report case-study \
	  heat --scene $(MAP_CITY) --out $(TERRAOPS_HOME)/case-studies/heat --city "the demo city"

demo-cards: install ## The demo's model cards, written under the home (the committed ones are untouched)
	$(BIN)/terraops card uhi --out $(DEMO_CARDS)/uhi.md
	$(BIN)/terraops card flood --out $(DEMO_CARDS)/flood.md
	$(BIN)/terraops card segmentation --out $(DEMO_CARDS)/segmentation.md

# The case studies in docs/case-studies, computed by the demo's champions: on the map city
# and on a real one, the Liverpool Landsat 8 Level-2 crop of the test samples (it has no
# elevation model, so its flood study says why it does not apply). Paths in the pages are
# written relative to the repository.
LIVERPOOL_PRODUCT := .cache/samples/landsat8-l2-LC08_L2SP_204023_20200927-cropped
LIVERPOOL_CITY ?= $(TERRAOPS_HOME)/real/liverpool
CASE_STUDIES ?= docs/case-studies
REPORT      := $(BIN)/terraops report case-study
case-studies: train segmentation ## The heat and flood case studies (docs/case-studies), computed by the champions
	@test -f $(LIVERPOOL_CITY)/scene.json || $(BIN)/terraops scene import landsat \
	  $(LIVERPOOL_PRODUCT) --out $(LIVERPOOL_CITY)
	@for study in heat flood; do \
	  $(REPORT) $$study --scene $(patsubst $(CURDIR)/%,%,$(MAP_CITY)) --city "a synthetic city" \
	    --out $(CASE_STUDIES)/$$study/synthetic-city && \
	  $(REPORT) $$study --scene $(patsubst $(CURDIR)/%,%,$(LIVERPOOL_CITY)) --city Liverpool \
	    --out $(CASE_STUDIES)/$$study/liverpool || exit 1; done

# Each stage in order, with a progress line; every file it writes is under $(TERRAOPS_HOME).
demo: ## Build everything on the embedded defaults (cities, models, maps, footprints) and serve it
	@mkdir -p $(TERRAOPS_HOME) && date +%s > $(DEMO_START)
	@$(MAKE) --no-print-directory install
	@$(STEP) 1/8 "Six synthetic training cities"
	@$(SUBMAKE) scenes
	@$(STEP) 2/8 "Heat and flood models (spatial CV, MLflow; the first good one is champion)"
	@$(SUBMAKE) train
	@$(STEP) 3/8 "A held-out city no model trains on, and the sets the promotion gates score"
	@$(SUBMAKE) evalsets
	@$(STEP) 4/8 "Maps: heat (the held-out city, Liverpool, Olinda/Recife, the Gulf coast), and flood"
	@$(SUBMAKE) maps
	@$(STEP) 5/8 "Building footprints: a U-Net (about 2 minutes)"
	@$(SUBMAKE) segmentation
	@$(STEP) 6/8 "A greening plan run as a what-if (its cooling on the map), and its case study"
	@$(SUBMAKE) demo-whatif
	@$(STEP) 7/8 "The real Landsat city, and the model cards"
	@$(SUBMAKE) real-eval demo-cards
	@$(STEP) 8/8 "Serving"
	@$(BIN)/python scripts/demo.py summary --url http://$(HOST):$(PORT) --start-file $(DEMO_START) \
	  --token-file $(ADMIN_TOKEN_FILE) --cards $(DEMO_CARDS)
	@$(SUBMAKE) serve

# The documentation site into site/. Strict: a broken link or any warning fails it, and
# tests/code/test_docs_site.py runs the same build, so `make test` (and CI) fails too.
docs: install ## Build the documentation site into site/ (CLI, HTTP, config pages generated)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

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

bench: install bench-invest-env ## Benchmarks, written to BENCHMARKS.md (needs wrk)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)
	$(BIN)/python bench/run.py --out BENCHMARKS.md
	$(BIN)/python bench/explain_stability.py --out BENCHMARKS.md
	$(BIN)/python bench/uncertainty.py --out BENCHMARKS.md
	$(BIN)/python bench/whatif_validation.py --out BENCHMARKS.md --home $(TERRAOPS_HOME)
	@$(MAKE) --no-print-directory real
	$(BIN)/python bench/real_city.py --out BENCHMARKS.md --home $(TERRAOPS_HOME) --real $(LIVERPOOL_CITY)
	@$(MAKE) --no-print-directory bench-segmentation-home
	TERRAOPS_HOME=$(BENCH_SEG_HOME) $(BIN)/python bench/segment_upload_latency.py --scene $(SCENES)/city1 --out BENCHMARKS.md
	$(BIN)/python -m bench.memory --out BENCHMARKS.md
	$(BIN)/python bench/whole_scene.py --out BENCHMARKS.md
	$(BIN)/python bench/cli_speed.py --out BENCHMARKS.md
	$(BIN)/python bench/costs.py --out BENCHMARKS.md

# The upload benchmark times a champion that passed the promotion gate: the service's default
# architecture and training on five 512² cities, scored on a sixth (about 3 minutes on 2 cores).
BENCH_SEG_HOME ?= $(TERRAOPS_HOME)/bench-segmentation
BENCH_SEG_CITIES := 11:dense 12:sprawl 13:coastal 14:dense 16:dense
bench-segmentation-home: install ## The gate-passing segmentation champion the upload benchmark times
	@$(MAKE) --no-print-directory scenes TERRAOPS_HOME=$(BENCH_SEG_HOME) \
	  DEMO_SEEDS="$(BENCH_SEG_CITIES) 15:sprawl" DEMO_SIZE=512
	@TERRAOPS_HOME=$(BENCH_SEG_HOME) $(BIN)/python scripts/demo.py has-champion segmentation || ( \
	  TERRAOPS_HOME=$(BENCH_SEG_HOME) $(BIN)/terraops segment train \
	    --scenes $(foreach spec,$(BENCH_SEG_CITIES),$(BENCH_SEG_HOME)/scenes/city$(firstword $(subst :, ,$(spec)))) \
	    --val-scenes $(BENCH_SEG_HOME)/scenes/city15 && \
	  TERRAOPS_HOME=$(BENCH_SEG_HOME) $(BIN)/terraops promote segmentation --challenger \
	    --reason "benchmark: the service's default training")

# InVEST Urban Cooling in its own environment (.venv-invest): the what-if validation's
# reference model. Built from source, about 8 minutes the first time; never needed by tests.
bench-invest-env: ## The separate InVEST environment the what-if validation compares with
	@MAKEFLAGS=-j1 bash bench/invest/setup.sh

clean:
	rm -rf .terraops .pytest_cache .mypy_cache .ruff_cache .hypothesis site
