# jhplatform: `make demo` runs the platform locally; `make test` runs the whole suite.
# Both install what they need into ./.venv (Python packages and the npm proxy) and are idempotent.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CHP_VERSION := 5.2.0
CHP := $(VENV)/node_modules/.bin/configurable-http-proxy
PYTEST_ARGS ?=
DEMO_PORT ?= 8001
DEMO_DIR := .demo

.PHONY: demo test install clean help

help:
	@echo "make demo   - run the platform locally (Kubernetes API emulator with a GPU node pool)"
	@echo "make test   - install everything the suite needs and run it"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# configurable-http-proxy from npm, at the version z2jh 4.4.0's proxy image runs.
$(CHP): | $(VENV)/.installed
	npm install --prefix $(VENV) --no-audit --no-fund --silent configurable-http-proxy@$(CHP_VERSION)

# Debian's Chromium, for the headless-browser tests (playwright drives it; it downloads no browser).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(CHROMIUM):
	$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

install: $(VENV)/.installed $(CHP) $(CHROMIUM)

test: install
	PATH="$(abspath $(VENV))/bin:$(abspath $(VENV))/node_modules/.bin:$$PATH" $(PY) -m pytest $(PYTEST_ARGS)

demo: install
	@mkdir -p $(DEMO_DIR)
	PATH="$(abspath $(VENV))/bin:$(abspath $(VENV))/node_modules/.bin:$$PATH" \
		$(VENV)/bin/jhplatform devcluster --port $(DEMO_PORT) --kubeconfig $(DEMO_DIR)/kubeconfig \
		--state-dir $(DEMO_DIR)/state --sample \
		--serviceaccount-kubeconfig jhub:hub=$(DEMO_DIR)/hub.kubeconfig

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
