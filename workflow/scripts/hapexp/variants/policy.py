"""The `variants` policy: which VCF records every stage uses (one definition).

Haplotypes (`haplotypes.apply_policies`), the eQTL scan, the elastic net and, through
the haplotype index, ISM all keep exactly the records `record_mask` keeps:

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

log = logging.getLogger(__name__)

POLICY_DEFAULTS = {"snv_only": False, "maf": 0.0, "missing": "ref", "unphased": "error"}
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
    p = {**POLICY_DEFAULTS, **(policies or {})}
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
