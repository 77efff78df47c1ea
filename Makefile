# Two entry points for a fresh Debian/Ubuntu machine: `make demo` and `make test`.
# Both are idempotent: set-up steps are skipped when their stamp is newer than
# what they depend on.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.affectflow-installed
DEMO := data/demo/.complete
CORES ?= 2
SYSTEM_PACKAGES := ffmpeg espeak-ng chromium chromium-driver fonts-wqy-microhei

.PHONY: demo test lint bench bench-quick slurm-up slurm-down system venv clean-results

system:
	@missing=""; for t in ffmpeg ffprobe espeak-ng chromium chromedriver; do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	{ command -v fc-list >/dev/null && [ -n "$$(fc-list :lang=zh)" ]; } || missing="$$missing a-CJK-font"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing system tools:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	  else \
	    echo "missing system tools:$$missing"; \
	    echo "run: sudo apt-get install -y $(SYSTEM_PACKAGES)"; exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml requirements-nodeps.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev]"
	$(PIP) install -q --no-deps -r requirements-nodeps.txt
	touch $@

venv: $(STAMP)

$(DEMO): $(STAMP) src/affectflow/recipes/demo.py
	$(VENV)/bin/affectflow demo build data/demo

demo: system venv $(DEMO)
	$(VENV)/bin/snakemake --profile profiles/local --cores $(CORES)
	$(VENV)/bin/snakemake --profile profiles/local --cores 1 --report results/demo/report.html
	@echo "done: results/demo/ (metrics.csv, fusion/*/*/sweep_*.png, submissions/, report.html)"

test: system venv $(DEMO)
	$(VENV)/bin/ruff check src tests workflow/scripts $(wildcard benchmarks)
	$(VENV)/bin/snakemake --lint --cores 1
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -q -n $(CORES) --dist loadgroup --no-loadscope-reorder --durations=25

bench: system venv $(DEMO)
	$(PY) -m benchmarks.run --out benchmarks/results/latest.json

bench-quick: system venv $(DEMO)
	$(PY) -m benchmarks.run --quick --out benchmarks/results/quick.json

# a real single-node Slurm on 127.0.0.1 for trying the cluster profile (see docs/cluster.md)
slurm-up:
	bash tests/slurm/start.sh

slurm-down:
	bash tests/slurm/stop.sh

lint: venv
	$(VENV)/bin/ruff check src tests workflow/scripts $(wildcard benchmarks)
	$(VENV)/bin/snakemake --lint --cores 1
	$(VENV)/bin/lint-imports

clean-results:
	rm -rf results/demo .snakemake

# The GPU section alone (benchmarks/gpu.py): the card's figures where torch sees CUDA (skipped, saying why,
# where not) and the same code paths on this machine's CPU; a measured card's figures also go to
# benchmarks/results/gpu-<card>.json. For a rented GPU machine: bash benchmarks/device_run.sh (docs/performance.md).
.PHONY: bench-gpu
bench-gpu: venv $(DEMO)
	$(PY) -m benchmarks.gpu
