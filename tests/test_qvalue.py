"""Storey q-values against R's qvalue package (stored reference + a live run when R is here)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from hapexp.linear.qvalue import pi0_lambda, qvalue

REF = Path(__file__).parent / "data" / "qvalue" / "reference.tsv"


def test_matches_r_qvalue_reference():
    """16 sets of 25-500 p-values (mixtures of uniform and Beta(0.2, ·) signal) run through
    R 4.2 / qvalue 2.30 (make_reference.R): pi0 from the df = 3 smoothing spline and every
    q-value agree to 1e-8; where R stops with an error (NA) we fall back to BH."""
    ref = pd.read_csv(REF, sep="\t", skipinitialspace=True)
    n_smoother = n_fallback = 0
    for _, g in ref.groupby("set"):
        p = g["p"].to_numpy()
        q, pi0, method = qvalue(p)
        if g["pi0"].isna().all():
            assert method.startswith("bh")
            np.testing.assert_allclose(q, multipletests(p, method="fdr_bh")[1], rtol=1e-12)
            n_fallback += 1
        else:
            assert method == "smoother"
            assert pi0 == pytest.approx(g["pi0"].iloc[0], abs=1e-8)
            np.testing.assert_allclose(q, g["q"].to_numpy(), rtol=1e-8, atol=1e-12)
            n_smoother += 1
    assert n_smoother >= 10 and n_fallback >= 2


def test_pi0_lambda_counts_p_at_or_above_lambda():
    p = np.array([0.05, 0.1, 0.5, 0.95, 0.96])
    pl = pi0_lambda(p)
    # λ = 0.05: all 5 p-values are >= 0.05 (R: p >= λ, not >)
    assert pl[0] == pytest.approx(5 / (5 * 0.95))
    assert pl[-1] == pytest.approx(2 / (5 * 0.05))


def test_qvalues_keep_nan_and_order():
    rng = np.random.default_rng(1)
    p = np.concatenate([rng.uniform(size=300), rng.uniform(0, 1e-3, 50)])
    p[[4, 90]] = np.nan
    q, pi0, _ = qvalue(p)
    assert np.isnan(q[[4, 90]]).all()
    ok = ~np.isnan(p)
    order = np.argsort(p[ok])
    assert np.all(np.diff(q[ok][order]) >= -1e-15)  # monotone in p
    assert np.all(q[ok] <= pi0 + 1e-15)


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="R not installed")
def test_live_r_qvalue(tmp_path):
    """When R and qvalue are installed, fresh random sets agree too."""
    check = subprocess.run(
        ["Rscript", "-e", "cat(requireNamespace('qvalue', quietly=TRUE))"], capture_output=True, text=True
    )
    if check.stdout.strip() != "TRUE":
        pytest.skip("R package qvalue not installed")
    rng = np.random.default_rng(7)
    sets = [
        np.concatenate([rng.uniform(size=m - k), rng.beta(0.3, 10, size=k)])
        for m, k in ((80, 10), (700, 200))
    ]
    for i, p in enumerate(sets):
        np.savetxt(tmp_path / f"p{i}.txt", p, fmt="%.17g")
    script = "suppressMessages(library(qvalue)); " + "; ".join(
        f"q <- qvalue(scan('{tmp_path}/p{i}.txt', quiet=TRUE)); "
        f"cat(format(c(q$pi0, q$qvalues), digits=17), sep='\\n', file='{tmp_path}/q{i}.txt')"
        for i in range(len(sets))
    )
    subprocess.run(["Rscript", "-e", script], capture_output=True, text=True, check=True)
    for i, p in enumerate(sets):
        r = np.loadtxt(tmp_path / f"q{i}.txt")
        q, pi0, method = qvalue(p)
        assert method == "smoother"
        assert pi0 == pytest.approx(r[0], abs=1e-8)
        np.testing.assert_allclose(q, r[1:], rtol=1e-8)
