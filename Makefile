# hapexp: `make demo` runs the workflow on the simulated demo cohort,
# `make test` runs lint + the test suite. Both set up .venv first (idempotent).

SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
# The pinned torch. On a GPU-less machine whose pip has no CPU wheel at hand, add
# the CPU index, e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu".
TORCH_SPEC ?= torch==2.13.0
# Debian packages the workflow shells out to (bcftools/tabix) or draws with (graphviz).
APT_PACKAGES := bcftools tabix graphviz

.PHONY: setup sysdeps demo test test-fast test-real lint format rulegraph clean-demo install-profile test-slurm

setup: sysdeps $(VENV)/.installed

# Install system tools only when missing (needs root, as on CI and HPC containers).
sysdeps:
	@missing=""; \
	command -v bcftools >/dev/null || missing="$$missing bcftools"; \
	command -v tabix >/dev/null || missing="$$missing tabix"; \
	command -v dot >/dev/null || missing="$$missing graphviz"; \
	if [ -n "$$missing" ]; then \
	  echo "installing from apt:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

# Pinned torch first: an unpinned one (or one pulled in by enformer-pytorch)
# would download several GB of CUDA wheels. tensorqtl, pandas-plink and
# enformer-pytorch go last with --no-deps: pandas-plink's metadata pins numpy<2,
# msprime needs numpy>=2, and both run fine with numpy 2; enformer-pytorch pins
# transformers==4.56.2 while borzoi-pytorch needs >=4.57.6,<5 (Enformer's outputs
# are unchanged under 4.57.6: tests/test_models.py against tests/data/enformer_tiny_ref).
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check $(TORCH_SPEC)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps tensorqtl==1.0.10 pandas-plink==2.3.2 enformer-pytorch==0.8.12
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

demo: setup
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --cores 1 --report results/report.html
	@echo "tables and figures: results/demo/ (summary.md first); report: results/report.html"

lint: setup
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check .
	$(BIN)/ruff check .

format: setup
	$(BIN)/snakefmt .
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: setup lint
	$(BIN)/pytest -q

test-fast: setup
	$(BIN)/pytest -q -m "not slow"

# A real cohort (tests/real/README.md): Geuvadis chr22 built from Debian packages
# (apt-get download + dpkg -x, no root; cached in resources/real/), the whole workflow
# on it, checked against tensorQTL, FastQTL, bcftools and real PredictDB files.
# Not part of `make test` (pyproject ignores tests/real unless named).
test-real: setup $(VENV)/.real-installed
	$(BIN)/python -m tests.real.build
	$(BIN)/pytest -q tests/real

$(VENV)/.real-installed: tests/real/requirements.txt $(VENV)/.installed
	$(BIN)/pip install -q --disable-pip-version-check -r tests/real/requirements.txt
	touch $@

rulegraph: setup
	$(BIN)/snakemake --rulegraph | dot -Tsvg > docs/rulegraph.svg

clean-demo:
	rm -rf results logs benchmarks resources/demo .snakemake

# Install the SLURM profile so that `snakemake --profile slurm` finds it.
install-profile:
	install -D -m 644 -b profiles/slurm/config.yaml $(HOME)/.config/snakemake/slurm/config.yaml
	@echo "installed: snakemake --profile slurm (edit ~/.config/snakemake/slurm/config.yaml: account, partition)"

# The demo through profiles/slurm on a throw-away one-node SLURM cluster (needs root for apt).
test-slurm: setup
	bash tests/slurm/run.sh
