"""Checks of a cohort's VCF content for input validation (rule validate_inputs, driven by
`hapexp.inputs.validate.validate_cohort`): REF against the FASTA, missing and unphased
genotypes under their `variants` policies, and what the variant policy keeps.

Consumers of the one VCF scanner (`hapexp.variants.scan`) and of the REF check of
normalization (`hapexp.variants.normalize.RefCheck`). Coordinates: VCF `POS` is
1-based; regions are 0-based half-open.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hapexp.config.schema import with_defaults
from hapexp.errors import InputError
from hapexp.variants.normalize import RefCheck
from hapexp.variants.policy import record_mask
from hapexp.variants.scan import MISSING, scan
from hapexp.variants.windows import merge_regions


def scan_vcf(
    vcf_path,
    fasta_path,
    regions: pd.DataFrame,
    unphased_policy: str,
    missing_policy: str,
    to_vcf: dict[str, str],
    samples: list[str],
    batch: int = 4096,
    alleles: list | None = None,
) -> dict[str, int]:
    """Check REF against the FASTA, phasing and missingness of the records overlapping
    `regions`.

    `alleles` (a list, optional) receives (REF, ALT, ALT frequency over the samples'
    called alleles) of every ALT of every record, for the variant-policy counts
    (`policy_counts`).

    `regions`: chrom (FASTA names), start0, end0 (0-based half-open); `to_vcf` maps
    FASTA contig names to the file's. Raises on REF mismatches (count and first
    examples) and on unphased heterozygotes / missing genotypes under `error`.
    Consumes the one VCF scanner (`hapexp.variants.scan`) in blocks of `batch` records,
    with the REF check of normalization (`hapexp.variants.normalize.RefCheck`): memory
    does not grow with the number of records, and a 1000 Genomes-size file takes
    minutes, not a Python loop per sample and record.
    """
    counts = {"records": 0, "ref_mismatch": 0, "unphased": 0, "missing": 0}
    reg = merge_regions(regions)
    reg = reg[reg["chrom"].isin(list(to_vcf))].copy()
    if reg.empty or not samples:
        return counts
    reg["chrom"] = reg["chrom"].map(to_vcf)
    back = {v: k for k, v in to_vcf.items()}
    with (
        RefCheck(fasta_path, to_fasta=back) as ref_check,
        scan(
            vcf_path,
            ("CHROM", "POS", "REF", "ALT"),
            regions=reg,
            samples=samples,
            genotypes=True,
            batch=batch,
        ) as blocks,
    ):
        for block in blocks:
            ref_check.update(block.sites)
            _check_genotypes(block, vcf_path, samples, unphased_policy, missing_policy, counts, alleles)
    counts["records"], counts["ref_mismatch"] = ref_check.records, ref_check.mismatches
    ref_check.raise_if_mismatched(vcf_path)
    return counts


def _check_genotypes(block, vcf_path, samples, unphased_policy, missing_policy, counts, out_alleles) -> None:
    """Missing and unphased genotypes of a `hapexp.variants.scan.Block` (sites CHROM, POS,
    REF, ALT) under their policies; ALT frequencies into `out_alleles`."""
    sites, alleles, phased, ploidy = block.sites, block.alleles, block.phased, block.ploidy
    if out_alleles is not None:  # ALT frequencies over called alleles (haploid: one)
        called = (alleles != MISSING) & np.stack([np.ones_like(ploidy, bool), ploidy == 2], axis=2)
        n_called = called.sum(axis=(1, 2))
        for i, (_, _, ref, alts) in enumerate(sites):
            for a, alt in enumerate(alts.decode().split(","), start=1):
                hit = int(((alleles[i] == a) & called[i]).sum())
                out_alleles.append((ref.decode(), alt, hit / n_called[i] if n_called[i] else 0.0))
    missing = (alleles == MISSING).any(axis=2)
    het_unphased = ~phased & (ploidy == 2) & (alleles[:, :, 0] != alleles[:, :, 1]) & ~missing
    counts["missing"] += int(missing.sum())
    counts["unphased"] += int(het_unphased.sum())
    where = lambda i: f"record {sites[i][0].decode()}:{sites[i][1].decode()}"  # noqa: E731
    if missing_policy == "error" and missing.any():
        i, j = np.argwhere(missing)[0]
        raise InputError(
            vcf_path,
            f"missing genotype for sample {samples[j]}",
            "Impute the VCF, or set variants.missing: ref to use the reference allele.",
            where=where(i),
        )
    if unphased_policy == "error" and het_unphased.any():
        i, j = np.argwhere(het_unphased)[0]
        raise InputError(
            vcf_path,
            f"unphased heterozygous genotype {alleles[i, j, 0]}/{alleles[i, j, 1]} for sample {samples[j]}",
            "Phase the VCF (e.g. SHAPEIT5/Beagle), or set variants.unphased: ref "
            "to treat such genotypes as reference.",
            where=where(i),
        )


def policy_counts(alleles: list, policies: dict) -> dict:
    """The `variants` policy applied to (REF, ALT, frequency) triples: what every stage
    keeps (`hapexp.variants.policy`), counted over the models' windows."""
    given = with_defaults("variants", policies)
    p = {k: given[k] for k in ("snv_only", "maf")}
    if not alleles:
        return {"policy": p, "records": 0, "kept": 0, "skipped": {}, "region": "models' windows"}
    ref, alt, af = zip(*alleles, strict=True)
    keep, counts = record_mask(ref, alt, af, policies)
    return {
        "policy": p,
        "region": "models' windows",
        "records": int(counts["records_read"]),
        "kept": int(keep.sum()),
        "skipped": {k: int(v) for k, v in sorted(counts.items()) if k.startswith("skipped") and v},
    }
