#!/usr/bin/env bash
# Every GPU measurement of the inference engine (first made for issue 14) in one run of a
# few minutes (bench/gpu_engine.py):
# attention kernels, the engine uncompiled / each optimization alone / compiled, ISM with
# and without reference reuse, and the bf16/TF32 precision budget, on full-size Enformer
# (random weights). From the repository root, on a machine with a CUDA GPU and a Python
# with torch, numpy and pandas:
#
#   make gpu-wheels                      # once, where PyPI is reachable: bench/wheels/
#   bash bench/gpu_engine.sh             # OUT=dir (default bench/gpu_out), DEADLINE=s (480)
#
# enformer-pytorch and its pure-Python needs are taken from bench/wheels when the machine
# lacks them (polars, imported but unused by enformer_pytorch, is stubbed). Results:
# $OUT/results.md (tables for bench/RESULTS.md), results.json, engine.md, precision.tsv, log.txt,
# nvidia-smi.txt (six files). With the device tool: run(command="bash bench/gpu_engine.sh",
# carry=["bench/wheels"], timeout_s=600); the H200 there has torch 2.11 on Python 3.12 but
# transformers 5.x, whose enformer-pytorch import fails: the carried 4.56.2 is put first.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench/gpu_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
"$PY" bench/gpu_engine.py --out "$OUT" --deadline "${DEADLINE:-480}" "$@" 2>&1 | tee "$OUT/log.txt"
