"""Up-front input validation: fail in seconds, not after ten GPU-hours.

`validate_cohort` runs every check on one cohort's inputs and raises
`InputError` (file, record or line, what is wrong, what to do) on the first
problem; warnings (partial sample or gene overlap) are returned for the log.
Rule `validate_inputs` runs it before any other per-cohort rule, and writes its
flag file only when everything passed, so nothing lands in `results/` otherwise.
The VCF checks are the variants layer's (`hapexp.variants.files.check_vcf_file`,
`hapexp.variants.checks`).

Coordinates: gene-table `tss` and VCF `POS` are 1-based; windows are computed
0-based half-open as in docs/architecture.md.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hapexp.config.schema import with_defaults
from hapexp.errors import InputError
from hapexp.inputs.formats import match_gene_ids, read_covariates, read_expression, read_sample_list
from hapexp.inputs.genes import build_gene_table, check_chunkable, gene_regions, load_genes, sample_overlap
from hapexp.inputs.gtf import match_contigs
from hapexp.models.spec import model_spec
from hapexp.variants.checks import policy_counts, scan_vcf
from hapexp.variants.files import check_vcf_file, fasta_lengths, vcf_contigs, vcf_paths, vcf_samples

log = logging.getLogger(__name__)

MAX_EXAMPLES = 5


@dataclass
class Report:
    """What validation saw: counts for the log, warnings that did not stop the run."""

    warnings: list[str] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)

    def warn(self, msg: str) -> None:
        log.warning(msg)
        self.warnings.append(msg)


# --------------------------------------------------------------------------- files


def check_fasta(path) -> dict[str, int]:
    """FASTA exists and is indexed; returns contig lengths from the .fai."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "reference FASTA not found", "Check reference.fasta in the config.")
    fai = Path(str(path) + ".fai")
    if not fai.exists():
        raise InputError(
            path,
            "reference FASTA has no .fai index beside it",
            f"Index it: `samtools faidx {path}` (or python -c 'import pysam; pysam.faidx(\"{path}\")').",
        )
    return fasta_lengths(path)


def _fasta_name(name: str, contigs, harmonize: bool) -> str | None:
    """The FASTA contig a VCF/gene-table contig denotes (chr22 ↔ 22 when harmonizing)."""
    if not harmonize:
        return name if name in contigs else None
    return match_contigs([name], contigs)[name]


# --------------------------------------------------------------------------- tables


def read_expression_checked(path, fmt: str = "auto") -> pd.DataFrame:
    """Expression matrix (read_expression checks duplicates and non-numbers) + all-NaN genes."""
    if not Path(path).exists():
        raise InputError(path, "expression file not found", "Check the cohort's `expression` in the config.")
    expr = read_expression(path, fmt)
    all_nan = expr.index[expr.isna().all(axis=1)]
    if len(all_nan):
        raise InputError(
            path,
            f"{len(all_nan)} gene(s) have no value in any sample, e.g. {', '.join(all_nan[:MAX_EXAMPLES])}",
            "Remove those rows (or fix the quantification).",
        )
    return expr


def check_gene_table(genes: pd.DataFrame, path, contig_lengths: dict[str, int], harmonize: bool) -> None:
    """Strand and TSS inside its chromosome (1-based: 1 ≤ tss ≤ length); ids are checked on reading."""
    genes = genes.reset_index(drop=True)
    bad_strand = genes.index[~genes["strand"].isin(["+", "-"])]
    if len(bad_strand):
        row = genes.loc[bad_strand[0]]
        raise InputError(
            path,
            f"bad strand {row['strand']!r} for gene {row['gene_id']}",
            "strand must be '+' or '-'.",
            where=f"line {bad_strand[0] + 2}",
        )
    for i, row in genes.iterrows():
        chrom = _fasta_name(str(row["chrom"]), contig_lengths, harmonize)
        if chrom is None:
            continue  # genes on contigs absent from the FASTA are dropped (and counted) by rule genes
        if not 1 <= int(row["tss"]) <= contig_lengths[chrom]:
            raise InputError(
                path,
                f"gene {row['gene_id']}: tss {row['tss']} is outside {chrom} "
                f"(length {contig_lengths[chrom]}; tss is 1-based)",
                "Fix the coordinate, or check the gene table and FASTA are the same genome build.",
                where=f"line {i + 2}",
            )


