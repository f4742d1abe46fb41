"""eGenes and significant eQTL pairs from the permutation pass (GTEx / tensorQTL
`calculate_qvalues`, `get_significant_pairs`).

Storey q-values of `pval_beta` exactly as R's qvalue package (`hapexp.linear.qvalue`);
eGenes have `qval <= fdr`; the genome-wide min-p threshold is the midpoint between the
largest `pval_beta` of an eGene and the smallest of a non-eGene, and each gene's
`pval_nominal_threshold` = Beta⁻¹(threshold; beta_shape1, beta_shape2) (the gene's Beta
fit of `hapexp.stats.beta_approx_pval`). A pair is significant when its gene is an eGene
and `pval_nominal < pval_nominal_threshold` (`significant_pairs`).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats

from hapexp.linear.qvalue import qvalue

log = logging.getLogger(__name__)


def egenes(top: pd.DataFrame, fdr: float = 0.05) -> tuple[pd.DataFrame, dict]:
    """tensorQTL's `calculate_qvalues` on the per-gene permutation table: adds `qval`
    (Storey, R qvalue), `pval_nominal_threshold` and `is_egene` (qval <= fdr).

    Returns (table, summary) with summary = pi0, the q-value method, the genome-wide
    min-p threshold and the number of eGenes. Without `pval_beta` (no permutations) the
    table is returned unchanged and summary is empty."""
    top = top.copy()
    if "pval_beta" not in top or not len(top):
        return top, {}
    pb = top["pval_beta"].to_numpy(dtype=float)
    q, pi0, method = qvalue(pb)
    if method != "smoother":
        log.warning("q-values: pi0 = 1 (Benjamini-Hochberg): %s", method)
    top["qval"] = q
    sig = q <= fdr
    lb = np.sort(pb[sig])
    ub = np.sort(pb[~sig & ~np.isnan(q)])
    threshold = np.nan
    if lb.size:
        threshold = (lb[-1] + ub[0]) / 2 if ub.size else lb[-1]
        top["pval_nominal_threshold"] = stats.beta.ppf(
            threshold, top["beta_shape1"].to_numpy(dtype=float), top["beta_shape2"].to_numpy(dtype=float)
        )
    else:
        top["pval_nominal_threshold"] = np.nan
    top["is_egene"] = sig
    summary = {
        "genes": int(len(top)),
        "egenes": int(sig.sum()),
        "fdr": float(fdr),
        "pi0": float(pi0),
        "qvalue_method": method,
        "min_p_threshold": None if np.isnan(threshold) else float(threshold),
    }
    log.info("eGenes: %s", summary)
    return top, summary


def significant_pairs(nominal: pd.DataFrame, genes: pd.DataFrame) -> np.ndarray:
    """Pairs of eGenes with `pval_nominal < pval_nominal_threshold` of their gene (GTEx;
    tensorQTL's get_significant_pairs, strict inequality as there). `genes`: eqtl/genes.tsv (phenotype_id, is_egene,
    pval_nominal_threshold). Returns a boolean mask over the rows of `nominal`."""
    g = genes.set_index("phenotype_id")
    thr = g["pval_nominal_threshold"].where(g["is_egene"].astype(bool))
    t = nominal["phenotype_id"].map(thr).to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        return np.asarray(nominal["pval_nominal"].to_numpy(dtype=float) < t)
