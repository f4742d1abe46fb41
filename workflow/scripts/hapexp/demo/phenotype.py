"""The demo cohort's expression: the oracle's genetic value plus noise, covariates and hidden factors.

- *Genetic value*: for each individual, the mean over its two haplotypes of the oracle
  readout of its own personal window (all its variants; `hapexp.demo.readout`).
  `expression_noiseless.tsv` holds it for every gene, h2 = 0 genes included.
- *Expression*: Gaussian noise is scaled so that var(genetic) / (var(genetic) +
  var(noise)) = h2; genes with h2 = 0 get noise around their reference-genome readout
  only. Measured covariates (sex, age, rin; `covariate_fraction` of the gene's genetic +
  noise variance) and two unmeasured factors shared by all genes (`hidden_fraction`;
  what expression PCs are for) are added on top; they are outside h2.
- *Tissues* (multi-tissue demo): tissue k's genetic value is oracle track k's readout, its
  noise is scaled to the gene's h2 in tissue k over the people it has; sex and age are
  the person's (drawn once), rin, the hidden factors, the covariate effects and the noise
  are the tissue's own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hapexp.demo.genome import Genome
from hapexp.demo.layout import Gene
from hapexp.demo.readout import personal_window


def genetic_values(
    genome: Genome, genes: list[Gene], readout, window: int, n: int, n_tracks: int = 1
) -> np.ndarray:
    """(tracks, genes, individuals): mean over the two haplotypes of the personal-window
    readout of each of the oracle's first `n_tracks` tracks."""
    out = np.zeros((n_tracks, len(genes), n))
    for gi, g in enumerate(genes):
        vs = genome.window_variants(g, window)
        keys = [tuple(int(v.gt[h]) for v in vs) for h in range(2 * n)]
        uniq = sorted(set(keys))
        seqs = np.stack(
            [
                personal_window(
                    genome.ref[g.chrom],
                    g.tss0,
                    g.strand,
                    window,
                    [(v.pos0, v.ref, v.alts[a - 1]) for v, a in zip(vs, key, strict=True) if a > 0],
                )
                for key in uniq
            ]
        )
        val = dict(zip(uniq, readout(seqs, list(range(n_tracks))), strict=True))
        hap = np.array([val[k] for k in keys])  # (2n, tracks)
        out[:, gi] = (0.5 * (hap[0::2] + hap[1::2])).T
    return out


def draw_person_covariates(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sex (0 female, 1 male) and age of `n` people."""
    sex = rng.integers(0, 2, size=n).astype(float)
    age = np.round(rng.uniform(20, 80, size=n), 1)
    return sex, age


def draw_expression(
    rng,
    genes: list[Gene],
    genetic: np.ndarray,
    covariate_fraction: float,
    hidden_fraction: float,
    track: int = 0,
    sex_age: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(expression genes × individuals, measured covariates sex/age/rin × individuals,
    the truth_genes table: per gene h2, n_causal, genetic_var, noise_var, ref_readout) of
    tissue `track`; `genetic` (genes × individuals) and `sex_age` hold its people only
    (`sex_age` None: drawn here)."""
    n = genetic.shape[1]
    # Covariates: measured (written out) and hidden factors (not written).
    sex, age = draw_person_covariates(rng, n) if sex_age is None else sex_age
    rin = np.round(np.clip(rng.normal(7.0, 1.0, size=n), 3, 10), 1)
    cov = np.stack([sex, age, rin])
    cov_z = (cov - cov.mean(1, keepdims=True)) / cov.std(1, keepdims=True)
    hidden = rng.normal(size=(2, n))
    hidden = (hidden - hidden.mean(1, keepdims=True)) / hidden.std(1, keepdims=True)

    expr = np.zeros((len(genes), n))
    gene_rows = []
    for gi, g in enumerate(genes):
        gval = genetic[gi]
        h2, ref_readout = g.h2[track], g.ref_readout[track]
        if h2 > 0:
            gvar = float(np.var(gval))
            noise_var = gvar * (1 - h2) / h2
            base = gval
        else:
            gvar = 0.0
            noise_var = (0.15 * ref_readout + 0.05) ** 2
            base = np.full(n, ref_readout)
        noise = rng.normal(0.0, np.sqrt(noise_var), size=n)
        total = gvar + noise_var
        b = rng.normal(size=3)
        b *= np.sqrt(covariate_fraction * total / (b @ b))  # z-scores ~ uncorrelated: var ~ |b|^2
        # Unmeasured factors touch every gene equally (random sign): the shared structure
        # that expression PCs are meant to remove.
        lam = rng.choice([-1.0, 1.0], size=2) * np.sqrt(hidden_fraction * total / 2)
        expr[gi] = base + noise + b @ cov_z + lam @ hidden
        gene_rows.append(
            {
                "gene_id": g.gene_id,
                "h2": h2,
                "n_causal": sum(c["track"] == track for c in g.causal),
                "genetic_var": gvar,
                "noise_var": noise_var,
                "ref_readout": ref_readout,
            }
        )
    return expr, cov, pd.DataFrame(gene_rows)
