# jhplatform: `make demo` runs the platform locally; `make test` runs the whole suite.
# Both install what they need into ./.venv (Python packages and the npm proxy) and are idempotent.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CHP_VERSION := 5.2.0
CHP := $(VENV)/node_modules/.bin/configurable-http-proxy
PYTEST_ARGS ?=
DEMO_PORT ?= 8000
DEMO_DIR := .demo

DOCS_BUILD := build/docs
# C headers from Debian for pycurl (tornado's curl client, which z2jh's hub config selects) and
# psycopg2 (in the hub image's requirements, which the image-environment test installs).
CURL_CONFIG := /usr/bin/curl-config
PG_CONFIG := /usr/bin/pg_config

.PHONY: demo test docs install clean help bench reliability

help:
	@echo "make demo   - run the platform locally: the hub as z2jh's hub pod runs it, on the Kubernetes API emulator"
	@echo "make test   - install everything the suite needs, build the docs and run the suite"
	@echo "make bench  - run every benchmark, ours against the stock component, into one table and JSON"
	@echo "make reliability - the reliability suite at full size (make test runs it at CI size)"
	@echo "make docs   - build the documentation into $(DOCS_BUILD)/html (warnings are errors)"

# The hub's own packages at the versions z2jh 4.4.0's hub image pins (its requirements.txt), so
# the suite and the demo run the hub the image runs; KubeSpawner and idle-culler are the two the
# Dockerfile upgrades, so they come from pyproject.toml. tests/unit/test_hub_image_pins.py checks.
HUB_IMAGE_REQUIREMENTS := tests/data/z2jh-4.4.0/hub-image-requirements.txt
HUB_IMAGE_PINS := jupyterhub|oauthenticator|kubernetes-asyncio|tornado|sqlalchemy|alembic|traitlets|pycurl|aiohttp

$(VENV)/.installed: pyproject.toml $(HUB_IMAGE_REQUIREMENTS) Makefile | $(CURL_CONFIG) $(PG_CONFIG)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	grep -iE '^($(HUB_IMAGE_PINS))==' $(HUB_IMAGE_REQUIREMENTS) > $(VENV)/hub-image-pins.txt
	$(PY) -m pip install --quiet -c $(VENV)/hub-image-pins.txt -e '.[test,demo]'
	touch $@

# configurable-http-proxy from npm, at the version z2jh 4.4.0's proxy image runs.
$(CHP): | $(VENV)/.installed
	npm install --prefix $(VENV) --no-audit --no-fund --silent configurable-http-proxy@$(CHP_VERSION)

# Debian's Chromium, for the headless-browser tests (playwright drives it; it downloads no browser).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(CHROMIUM):
	$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

$(CURL_CONFIG):
	$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libcurl4-openssl-dev

$(PG_CONFIG):
	$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpq-dev

# Debian's Prometheus, for the culler's tests (they start their own instance on loopback with a
# temporary config and storage; the package's system service is never used).
PROMETHEUS := /usr/bin/prometheus

$(PROMETHEUS):
	$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus

install: $(VENV)/.installed $(CHP) $(CHROMIUM) $(PROMETHEUS)

# The guides and the configuration reference (generated from the traits' help texts); a
# broken link, a bad help text or a page missing from the index fails the build.
docs: $(VENV)/.installed
	$(VENV)/bin/sphinx-build -E -q -W --keep-going -b html docs $(DOCS_BUILD)/html

test: install docs
	PATH="$(abspath $(VENV))/bin:$(abspath $(VENV))/node_modules/.bin:$$PATH" $(PY) -m pytest $(PYTEST_ARGS)

# Every benchmark, ours against the stock component measured in the same run: one table printed,
# the figures in tests/benchmarks/out/report.json (docs/performance.md). BENCH_ARGS=--quick for a smoke run.
BENCH_ARGS ?=
bench: install
	PATH="$(abspath $(VENV))/bin:$(abspath $(VENV))/node_modules/.bin:$$PATH" $(PY) tests/benchmarks/run.py $(BENCH_ARGS)

# The reliability suite at full size (docs/reliability.md); `make test` runs it at CI size. A full-size
# storm outlasts the suite's 300 s per-test limit, hence the longer one.
reliability: install
	PATH="$(abspath $(VENV))/bin:$(abspath $(VENV))/node_modules/.bin:$$PATH" JHPLATFORM_RELIABILITY_SIZE=full \
		$(PY) -m pytest tests/reliability -o timeout=2400 $(PYTEST_ARGS)

# The hub runs as z2jh 4.4.0's hub pod runs it (jhplatform/z2jh, docs/z2jh-loader.md), from these values.
DEMO_VALUES ?= helm-values/demo.yaml

# `make demo RESET=1` empties the demo's state (hub database, home directories) first.
demo: install
	PATH="$(abspath $(VENV))/bin:$(abspath $(VENV))/node_modules/.bin:$$PATH" \
		$(VENV)/bin/jhplatform demo $(DEMO_VALUES) --port $(DEMO_PORT) --state-dir $(DEMO_DIR) $(if $(RESET),--reset)

clean:
	rm -rf $(VENV) $(DEMO_DIR) $(DOCS_BUILD) .pytest_cache
