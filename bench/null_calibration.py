"""The elastic net's null calibration at study size (issue 20, item 2's large tier).

2,000 msprime null genes (windows 100 kb–1 Mb: hundreds to about 2,000 SNPs at MAF ≥ 1 %),
100 people, three covariates, the config's elastic net (α 0.5, 5 outer × 10 inner folds),
scored by the verdict as rule performance scores it: the held-out fold test, and — for
comparison on the same genes — one t-test of the pooled out-of-fold predictions (the
verdict before issue 20). Prints the fractions at p < 0.05 (overall, r > 0, r < 0), the KS
p of uniformity and the binomial 99 % bounds; exits 1 when the held-out test is outside.

`make test-long` asserts the same calibration on the same genes
(tests/test_null_calibration.py, `LARGE`); this script prints the table for bench/RESULTS.md,
the old pooled t-test beside it. The elastic net costs about 0.5 CPU-s per gene here (66
glmnet paths): about 8 min for 2,000 genes on 2 cores, plus 2 min of msprime.

    .venv/bin/python bench/null_calibration.py [--genes 2000] [--people 100] [--seed 21]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "workflow" / "scripts")]

from tests.null_genes import binomial_bounds, calibration, null_cohort  # noqa: E402
from tests.test_null_calibration import LARGE, _fit, _verdict  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--genes", type=int, default=LARGE["n_genes"])
    ap.add_argument("--people", type=int, default=LARGE["n_people"])
    ap.add_argument("--seed", type=int, default=LARGE["seed"])
    args = ap.parse_args()
    cohort = null_cohort(args.genes, args.people, seed=args.seed, lengths=LARGE["lengths"])
    snps = sorted(len(h) for h in cohort.haplotypes.values())
    t0 = time.perf_counter()
    oof, folds = _fit(cohort)
    fit_s = time.perf_counter() - t0
    old, new = _verdict(cohort, oof, folds)
    rows = {
        "held-out folds, Pearson": calibration(new["pearson_p"], new["pearson_r"]),
        "held-out folds, Spearman": calibration(new["spearman_p"], new["spearman_r"]),
        "pooled t-test (before), Pearson": calibration(old["pearson_p"], old["pearson_r"]),
    }
    n = rows["held-out folds, Pearson"]["n"]
    lo, hi = binomial_bounds(n)
    tlo, thi = binomial_bounds(n, 0.025)
    print(f"{date.today()} {platform.machine()} {platform.node()}: {args.genes} genes × {args.people} people, "
          f"SNPs per gene median {snps[len(snps) // 2]} (range {snps[0]}–{snps[-1]}); elastic net {fit_s:.0f} s")  # fmt: skip
    print(
        "| test | genes tested | p < 0.05 | r > 0 | r < 0 | KS p |\n| --- | ---: | ---: | ---: | ---: | ---: |"
    )
    for name, c in rows.items():
        print(f"| {name} | {c['n']} | {100 * c['p05']:.2f} % | {100 * c['pos']:.2f} % | {100 * c['neg']:.2f} % | {c['ks_p']:.3g} |")  # fmt: skip
    print(
        f"binomial 99 % bounds: {100 * lo:.2f}–{100 * hi:.2f} % overall, {100 * tlo:.2f}–{100 * thi:.2f} % per tail"
    )
    c = rows["held-out folds, Pearson"]
    ok = lo <= c["p05"] <= hi and tlo <= c["pos"] <= thi and tlo <= c["neg"] <= thi and c["ks_p"] > 0.01
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
