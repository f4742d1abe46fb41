"""Compact haplotype index, write side: per chunk of genes, `build_index` stores
(GenVarLoader-style) the reference around each gene, the chunk's variants after the
`variants` policies and a bit matrix of which haplotype carries which variant
(`results/{cohort}/haplotypes/{chunk}.npz`; read by `hapexp.sequences.index.HaplotypeIndex`).

The stored region of a gene is larger than the largest model window by the most any
haplotype can delete (plus a margin), so that a window re-anchored after an indel is
still filled with personal sequence. Coordinates: regions 0-based half-open; `tss`
1-based.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from hapexp.io import atomic_output, write_tsv
from hapexp.variants.files import fasta_lengths, vcf_samples
from hapexp.variants.genotypes import read_genotypes
from hapexp.variants.policy import apply_policies, format_counts

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


def _deletion_need(pos0, rlen, alen, lo, hi) -> int:
    """Most bases any haplotype can lose among records starting in [lo, hi)."""
    m = (pos0 >= lo) & (pos0 < hi)
    return int(np.clip(rlen[m] - alen[m], 0, None).sum())


def index_regions(genes: pd.DataFrame, window: int, chrom_len: dict, variants=None, margin: int = 64):
    """Stored region of each gene: both strands' windows + deletion-proof flanks, clipped."""
    out = []
    for g in genes.itertuples(index=False):
        tss0 = int(g.tss) - 1
        lo, hi = tss0 - window // 2, tss0 + window // 2 + 1  # covers + and - windows
        fl = fr = margin
        if variants is not None:
            v = variants[variants["chrom"] == g.chrom]
            pos0, rlen, alen = (
                v["pos0"].to_numpy(),
                v["ref"].str.len().to_numpy(),
                v["alt"].str.len().to_numpy(),
            )
            maxr = int(rlen.max()) if len(rlen) else 1
            for _ in range(20):  # grow until the flank covers the deletions inside it
                nl = margin + maxr + _deletion_need(pos0, rlen, alen, lo - fl, tss0)
                nr = margin + maxr + _deletion_need(pos0, rlen, alen, tss0, hi + fr)
                if nl <= fl and nr <= fr:
                    break
                fl, fr = max(fl, nl), max(fr, nr)
        n = chrom_len[g.chrom]
        out.append((max(lo - fl, 0), min(hi + fr, n)))
    return out


