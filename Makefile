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
# r-cran-susier: the independent answer of the fine-mapping tests (tests/test_finemap.py).
APT_PACKAGES := bcftools tabix graphviz r-cran-susier

.PHONY: setup sysdeps demo demo-tissues test test-long test-fast test-real lint format rulegraph clean-demo install-profile test-slurm gpu-wheels

setup: sysdeps $(VENV)/.installed

# Install system tools only when missing (needs root, as on CI and HPC containers).
sysdeps:
	@missing=""; \
	command -v bcftools >/dev/null || missing="$$missing bcftools"; \
	command -v tabix >/dev/null || missing="$$missing tabix"; \
	command -v dot >/dev/null || missing="$$missing graphviz"; \
	Rscript -e 'quit(status = !requireNamespace("susieR", quietly = TRUE))' >/dev/null 2>&1 || missing="$$missing r-cran-susier"; \
	if [ -n "$$missing" ]; then \
	  echo "installing from apt:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
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

# The demo with two tissues (config/demo_tissues.yaml): one genotype set, predictions and
# ISM once, each tissue judged against its own oracle track (results/demo_tissues/summary.md).
demo-tissues: setup
	$(BIN)/snakemake --cores $(CORES) --configfile config/demo_tissues.yaml
	@echo "across tissues: results/demo_tissues/summary.md; per tissue: results/demo_tissues/<tissue>/summary.md"

lint: setup
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check .
	$(BIN)/ruff check .

format: setup
	$(BIN)/snakefmt .
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# `make test` stays under 15 min on 2 cores from a fresh clone (one demo run + its truth
# checks, every unit test); the other workflow runs (determinism, kill + resume, every
# architecture, every input format, downloads, the Geuvadis and GTEx dry runs, the
# two-tissue demo) and the slow calibration/truth checks (the large null tiers, the causal
# benchmark's known truth, fine-tuning on two tissues) are `make test-long`
# (about 15 min more), which CI runs too (.ci/run).
test: setup lint
	$(BIN)/pytest -q -m "not long"

test-long: setup
	$(BIN)/pytest -q -m long

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

# Wheels for bench/gpu_engine.sh on a GPU machine that has torch/numpy/pandas but not
# enformer-pytorch (and no PyPI): the same versions as requirements.txt, for Python
# 3.11-3.13 on x86-64 Linux, into the ignored bench/wheels/ (carry it to the GPU machine).
GPU_WHEELS := enformer-pytorch==0.8.12 transformers==4.56.2 huggingface_hub==0.36.2 tokenizers==0.22.2 \
	pyfaidx==0.9.2.2 einops==0.8.2 safetensors==0.8.0 regex==2026.11.15 PyYAML==6.0.3 requests==2.34.2 \
	urllib3==2.8.0 idna==3.20 certifi==2026.10.18 charset-normalizer==3.5.2 tqdm==4.70.1 packaging==25.0 \
	filelock==4.2.11 fsspec==2026.9.0
gpu-wheels: setup
	for v in 3.11 3.12 3.13; do \
	  $(BIN)/pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version $$v \
	    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
	    -d bench/wheels $(GPU_WHEELS) || exit 1; \
	done
	@du -sh bench/wheels