# --------------------------------------------------------------------------- driver


def _check_expression(ccfg, header_samples, genes, genes_src, file_of, contigs, harmonize, report):
    """One expression matrix (a cohort's, or one tissue's) against the VCF's samples, its
    covariates and the gene table: (samples used, genes kept)."""
    expr = read_expression_checked(ccfg["expression"], ccfg.get("expression_format", "auto"))
    overlap = sample_overlap(header_samples, expr.columns)
    samples = [s for s in header_samples if s in set(expr.columns)]
    if ccfg.get("samples"):
        wanted = set(read_sample_list(ccfg["samples"]))
        samples = [s for s in samples if s in wanted]
    if not samples:
        raise InputError(
            ccfg["expression"],
            f"no sample id is both in the expression matrix ({expr.shape[1]} samples, e.g. "
            f"{', '.join(map(str, expr.columns[:3]))}) and in the VCF ({len(header_samples)}, "
            f"e.g. {', '.join(header_samples[:3])})",
            "Make the column names of the expression matrix the VCF's sample ids.",
        )
    if overlap["vcf_only"] or overlap["expression_only"]:
        report.warn(
            f"sample overlap: {len(samples)} used; {overlap['vcf']} in the VCF, {overlap['expression']} in the expression"
        )

    if ccfg.get("covariates"):
        cov = read_covariates(ccfg["covariates"])
        missing = [s for s in samples if s not in set(cov.columns)]
        if missing:
            raise InputError(
                ccfg["covariates"],
                f"{len(missing)} sample(s) used in the analysis have no covariate values, "
                f"e.g. {', '.join(missing[:MAX_EXAMPLES])}",
                "Add columns for them, or restrict the cohort with `samples:`.",
            )
        na = cov[samples].isna().any(axis=1)
        if na.any():
            raise InputError(
                ccfg["covariates"], f"covariate {na.index[na][0]!r} has missing values", "Impute or drop it."
            )

    # Genes: the same filter as rule genes (in expression, on a VCF contig, in the FASTA).
    if match_gene_ids(genes["gene_id"], expr.index).notna().sum() == 0:
        raise InputError(
            genes_src,
            f"none of the {len(genes)} genes is in the expression matrix {ccfg['expression']} "
            f"(genes e.g. {', '.join(genes['gene_id'][:3])}; expression e.g. {', '.join(expr.index[:3])})",
            "Use gene ids of the same annotation (Ensembl version suffixes are matched either way).",
        )
    kept, counts = build_gene_table(genes, expr.index, list(file_of), contigs, harmonize, genes_src)
    if counts["dropped_not_in_expression"]:
        report.warn(
            f"{counts['dropped_not_in_expression']} of {len(genes)} genes are absent from the expression matrix"
        )
    if kept.empty:
        raise InputError(
            genes_src,
            "no gene is left after filtering: none of the genes in the expression matrix lies on a chromosome "
            f"present in both the VCF and the FASTA (counts: {counts})",
            "Check that genes, VCF and FASTA use the same build and chromosome names.",
        )
    return samples, kept