def build_index(
    bcf,
    fasta,
    genes: pd.DataFrame,
    window: int,
    out_path,
    samples: list[str] | None = None,
    policies: dict | None = None,
    initial_flank: int | None = None,
) -> Counter:
    """Build and write the compact haplotype index of `genes` (one chunk) to `out_path` (.npz)."""
    import pysam

    genes = genes.reset_index(drop=True).copy()
    genes["tss"] = genes["tss"].astype(np.int64)
    if "name" not in genes:
        genes["name"] = genes["gene_id"]
    chrom_len = fasta_lengths(fasta)
    samples = list(vcf_samples(bcf) if samples is None else samples)
    flank = initial_flank if initial_flank is not None else max(2048, window // 16)
    while True:
        pre = index_regions(genes, window + 2 * flank, chrom_len)
        reg = pd.DataFrame(
            {"chrom": genes["chrom"], "start0": [r[0] for r in pre], "end0": [r[1] for r in pre]}
        )
        variants, alleles, phased, ploidy = read_genotypes(bcf, reg, samples)
        variants, carried, counts = apply_policies(variants, alleles, phased, ploidy, policies, bcf, samples)
        regions = index_regions(genes, window, chrom_len, variants)
        # The read flank must contain each final region, else read more.
        if all(r[0] >= p[0] and r[1] <= p[1] for r, p in zip(regions, pre, strict=True)):
            break
        flank *= 4
    # Variants sorted by chrom (gene order), pos, file order; gene ranges are contiguous.
    chrom_rank = {c: i for i, c in enumerate(dict.fromkeys(genes["chrom"]))}
    variants["crank"] = variants["chrom"].map(chrom_rank).fillna(len(chrom_rank)).astype(int)
    order = np.lexsort(
        (variants["order"].to_numpy(), variants["pos0"].to_numpy(), variants["crank"].to_numpy())
    )
    variants = variants.iloc[order].reset_index(drop=True)
    carried = carried[order]
    vstart, vend = [], []
    key_c, key_p = variants["crank"].to_numpy(), variants["pos0"].to_numpy()
    for g, (s, e) in zip(genes.itertuples(index=False), regions, strict=True):
        c = chrom_rank[g.chrom]
        lo = np.searchsorted(key_c, c, "left")
        hi = np.searchsorted(key_c, c, "right")
        vstart.append(lo + np.searchsorted(key_p[lo:hi], s, "left"))
        vend.append(lo + np.searchsorted(key_p[lo:hi], e, "left"))
    # Reference of each region, upper case (soft-masking is not sequence).
    refs = []
    with pysam.FastaFile(str(fasta)) as fa:
        for g, (s, e) in zip(genes.itertuples(index=False), regions, strict=True):
            refs.append(np.frombuffer(fa.fetch(g.chrom, s, e).upper().encode(), dtype=np.uint8))
    ref_off = np.concatenate([[0], np.cumsum([len(r) for r in refs])]).astype(np.int64)
    ns = len(samples)
    bits = (
        np.packbits(carried.reshape(len(variants), 2 * ns), axis=1)
        if len(variants)
        else np.zeros((0, (2 * ns + 7) // 8), np.uint8)
    )
    ref_b = [s.encode() for s in variants["ref"]]
    alt_b = [s.encode() for s in variants["alt"]]
    arrays = {
        "format_version": np.array(FORMAT_VERSION),
        "window": np.array(window),
        "samples": np.array(samples, dtype=str),
        "gene_id": genes["gene_id"].astype(str).to_numpy(dtype=str),
        "name": genes["name"].astype(str).to_numpy(dtype=str),
        "chrom": genes["chrom"].astype(str).to_numpy(dtype=str),
        "tss": genes["tss"].to_numpy(np.int64),
        "strand": genes["strand"].astype(str).to_numpy(dtype=str),
        "chrom_len": np.array([chrom_len[c] for c in genes["chrom"]], dtype=np.int64),
        "reg_start0": np.array([r[0] for r in regions], dtype=np.int64),
        "reg_end0": np.array([r[1] for r in regions], dtype=np.int64),
        "ref_seq": np.concatenate(refs) if refs else np.zeros(0, np.uint8),
        "ref_off": ref_off,
        "v_chrom": variants["chrom"].astype(str).to_numpy(dtype=str),
        "v_pos0": variants["pos0"].to_numpy(np.int64),
        "v_ref": np.frombuffer(b"".join(ref_b), dtype=np.uint8),
        "v_ref_off": np.concatenate([[0], np.cumsum([len(x) for x in ref_b])]).astype(np.int64),
        "v_alt": np.frombuffer(b"".join(alt_b), dtype=np.uint8),
        "v_alt_off": np.concatenate([[0], np.cumsum([len(x) for x in alt_b])]).astype(np.int64),
        "v_af": variants["af"].to_numpy(np.float32),
        "gts": bits,
        "g_vstart": np.array(vstart, dtype=np.int64),
        "g_vend": np.array(vend, dtype=np.int64),
        "counts": np.array(json.dumps(dict(counts), sort_keys=True)),
    }
    # Uncompressed: zlib on the reference would cost more than the whole build.
    with atomic_output(out_path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return counts


def run_haplotypes(chunk, samples, bcf, fasta, index, stats, window: int, policies: dict) -> None:
    """Rule `haplotypes`: the compact haplotype index of one chunk of genes, and per gene its
    unique / total haplotypes and those whose TSS base is deleted."""
    from hapexp.sequences.index import HaplotypeIndex

    genes = pd.read_csv(chunk, sep="\t", dtype={"chrom": str, "gene_id": str})
    people = Path(samples).read_text().split()
    window = int(window)
    counts = build_index(bcf, fasta, genes, window, index, samples=people, policies=policies)
    log.info("policies %s: %s", policies, format_counts(counts))
    ratio = HaplotypeIndex.load(index).unique_ratio(window)
    for r in ratio.itertuples():
        log.info(
            "%s: %d unique of %d haplotypes (%.3f); TSS deleted on %d haplotypes",
            r.gene_id, r.n_unique, r.n_haplotypes, r.unique_ratio, r.tss_deleted,
        )  # fmt: skip
    if ratio["tss_deleted"].sum():
        log.info(
            "TSS deleted on %d haplotypes of %d genes: their windows are anchored on the first base "
            "after the deletion (docs/architecture.md)",
            int(ratio["tss_deleted"].sum()), int((ratio["tss_deleted"] > 0).sum()),
        )  # fmt: skip
    write_tsv(ratio, stats)


def run_export_fasta(index, fasta, genes, samples, length, rc_minus: bool) -> None:
    """Rule `export_fasta`: personal FASTA (`>sample|hap|gene`) of the chosen genes and samples
    from the chunks' indexes (`index`: their paths)."""
    from hapexp.sequences.fasta import export_fasta

    n = export_fasta(list(index), fasta, genes=genes, samples=samples, length=length, rc_minus=rc_minus)
    log.info("wrote %d sequences to %s", n, fasta)
