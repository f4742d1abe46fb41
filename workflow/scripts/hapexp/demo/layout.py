"""The demo cohort's genes: TSS placement near common SNVs, h² values, and gene models (exons).

Per-tissue fields (`Gene.h2`, `Gene.ref_readout`) are lists indexed by tissue = oracle track;
the one-tissue demo has one entry (track 0).

Coordinates are 0-based (`tss0`) except the exon table, which is 1-based inclusive.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class Gene:
    gene_id: str
    name: str
    chrom: str
    tss0: int
    strand: str
    h2: list[float] = field(default_factory=lambda: [0.0])  # per tissue (oracle track)
    ref_readout: list[float] = field(default_factory=lambda: [0.0])  # per tissue
    causal: list[dict] = field(default_factory=list)  # designs; each names its tissue's "track"


def place_genes(rng, chrom_names, chrom_length, n_genes, window, n_common, fit_window=None):
    """TSS positions (0-based) and strands; exactly one gene within window/2 of a chromosome end.

    Genes sit in equal slots; within its slot a TSS is drawn until at least 3 common
    SNVs (`n_common(chrom, tss0)`) lie within reach of a causal design, so that any gene
    can be given causal variants. With `fit_window`, every gene (the edge one included)
    stays fit_window/2 + 1 kb from the chromosome ends, so such windows hold no N.
    """
    per = np.full(len(chrom_names), n_genes // len(chrom_names))
    per[: n_genes % len(chrom_names)] += 1
    margin = 2 * window + 1000 if fit_window is None else max(2 * window, fit_window // 2) + 1000
    genes = []
    for ci, chrom in enumerate(chrom_names):
        k = int(per[ci])
        slot = (chrom_length - 2 * margin) / max(k, 1)
        for i in range(k):
            best = (-1, 0)
            for _ in range(200):
                if ci == len(chrom_names) - 1 and i == k - 1 and fit_window is None:
                    tss0 = chrom_length - int(rng.integers(200, window // 2 - 200))  # near the end
                else:
                    centre = margin + slot * (i + 0.5)
                    tss0 = int(centre + rng.uniform(-slot / 4, slot / 4))
                best = max(best, (min(n_common(chrom, tss0), 3), -tss0))
                if best[0] >= 3:
                    break
            genes.append((chrom, -best[1]))
    strands = list(rng.choice(["+", "-"], size=len(genes)))
    if n_genes >= 2 and len(set(strands)) < 2:
        strands[0] = "-" if strands[0] == "+" else "+"
    out = []
    for j, ((chrom, tss0), strand) in enumerate(zip(genes, strands, strict=True)):
        out.append(Gene(f"ENSGSIM{j + 1:06d}", f"GENE{j + 1}", chrom, tss0, str(strand)))
    return out


def assign_h2(rng, n_genes, h2_values, zero_fraction):
    """h² per gene: `zero_fraction` of the genes get 0, the others cycle through the
    non-zero `h2_values`; the list is shuffled."""
    n_zero = int(round(zero_fraction * n_genes))
    nonzero = [v for v in h2_values if v > 0]
    vals = [0.0] * n_zero + [nonzero[i % len(nonzero)] for i in range(n_genes - n_zero)]
    return [float(v) for v in rng.permutation(vals)]


def assign_tissue_h2(rng, n_genes, n_tissues, h2_values, zero_fraction) -> list[list[float]]:
    """h² per gene and tissue (multi-tissue demo). `zero_fraction` of the genes have no causal
    variant in any tissue; the others cycle through the patterns *shared* (causal in every
    tissue) and *specific to tissue k* (causal in tissue k only), i.e. about equal thirds of
    shared, first-tissue-only and second-tissue-only genes with two tissues. Each tissue's
    causal genes cycle through the non-zero `h2_values` on a counter of their own; the
    genes are shuffled."""
    n_zero = int(round(zero_fraction * n_genes))
    nonzero = [v for v in h2_values if v > 0]
    counters = [0] * n_tissues
    rows = []
    for i in range(n_genes):
        p = None if i < n_zero else (i - n_zero) % (n_tissues + 1)
        causal = [] if p is None else (range(n_tissues) if p == 0 else [p - 1])
        row = [0.0] * n_tissues
        for k in causal:
            row[k] = float(nonzero[counters[k] % len(nonzero)])
            counters[k] += 1
        rows.append(row)
    return [rows[int(i)] for i in rng.permutation(n_genes)]


def gene_exons(seed: int, genes: list, chrom_length: int) -> pd.DataFrame:
    """A gene model per gene (for `readout: exons`): 2-5 exons of 40-300 bp separated by
    80-600 bp introns, the first starting at the TSS, in the gene's direction (1-based
    inclusive rows). Drawn from their own random stream, so the rest of the cohort does not
    depend on them."""
    rng = np.random.default_rng([seed, 15])
    rows = []
    for g in genes:
        off = 0
        for _ in range(int(rng.integers(2, 6))):
            n = int(rng.integers(40, 301))
            lo, hi = (
                (g.tss0 + off, g.tss0 + off + n)
                if g.strand == "+"
                else (g.tss0 - off - n + 1, g.tss0 - off + 1)
            )
            lo, hi = max(lo, 0), min(hi, chrom_length)
            if hi > lo:
                rows.append((g.gene_id, g.chrom, lo + 1, hi, g.strand))
            off += n + int(rng.integers(80, 601))
    return pd.DataFrame(rows, columns=["gene_id", "chrom", "start", "end", "strand"])
