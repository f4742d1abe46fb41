"""The compiled glmnet path (numba) against the solver it replaced, side by side in one run.

The replaced solver (commit 2db8ab7: scikit-learn's compiled Gram coordinate descent called
from a Python working-set/KKT loop) is loaded from git history into a scratch module; both
run `cv_glmnet` on the same msprime windows, responses and folds (one BLAS thread), each
after an untimed warm-up (numba's compile or cache load). Two shapes: the null-calibration
tier's (100 people, windows of ~450–600 SNPs) and a study's (400 people, ~3,300 SNPs).
Prints a markdown table for bench/RESULTS.md: seconds per cv.glmnet, the ratio, whether
lambda.min is the same λ, max |Δβ| at lambda.min and max |Δcvm|.

    .venv/bin/python bench/glmnet_solver.py [--reps 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "workflow" / "scripts")]

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import hapexp.linear.glmnet as compiled  # noqa: E402
from tests.null_genes import simulate_window  # noqa: E402

BEFORE = "2db8ab7"
SHAPES = {"100 people, null tier": (100, 200_000, 6), "400 people, 1.5 Mb": (400, 1_500_000, 2)}


def _previous_solver():
    src = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{BEFORE}:workflow/scripts/hapexp/linear/glmnet.py"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "glmnet_before.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("glmnet_before", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    before = _previous_solver()
    rng = np.random.default_rng(0)
    print(f"{date.today()} {platform.machine()} {platform.node()}, 1 BLAS thread; before = {BEFORE}")
    print(
        "| shape | genes | SNPs | before s / cv.glmnet | compiled s | ratio | same lambda.min | max abs dbeta | max abs dcvm |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: |")
    for name, (n, length, n_genes) in SHAPES.items():
        data = []
        for g in range(n_genes):
            h = simulate_window(n, length, seed=100 + g)
            x = (h[:, 0::2] + h[:, 1::2]).astype(float).T
            y = rng.normal(size=n) + 0.4 * x[:, g] / max(x[:, g].std(), 1e-9)
            data.append((x, y, rng.permutation(np.arange(n) % 10)))
        secs, fits = {}, {}
        with threadpool_limits(limits=1):
            for label, mod in (("before", before), ("compiled", compiled)):
                mod.cv_glmnet(data[0][0][:40, :30], data[0][1][:40], data[0][2][:40], 0.5)  # warm-up
                t = time.perf_counter()
                for _ in range(args.reps):
                    fits[label] = [mod.cv_glmnet(x, y, f, 0.5) for x, y, f in data]
                secs[label] = (time.perf_counter() - t) / (args.reps * n_genes)
        same = all(a["i_min"] == b["i_min"] for a, b in zip(fits["before"], fits["compiled"], strict=True))
        db = max(
            float(np.abs(a["beta"] - b["beta"]).max())
            for a, b in zip(fits["before"], fits["compiled"], strict=True)
        )
        dc = max(
            float(np.abs(a["cvm"] - b["cvm"]).max()) if a["cvm"].size == b["cvm"].size else np.inf
            for a, b in zip(fits["before"], fits["compiled"], strict=True)
        )
        snps = [d[0].shape[1] for d in data]
        print(f"| {name} | {n_genes} | {min(snps)}–{max(snps)} | {secs['before']:.3f} | {secs['compiled']:.3f} | "
              f"{secs['before'] / secs['compiled']:.1f}× | {same} | {db:.1e} | {dc:.1e} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
