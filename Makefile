# tokenlord — `make help` lists the targets. CI runs `make test` (.ci/run).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
export CARGO_TARGET_DIR ?= $(CURDIR)/var/cargo-target
WHEELS := var/wheels
# The page's browser test drives Debian's chromium; playwright never fetches a browser of its own.
CHROMIUM ?= /usr/bin/chromium
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

DEMO_USERS ?= 300
DEMO_DAYS ?= 14
DEMO_GAMERS ?= 5
DEMO_TEXT_SHARE ?= 1.0
DEMO_FINGERPRINTS ?= 0

.PHONY: help install venv build browser test test-rust test-py lint compose-check lock demo demo-run bench clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install "maturin>=1.9,<2"
	touch $@

venv: $(VENV)/.created

build: venv ## Build the release wheel (Rust extension included) into var/wheels
	rm -rf $(WHEELS)
	$(VENV)/bin/maturin build --release --quiet --out $(WHEELS) 2>&1 | grep -v '^📦\|^🍹\|^🔗\|^🐍' || true
	@ls $(WHEELS)/tokenlord-*.whl >/dev/null

install: build ## .venv/ with tokenlord and its native extension (release build)
	$(PIP) install "$$(ls $(WHEELS)/tokenlord-*.whl)[worker,gateway,dev]"
	$(PIP) install --force-reinstall --no-deps "$$(ls $(WHEELS)/tokenlord-*.whl)"
	@# Llama 3/4 vocabularies for the tokenizer tests and benchmark (only its data files are used)
	$(PIP) install --no-deps "llama-models==0.3.0"
	@$(VENV)/bin/tokenlord --version

browser: ## Debian's chromium for the leaderboard page's browser test (apt-get as root; idempotent)
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "==> installing chromium (apt-get) for the browser test"; \
		export DEBIAN_FRONTEND=noninteractive; mkdir -p var; \
		{ apt-get update -qq && apt-get install -y -qq chromium; } >var/apt-chromium.log 2>&1 \
			|| { tail -5 var/apt-chromium.log; echo "warning: apt-get could not install chromium: the browser test will fail"; }; \
	else echo "note: $(CHROMIUM) is missing and installing it needs root and apt-get: the browser test will be skipped"; fi

test-rust: ## cargo test (the core's domain logic)
	cargo test --quiet

test-py: install browser ## pytest: unit and integration (starts a real local Kafka)
	$(PY) -m pytest tests -q

compose-check: ## docker compose config on docker-compose.yml (builds the compose plugin once if docker has none; needs docker CLI + go)
	bash scripts/compose-check.sh

# The Docker image's pinned dependencies; pip-tools runs in a throwaway venv with the image's Python.
LOCK_PYTHON ?= python3.11
lock: ## requirements/worker.lock: the worker extra pinned with hashes (pip-compile; rerun after changing pyproject.toml)
	PYTHON=$(LOCK_PYTHON) bash scripts/lock.sh

lint: install compose-check ## ruff, mypy (strict), the native stub check (stubtest), compose-check
	$(VENV)/bin/ruff check python streams tests benchmarks
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest tokenlord._core
	cargo fmt --check
	PYO3_PYTHON=$(CURDIR)/$(PY) cargo clippy --quiet --features python --all-targets -- -D warnings

test: install lint test-rust browser ## Everything CI runs: build, lint, cargo test, pytest unit + integration
	$(PY) -m pytest tests -q

demo: install ## Fresh machine -> local Kafka, a simulated week, a worker, the leaderboard
	$(MAKE) --no-print-directory demo-run

demo-run:
	bash scripts/demo.sh $(DEMO_USERS) $(DEMO_DAYS) $(DEMO_GAMERS) $(DEMO_TEXT_SHARE) $(DEMO_FINGERPRINTS)

# e2e_worker.py sets up .venv-quix itself for its Quix Streams contender: quixstreams 3.28
# pins confluent-kafka<2.13 and would downgrade the worker's in .venv.
bench: install ## Run the benchmarks; results in benchmarks/results/*.json
	$(PY) benchmarks/core_throughput.py
	$(PY) benchmarks/e2e_worker.py
	$(PY) benchmarks/tokenize_bench.py
	$(PY) benchmarks/fingerprint_bench.py
	$(PY) benchmarks/waste_quality.py
	$(PY) benchmarks/red_team.py
	$(PY) benchmarks/reliability.py
	$(PY) benchmarks/memory_state.py
	$(PY) benchmarks/startup.py

clean: ## Stop local Kafka and remove build outputs (keeps cached jars)
	-$(VENV)/bin/tokenlord kafka-local stop
	rm -rf $(WHEELS) var/tokenlord var/kafka