def validate_cohort(config: dict, cohort: str, configfile: str = "config") -> Report:
    """Run every check for one cohort; raise InputError on the first problem."""
    report = Report()
    config = with_defaults("", config)  # a partial config (tests) as validate() fills it
    ccfg = config["cohorts"][cohort]
    vcfg = config["variants"]
    harmonize = vcfg["harmonize_chrom"]
    fasta = config["reference"]["fasta"]
    contigs = check_fasta(fasta)

    # VCF files: format, index, samples, contigs (FASTA name -> (file, VCF name)).
    paths = vcf_paths(ccfg["vcf"], ccfg.get("chromosomes"))
    header_samples: list[str] | None = None
    file_of: dict[str, str] = {}
    to_vcf: dict[str, dict[str, str]] = {}
    for path in paths:
        check_vcf_file(path)
        names = vcf_samples(path)
        if header_samples is None:
            header_samples = names
        elif names != header_samples:
            raise InputError(
                path,
                f"samples differ from the cohort's first VCF file {paths[0]}",
                "Per-chromosome VCFs must list the same samples in the same order (bcftools view -S).",
            )
        file_contigs = vcf_contigs(path)
        mapped = {c: _fasta_name(c, contigs, harmonize) for c in file_contigs}
        absent = [c for c, fa in mapped.items() if fa is None]
        if file_contigs and len(absent) == len(file_contigs):
            raise InputError(
                path,
                f"none of the VCF's contigs ({', '.join(absent[:MAX_EXAMPLES])}) is in the FASTA "
                f"{fasta} ({', '.join(list(contigs)[:MAX_EXAMPLES])}, …)",
                "Use the FASTA of the VCF's build; for chr-prefix differences keep variants.harmonize_chrom: true.",
            )
        if absent:
            report.warn(
                f"{path}: {len(absent)} contig(s) absent from the FASTA are ignored: {', '.join(absent[:10])}"
            )
        for c, fa in mapped.items():
            if fa is not None:
                file_of[fa] = path
                to_vcf.setdefault(path, {})[fa] = c
    header_samples = header_samples or []

    # Expression, samples, covariates and genes: per tissue (`tissues`: every tissue's
    # expression checked the same way; the facts count the union the cohort runs on).
    from hapexp.config.units import tissues, unit_config

    parts = {t: unit_config({cohort: ccfg}, f"{cohort}/{t}") for t in tissues(ccfg)} or {None: ccfg}
    genes_src = config["genes"].get("table") or config["genes"].get("gtf")
    genes = load_genes(config["genes"])
    check_gene_table(genes, genes_src, contigs, harmonize)
    all_samples, all_kept = [], []
    for tissue, part in parts.items():
        sub = report if tissue is None else Report()
        samples, kept = _check_expression(
            part, header_samples, genes, genes_src, file_of, contigs, harmonize, sub
        )
        if tissue is not None:
            report.warnings += [f"tissue {tissue}: {w}" for w in sub.warnings]
            report.facts.setdefault("tissues", {})[tissue] = {"samples": len(samples), "genes": len(kept)}
        all_samples += samples
        all_kept.append(kept)
    samples = list(dict.fromkeys(all_samples))
    kept = pd.concat(all_kept).drop_duplicates("gene_id") if len(all_kept) > 1 else all_kept[0]
    report.facts["samples"] = len(samples)
    report.facts["genes"] = len(kept)
    check_chunkable(len(kept), int(config["genes"]["chunks"]), configfile)

    # VCF content in the largest model window around the kept genes.
    half = max(model_spec(m)["window"] for m in config["models"].values()) // 2
    regions = gene_regions(kept, half)
    alleles: list = []
    for path, names in to_vcf.items():
        scanned = scan_vcf(
            path,
            fasta,
            regions,
            vcfg["unphased"],
            vcfg["missing"],
            names,
            samples,
            alleles=alleles,
        )
        for k, v in scanned.items():
            report.facts[k] = report.facts.get(k, 0) + v
    report.facts["variant_policy"] = policy_counts(alleles, vcfg)
    return report


def run_validate_inputs(cohort: str, validation, config: dict, configfile: str) -> None:
    """Rule `validate_inputs`: every input check of one cohort before any heavy job; writes
    the facts and warnings (`validation`: validation.json). On a problem: the error in the
    log and on stderr, and results/ left as it was."""
    from hapexp.io import atomic_output

    out = Path(validation)
    try:
        report = validate_cohort(config, cohort, configfile)
    except InputError as e:
        log.error("%s", e)
        # Snakemake made the output's directory before the job: leave results/ as it was.
        for d in (out.parent, out.parent.parent):
            with contextlib.suppress(OSError):
                d.rmdir()
        raise SystemExit(f"input validation failed: {e}") from None
    for w in report.warnings:
        log.warning("%s", w)
    log.info("validation passed: %s", report.facts)
    with atomic_output(out) as tmp:
        tmp.write_text(
            json.dumps({"facts": report.facts, "warnings": report.warnings}, indent=2, sort_keys=True) + "\n"
        )
