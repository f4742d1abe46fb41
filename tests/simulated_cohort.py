"""A simulated cohort with a known answer for the summary and demo-truth tests: planted
effects, an oracle, an untrained model and the oracle's ISM (tests/test_summary.py,
tests/test_truth.py); and `simulated_index`: the demo simulator's files turned into a
haplotype index, the way the workflow does (engine, ISM and fine-tuning tests)."""

import numpy as np
import pandas as pd

from hapexp.linear.eqtl import scan_genes
from hapexp.variants.genotypes import Dosages
from hapexp.verdict import concordance as cc

N_VAR = 8


def simulated_index(d, seed: int, window: int = 2048, **simulate):
    """simulate_demo(d, seed, window, **simulate) → bcftools-normalized BCF → the haplotype index
    of every gene for `window` (hapexp.sequences: the workflow's path), loaded."""
    from hapexp.demo.simulate import simulate_demo
    from hapexp.sequences.haplotypes import build_index
    from hapexp.sequences.index import HaplotypeIndex
    from hapexp.variants.normalize import normalize

    simulate_demo(d, seed=seed, window=window, **simulate)
    genes = pd.read_csv(d / "genes.tsv", sep="\t")
    normalize([str(d / "cohort.vcf.gz")], d / "reference.fa", d / "norm.bcf")
    build_index(d / "norm.bcf", d / "reference.fa", genes, window, d / "idx.npz")
    return HaplotypeIndex.load(d / "idx.npz")


def simulated_cohort(seed=0, n_genes=25, n_samples=200):
    """Per gene 8 variants, the first two causal (planted effects) unless h2 = 0; expression
    = genetic value + noise scaled to h2. The oracle predicts the genetic value, an untrained
    model a random linear function of the same genotypes. The oracle's ISM is each variant's
    effect (non-causal variants: a tiny motif-free effect, some below resolution = NaN)."""
    rng = np.random.default_rng(seed)
    samples = [f"S{i}" for i in range(n_samples)]
    truth, genes_rows, expr, oracle, tiny, ism_rows, dos_rows, gene_rows = [], [], {}, {}, {}, [], [], []
    for g in range(n_genes):
        gid = f"G{g:02d}"
        h2 = [0.0, 0.1, 0.3, 0.5, 0.8][g % 5]
        dos = rng.binomial(2, rng.uniform(0.15, 0.5, N_VAR)[:, None], size=(N_VAR, n_samples)).astype(float)
        effects = np.zeros(N_VAR)
        if h2 > 0:
            effects[:2] = rng.choice([-1, 1], 2) * rng.uniform(0.5, 1.0, 2)
        genetic = effects @ dos
        gv = genetic.var()
        noise_var = gv * (1 - h2) / h2 if h2 > 0 else 1.0
        expr[gid] = genetic + rng.normal(scale=np.sqrt(noise_var), size=n_samples)
        oracle[gid] = genetic if h2 > 0 else 1e-3 * rng.normal(size=N_VAR) @ dos
        tiny[gid] = rng.normal(size=N_VAR) @ dos
        base = 10_000 * (g + 1)
        for v in range(N_VAR):
            vid = f"chr1_{base + 10 * v}_A_G"
            if effects[v]:
                truth.append((gid, vid, "chr1", base + 10 * v, "A", "G", effects[v], h2))
            score = effects[v] if effects[v] else (np.nan if v % 3 == 0 else 1e-3 * rng.normal())
            ism_rows.append((gid, vid, "chr1", base + 10 * v, "A", "G", 0.3, 10 * v, score))
            dos_rows.append((vid, base + 10 * v, dos[v]))
        gene_rows.append((gid, gid, "chr1", base, "+", base - 1, base + 10 * N_VAR))
        genes_rows.append((gid, h2, 2 if h2 > 0 else 0, gv, noise_var, 0.0))
    truth = pd.DataFrame(
        truth, columns=["gene_id", "variant_id", "chrom", "pos", "ref", "alt", "effect", "h2"]
    )
    truth_genes = pd.DataFrame(
        genes_rows, columns=["gene_id", "h2", "n_causal", "genetic_var", "noise_var", "ref_readout"]
    )
    ism = pd.DataFrame(
        ism_rows,
        columns=["gene_id", "variant_id", "chrom", "pos", "ref", "alt", "af", "tss_distance", "score"],
    )
    d = Dosages(
        np.array([r[0] for r in dos_rows], dtype=object),
        np.array(["chr1"] * len(dos_rows), dtype=object),
        np.array([r[1] for r in dos_rows]),
        np.array(["A"] * len(dos_rows), dtype=object),
        np.array(["G"] * len(dos_rows), dtype=object),
        np.vstack([r[2] for r in dos_rows]),
        samples,
    )
    genes = pd.DataFrame(gene_rows, columns=["gene_id", "name", "chrom", "tss", "strand", "start0", "end0"])
    mk = lambda d_: pd.DataFrame(d_, index=samples).T  # noqa: E731
    return {
        "truth": truth,
        "truth_genes": truth_genes,
        "expr": mk(expr),
        "oracle": mk(oracle),
        "tiny": mk(tiny),
        "ism": ism,
        "dosages": d,
        "genes": genes,
    }


def scanned_cohort():
    """`simulated_cohort()` with its nominal eQTL scan (`nominal`)."""
    c = simulated_cohort()
    c["nominal"], _ = scan_genes(c["dosages"], c["genes"], c["expr"], None)
    return c


def concordance_table(c, ism=None):
    table, _ = cc.concordance(
        c["ism"] if ism is None else ism, c["nominal"], {"top_k": 3, "eqtl_significance": "bh_all_pairs"}
    )
    return table
