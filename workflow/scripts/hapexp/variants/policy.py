"""The `variants` policy: which VCF records every stage uses (one definition).

The haplotype index (`apply_policies`, which adds the genotype policies `missing` and
`unphased`), the eQTL scan, the elastic net and, through the haplotype index, ISM all
keep exactly the records `record_mask` keeps:

- always dropped: symbolic/structural ALTs (`<DEL>`, `*`, breakends), alleles with
  characters other than A, C, G, T, N, and records with REF == ALT;
- `snv_only: true`: indels (REF or ALT longer than one base) are dropped;
- `maf > 0`: records whose minor-allele frequency over the analysed individuals is
  below `maf` are dropped. The frequency is over called alleles; for dosages it is the
  mean ALT dosage / 2, which mean imputation of missing calls leaves unchanged.

Stage-specific analysis filters come on top (`eqtl.maf`, `elasticnet.maf`, `ism.maf`,
`ism.indels`; monomorphic variants are never tested), and writing a PredictDB model
applies PredictDB's own exclusions (`predictdb_exclusions`: indels and
strand-ambiguous SNPs, A/T and C/G).
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pandas as pd

from hapexp.config.schema import with_defaults
from hapexp.errors import InputError

log = logging.getLogger(__name__)

# A frequency within this of the threshold counts as equal to it (sums of dosages and of
# called alleles differ in the last bits; the same record must get the same decision).
_MAF_EPS = 1e-12
_AMBIGUOUS = {("A", "T"), ("T", "A"), ("C", "G"), ("G", "C")}


def minor_allele_frequency(af) -> np.ndarray:
    af = np.asarray(af, dtype=float)
    return np.minimum(af, 1.0 - af)


def allele_classes(ref, alt) -> dict[str, np.ndarray]:
    """Per record: symbolic, non-ACGTN, REF == ALT, SNV (both alleles one base)."""
    ref = pd.Series(np.asarray(ref, dtype=object)).astype(str).str.upper()
    alt = pd.Series(np.asarray(alt, dtype=object)).astype(str).str.upper()
    symbolic = alt.str.startswith("<") | (alt == "*") | alt.str.contains(r"[\[\]]", regex=True)
    bad_chars = ~symbolic & (
        ref.str.contains("[^ACGTN]", regex=True) | alt.str.contains("[^ACGTN]", regex=True)
    )
    return {
        "symbolic": symbolic.to_numpy(bool),
        "non_acgtn": bad_chars.to_numpy(bool),
        "ref_is_alt": (ref == alt).to_numpy(bool),
        "snv": ((ref.str.len() == 1) & (alt.str.len() == 1)).to_numpy(bool),
    }


def record_mask(ref, alt, af, policies: dict | None) -> tuple[np.ndarray, Counter]:
    """Records kept by the `variants` policy (see module doc), and why the others went.

    `af`: ALT allele frequency over the analysed individuals (ignored unless maf > 0)."""
    p = with_defaults("variants", policies)
    c = allele_classes(ref, alt)
    counts: Counter = Counter()
    counts["records_read"] = int(c["snv"].size)
    counts["skipped_symbolic"] = int(c["symbolic"].sum())
    counts["skipped_non_acgtn"] = int(c["non_acgtn"].sum())
    keep = ~(c["symbolic"] | c["non_acgtn"] | c["ref_is_alt"])
    if p["snv_only"]:
        counts["skipped_indel_snv_only"] = int((keep & ~c["snv"]).sum())
        keep &= c["snv"]
    if float(p["maf"]) > 0:
        low = keep & (minor_allele_frequency(af) < float(p["maf"]) - _MAF_EPS)
        counts["skipped_maf"] = int(low.sum())
        keep &= ~low
    return keep, counts


def apply_policies(variants, alleles, phased, ploidy, policies: dict, source, samples):
    """Filter records and genotypes by the configured policies; every decision counted.

    Records: `record_mask` (shared with the eQTL scan and the elastic net); genotypes:
    `missing` and `unphased`. Input: `hapexp.variants.genotypes.read_genotypes`' arrays.
    Returns (variants [+ af], carried bool [n_var, n_samples, 2], Counter).
    """
    p = with_defaults("variants", policies)
    if (alleles > 1).any():
        i = int(np.argwhere(alleles > 1)[0][0])
        r = variants.iloc[i]
        raise InputError(
            source,
            "multi-allelic record not split",
            "Use the normalized BCF (rule normalize_variants: bcftools norm -m -any)",
            where=f"record {r.chrom}:{r.pos0 + 1}",
        )
    # Allele frequency over the index's samples, before any genotype policy.
    called = alleles >= 0
    n_called = called.sum(axis=(1, 2))
    af = np.where(n_called > 0, (alleles == 1).sum(axis=(1, 2)) / np.maximum(n_called, 1), 0.0)
    keep, counts = record_mask(variants["ref"], variants["alt"], af, p)
    ref = variants["ref"].str.upper()
    alt = variants["alt"].str.upper()
    variants = variants[keep].reset_index(drop=True).copy()
    alleles, phased, ploidy, af = alleles[keep], phased[keep], ploidy[keep], af[keep]
    variants["ref"], variants["alt"] = ref[keep].to_numpy(), alt[keep].to_numpy()
    variants["af"] = af

    missing = alleles < 0
    counts["missing_alleles"] = int(missing.sum())
    if missing.any():
        if p["missing"] == "error":
            i, s, _ = np.argwhere(missing)[0]
            r = variants.iloc[i]
            raise InputError(
                source,
                f"{int(missing.sum())} missing genotype alleles (e.g. sample {samples[s]})",
                "Set `variants.missing: ref` to read them as reference, or impute the VCF",
                where=f"record {r.chrom}:{r.pos0 + 1}",
            )
        alleles = np.where(missing, 0, alleles)
    het_unphased = (~phased) & (ploidy == 2) & (alleles[:, :, 0] != alleles[:, :, 1])
    counts["unphased_heterozygous"] = int(het_unphased.sum())
    counts["unphased_homozygous"] = int(((~phased) & (ploidy == 2)).sum() - het_unphased.sum())
    if het_unphased.any():
        if p["unphased"] == "error":
            i, s = np.argwhere(het_unphased)[0]
            r = variants.iloc[i]
            raise InputError(
                source,
                f"{int(het_unphased.sum())} unphased heterozygous genotypes (e.g. sample {samples[s]})",
                "Phase the VCF (SHAPEIT/Eagle/Beagle), or set `variants.unphased: ref` to read them as reference",
                where=f"record {r.chrom}:{r.pos0 + 1}",
            )
        if p["unphased"] == "ref":
            alleles = np.where(het_unphased[:, :, None], 0, alleles)
        # "first": keep the written order, i.e. what `bcftools consensus -H 1/-H 2` does.
    counts["variants_kept"] = len(variants)
    return variants, alleles == 1, counts


def filter_dosages(dosages, policies: dict | None):
    """Apply the `variants` policy to a `hapexp.variants.genotypes.Dosages` (eQTL, elastic net).

    Returns (kept Dosages, counts: records_read, skipped_*, variants_kept)."""
    keep, counts = record_mask(dosages.ref, dosages.alt, dosages.af, policies)
    counts["variants_kept"] = int(keep.sum())
    return dosages.take(np.flatnonzero(keep)), counts


def is_strand_ambiguous(ref, alt) -> np.ndarray:
    """A/T and C/G SNPs: their strand cannot be told from the alleles (PredictDB drops them)."""
    ref = np.asarray(ref, dtype=object)
    alt = np.asarray(alt, dtype=object)
    return np.array(
        [(str(r).upper(), str(a).upper()) in _AMBIGUOUS for r, a in zip(ref, alt, strict=True)], bool
    )


def predictdb_exclusions(dosages):
    """PredictDB's genotype filter before fitting (its `split_snp_annot_by_chr.py`):
    drop indels and strand-ambiguous SNPs. Returns (kept Dosages, counts)."""
    snv = allele_classes(dosages.ref, dosages.alt)["snv"]
    ambiguous = snv & is_strand_ambiguous(dosages.ref, dosages.alt)
    keep = snv & ~ambiguous
    counts = Counter(
        predictdb_skipped_indel=int((~snv).sum()),
        predictdb_skipped_ambiguous=int(ambiguous.sum()),
        predictdb_variants_kept=int(keep.sum()),
    )
    return dosages.take(np.flatnonzero(keep)), counts


def format_counts(counts) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(dict(counts).items()))
