# dirt — two commands on a fresh machine:
#   make demo   set everything up, start the sandbox, run a real drill, print the report path
#   make test   set everything up, run the whole suite (unit + integration + example drills)
#
# Everything below installs itself: Debian packages (apt-get), Go-built binaries
# (cached under $${XDG_CACHE_HOME:-~/.cache}/dirt/bin), Python deps (.venv).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DIRT := $(BIN)/dirt
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help deps venv system binaries test test-crash unit integration drills demo docs image bench bench-sandbox lint clean sandbox-down

help:
	@echo "make demo   - set up, start the sandbox, run the control-plane-down drill, print the report"
	@echo "make test   - set up and run the whole suite"
	@echo "make unit   - fast unit tests only"
	@echo "make test-crash - drills killed at their journal events and rolled back (FULL=1: every event)"
	@echo "make bench  - benchmarks (figures and ratios)"
	@echo "make bench-sandbox - restore and drill benchmarks on the real sandbox (minutes)"
	@echo "make image  - build the dirt runner image as an OCI archive (no docker, no registry)"
	@echo "make docs   - build the documentation site into site/ (strict: a broken link fails)"

deps: venv system binaries

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,ctk,docs]'
	@touch $@

system:
	@scripts/install-system-deps.sh

binaries: venv
	$(DIRT) sandbox build
	$(DIRT) kind build-image

# The quarterly game day (tests/integration/test_gameday_quarterly.py) runs these drills and
# asserts each passed: `make test` does not run them a second time on their own.
GAMEDAY_DRILLS := control-plane-down etcd-loss namespace-deletion cluster-deletion
IN_GAMEDAY := $(foreach d,$(GAMEDAY_DRILLS),--deselect scenarios/$(d).yaml::$(d))

# The suite starts from nothing but the caches of built binaries and packages: a fresh
# sandbox state in a temporary folder (unless DIRT_SANDBOX_HOME names one), removed after.
# Its order is shuffled (modules, and the tests within each: pytest-random-order) so that no
# test passes only because of those before it; DIRT_TEST_SEED=N repeats an order.
test: deps docs
	@home="$${DIRT_SANDBOX_HOME:-}"; fresh=""; \
	if [ -z "$$home" ]; then home=$$(mktemp -d -t dirt-sandbox-XXXXXX); fresh=1; fi; \
	seed="$${DIRT_TEST_SEED:-$$(( $$(od -An -N4 -tu4 /dev/urandom) % 1000000 ))}"; \
	echo "make test: sandbox state in $$home (fresh: only the binary cache is reused)"; \
	echo "make test: test order shuffled with seed $$seed (DIRT_TEST_SEED=$$seed make test repeats it)"; \
	status=0; DIRT_SANDBOX_HOME="$$home" $(BIN)/python -m pytest --durations=40 --random-order-bucket=module \
		--random-order-seed="$$seed" $(IN_GAMEDAY) tests scenarios || status=$$?; \
	echo "make test: test order seed $$seed"; \
	DIRT_SANDBOX_HOME="$$home" $(DIRT) sandbox down >/dev/null 2>&1 || true; \
	DIRT_SANDBOX_HOME="$$home" $(DIRT) kind down >/dev/null 2>&1 || true; \
	if [ -n "$$fresh" ]; then rm -rf "$$home"; fi; \
	exit $$status

# The crash matrix (tests/crash/matrix.py): drills SIGKILLed right after chosen journal events,
# then put back by `dirt rollback` from the journal alone; on a fresh sandbox state like `make test`.
# FULL=1: every event of five drills (by hand); SEED=N repeats the sampled points.
test-crash: deps
	@home="$${DIRT_SANDBOX_HOME:-}"; fresh=""; \
	if [ -z "$$home" ]; then home=$$(mktemp -d -t dirt-sandbox-XXXXXX); fresh=1; fi; \
	status=0; DIRT_SANDBOX_HOME="$$home" $(BIN)/python -m tests.crash.matrix $(if $(FULL),--full) \
		$(if $(SEED),--seed $(SEED)) || status=$$?; \
	DIRT_SANDBOX_HOME="$$home" $(DIRT) sandbox down >/dev/null 2>&1 || true; \
	if [ -n "$$fresh" ]; then rm -rf "$$home"; fi; \
	exit $$status

# The documentation site, strict: a broken link, a missing page or a page left out of the nav fails.
# Its Reference section is generated from the code (docs/hooks/reference.py) at every build.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

unit: venv
	$(BIN)/python -m pytest tests/unit -m "not integration"

integration: deps
	$(BIN)/python -m pytest tests/integration

drills: deps
	$(BIN)/python -m pytest scenarios

image: deps
	$(DIRT) image build

demo: deps
	$(DIRT) validate scenarios
	$(DIRT) sandbox up
	$(DIRT) plan scenarios/control-plane-down.yaml
	@status=0; $(DIRT) run scenarios/control-plane-down.yaml --display plain || status=$$?; \
	echo; \
	echo "Report: $$(ls -td reports/*/ | head -1)report.html  (all runs: reports/index.html)"; \
	echo "The sandbox keeps running: 'dirt sandbox status', 'dirt sandbox down' to remove it."; \
	exit $$status

bench: venv
	$(BIN)/python bench/bench_cli.py
	$(BIN)/python bench/bench_journal.py
	$(BIN)/python bench/bench_availability.py
	$(BIN)/python bench/bench_history.py
	$(BIN)/python bench/bench_image.py
	$(BIN)/python bench/bench_probes.py

# On the real sandbox (a fresh one in a temporary folder unless DIRT_SANDBOX_HOME names one):
# restores by kubectl, dirt and Velero against the API server's ceiling, and each example drill's
# wall and CPU time with the sandbox's boot time and memory.  Minutes, not seconds.
bench-sandbox: deps
	$(BIN)/python bench/restore.py
	$(BIN)/python bench/restore.py --objects 20000 --namespaces 8 --skip velero,kubectl,profile
	$(BIN)/python bench/drill.py
	$(BIN)/python bench/fleet.py
	$(BIN)/python bench/kind.py

lint: venv
	$(BIN)/lint-imports

sandbox-down: venv
	$(DIRT) sandbox down

clean:
	rm -rf $(VENV) .pytest_cache
