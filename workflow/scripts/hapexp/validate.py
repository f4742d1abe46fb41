"""Up-front input validation: fail in seconds, not after ten GPU-hours.

`validate_cohort` runs every check on one cohort's inputs and raises
`InputError` (file, record or line, what is wrong, what to do) on the first
problem; warnings (partial sample or gene overlap) are returned for the log.
Rule `validate_inputs` runs it before any other per-cohort rule, and writes its
flag file only when everything passed, so nothing lands in `results/` otherwise.

Coordinates: gene-table `tss` and VCF `POS` are 1-based; windows are computed
0-based half-open as in docs/architecture.md.
"""

from __future__ import annotations

import difflib
import gzip
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hapexp.config import model_spec
from hapexp.errors import InputError

log = logging.getLogger("hapexp.validate")

MAX_EXAMPLES = 5


@dataclass
class Report:
    """What validation saw: counts for the log, warnings that did not stop the run."""

    warnings: list[str] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)

    def warn(self, msg: str) -> None:
        log.warning(msg)
        self.warnings.append(msg)


# --------------------------------------------------------------------------- config


def check_config(config: dict, schema: dict, configfile: str = "config") -> None:
    """Schema errors rephrased for people: the key path, what is wrong, a suggestion."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        fix = "See config/README.md for the keys and their allowed values."
        if err.validator == "additionalProperties":
            allowed = list(_schema_at(schema, err.absolute_path).get("properties", {}))
            extra = [k for k in err.instance if k not in allowed]
            hints = [f"{k!r} → did you mean {m[0]!r}?" for k in extra if (m := difflib.get_close_matches(k, allowed, 1))]
            fix = (" ".join(hints) + " " if hints else "") + f"Allowed keys here: {', '.join(allowed)}."
        elif err.validator == "required":
            fix = f"Add the missing key under {key}. " + fix
        elif err.validator == "enum":
            fix = f"Use one of: {', '.join(map(str, err.validator_value))}."
        raise InputError(configfile, f"config key {key}: {err.message}", fix)

    for name, cfg in config["models"].items():
        try:
            spec = model_spec(cfg)
        except ValueError as e:
            raise InputError(configfile, f"model {name!r}: {e}", "Fix `kind` in the model's block.") from None
        bin_size = spec.get("bin_size")
        if bin_size and (spec["window"] % bin_size or (spec["window"] - 2 * spec.get("crop", 0)) <= 0):
            raise InputError(
                configfile,
                f"model {name!r}: window {spec['window']} is not a multiple of its bin size {bin_size} "
                f"(or leaves no bins after cropping {spec.get('crop', 0)} bp per side)",
                f"Set models.{name}.window to a multiple of {bin_size}, e.g. "
                f"{max(bin_size, round(spec['window'] / bin_size) * bin_size)}.",
            )
        weights = spec.get("weights")
        if spec["kind"] in ("enformer", "borzoi") and weights and Path(weights).is_dir():
            if not (Path(weights) / "config.json").exists():
                raise InputError(
                    weights,
                    f"model {name!r}: the weights directory has no config.json",
                    "Save the model with `save_pretrained(dir)` (it writes config.json + weights), "
                    "or give a hub id such as EleutherAI/enformer-official-rough.",
                )
    for name, c in config["cohorts"].items():
        if "{chrom}" in c["vcf"] and not c.get("chromosomes"):
            raise InputError(
                configfile,
                f"cohort {name!r}: vcf {c['vcf']!r} has {{chrom}} but no `chromosomes` list",
                f"Add cohorts.{name}.chromosomes: [...] with the names that fill {{chrom}}.",
            )


def _schema_at(schema: dict, path) -> dict:
    node = schema
    for p in path:
        props = node.get("properties", {})
        node = props[p] if p in props else node.get("additionalProperties", {})
        if not isinstance(node, dict):
            return {}
    return node


# --------------------------------------------------------------------------- files


def vcf_paths(cohort_cfg: dict) -> list[str]:
    """The cohort's VCF files: one, or one per chromosome when `vcf` has `{chrom}`."""
    vcf = cohort_cfg["vcf"]
    if "{chrom}" in vcf:
        return [vcf.format(chrom=c) for c in cohort_cfg["chromosomes"]]
    return [vcf]


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
    fai_df = pd.read_csv(fai, sep="\t", header=None, usecols=[0, 1], dtype={0: str, 1: np.int64})
    return dict(zip(fai_df[0], fai_df[1], strict=True))


def check_vcf_file(path) -> None:
    """VCF/BCF exists, is BGZF-compressed (or BCF) and has a .tbi/.csi index."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "VCF not found", "Check the cohort's `vcf` (and `chromosomes`) in the config.")
    with open(path, "rb") as fh:
        head = fh.read(18)
    # BGZF = gzip member with the 'BC' extra subfield (SAM spec §4.1).
    if not (head[:4] == b"\x1f\x8b\x08\x04" and head[12:14] == b"BC"):
        raise InputError(
            path,
            "VCF is not bgzip-compressed (plain text or plain gzip)",
            f"Recompress and index it: `bcftools view -Oz -o out.vcf.gz {path} && tabix -p vcf out.vcf.gz`.",
        )
    if not any(Path(str(path) + s).exists() for s in (".tbi", ".csi")):
        raise InputError(
            path,
            "VCF has no index (.tbi or .csi beside it)",
            f"Index it: `tabix -p vcf {path}` (or `bcftools index {path}`).",
        )


def harmonize_name(name: str, targets) -> str | None:
    """Map a contig name onto `targets` allowing a `chr` prefix difference (chr22 ↔ 22, chrM ↔ MT)."""
    if name in targets:
        return name
    alt = name[3:] if name.startswith("chr") else "chr" + name
    alt = {"chrMT": "chrM", "M": "MT"}.get(alt, alt)
    return alt if alt in targets else None


# --------------------------------------------------------------------------- tables


def read_expression_checked(path, fmt: str = "auto") -> pd.DataFrame:
    """Expression matrix with duplicate, non-numeric and all-NaN checks."""
    from hapexp.formats import read_expression

    if not Path(path).exists():
        raise InputError(path, "expression file not found", "Check the cohort's `expression` in the config.")
    expr = read_expression(path, fmt)
    dup_genes = expr.index[expr.index.duplicated()].unique()
    if len(dup_genes):
        raise InputError(path, f"duplicate gene ids: {', '.join(dup_genes[:MAX_EXAMPLES])}", "Keep one row per gene.")
    dup_samples = expr.columns[expr.columns.duplicated()].unique()
    if len(dup_samples):
        raise InputError(
            path, f"duplicate sample ids: {', '.join(dup_samples[:MAX_EXAMPLES])}", "Keep one column per sample."
        )
    all_nan = expr.index[expr.isna().all(axis=1)]
    if len(all_nan):
        raise InputError(
            path,
            f"{len(all_nan)} gene(s) have no value in any sample, e.g. {', '.join(all_nan[:MAX_EXAMPLES])}",
            "Remove those rows (or fix the quantification).",
        )
    return expr


def check_gene_table(genes: pd.DataFrame, path, contig_lengths: dict[str, int], harmonize: bool) -> pd.DataFrame:
    """Strand, duplicate ids, TSS inside its chromosome (1-based, 1 ≤ tss ≤ length)."""
    dup = genes["gene_id"][genes["gene_id"].duplicated()].unique()
    if len(dup):
        raise InputError(path, f"duplicate gene ids: {', '.join(map(str, dup[:MAX_EXAMPLES]))}", "Keep one row per gene.")
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
        chrom = harmonize_name(str(row["chrom"]), contig_lengths) if harmonize else str(row["chrom"])
        if chrom is None or chrom not in contig_lengths:
            continue  # genes on contigs absent from the FASTA are dropped (and counted) by rule genes
        if not 1 <= int(row["tss"]) <= contig_lengths[chrom]:
            raise InputError(
                path,
                f"gene {row['gene_id']}: tss {row['tss']} is outside {chrom} (length {contig_lengths[chrom]}; tss is 1-based)",
                "Fix the coordinate, or check the gene table and FASTA are the same genome build.",
                where=f"line {i + 2}",
            )
    return genes


# --------------------------------------------------------------------------- VCF content


def scan_vcf(
    vcf_path,
    fasta_path,
    regions: list[tuple[str, int, int]],
    unphased_policy: str,
    missing_policy: str,
    contig_map: dict[str, str],
    samples: list[str] | None = None,
) -> dict[str, object]:
    """Check REF against the FASTA and phasing/missingness in `regions` (0-based half-open).

    Returns counts; raises on REF mismatches (with the count and first examples)
    and on unphased heterozygotes / missing genotypes under the `error` policies.
    """
    import pysam

    fasta = pysam.FastaFile(str(fasta_path))
    counts = {"records": 0, "ref_mismatch": 0, "unphased": 0, "missing": 0}
    mismatches: list[str] = []
    seen: set[tuple[str, int, str]] = set()
    with pysam.VariantFile(str(vcf_path)) as vf:
        if samples is not None:
            vf.subset_samples([s for s in samples if s in vf.header.samples])
        for chrom, start0, end0 in _merge_regions(regions):
            vcf_chrom = contig_map.get(chrom)
            if vcf_chrom is None:
                continue
            for rec in vf.fetch(vcf_chrom, start0, end0):
                key = (rec.chrom, rec.pos, rec.ref)
                if key in seen:
                    continue
                seen.add(key)
                counts["records"] += 1
                ref_fa = fasta.fetch(chrom, rec.pos - 1, rec.pos - 1 + len(rec.ref)).upper()
                if ref_fa != rec.ref.upper():
                    counts["ref_mismatch"] += 1
                    if len(mismatches) < MAX_EXAMPLES:
                        mismatches.append(f"{rec.chrom}:{rec.pos} REF={rec.ref} FASTA={ref_fa}")
                for name, smp in rec.samples.items():
                    gt = smp.get("GT")
                    if gt is None or any(a is None for a in gt):
                        counts["missing"] += 1
                        if missing_policy == "error":
                            raise InputError(
                                vcf_path,
                                f"missing genotype for sample {name}",
                                "Impute the VCF, or set variants.missing: ref to use the reference allele.",
                                where=f"record {rec.chrom}:{rec.pos}",
                            )
                        continue
                    if len(gt) == 2 and not smp.phased and gt[0] != gt[1]:
                        counts["unphased"] += 1
                        if unphased_policy == "error":
                            raise InputError(
                                vcf_path,
                                f"unphased heterozygous genotype {gt[0]}/{gt[1]} for sample {name}",
                                "Phase the VCF (e.g. SHAPEIT5/Beagle), or set variants.unphased: ref "
                                "to treat such genotypes as reference.",
                                where=f"record {rec.chrom}:{rec.pos}",
                            )
    if counts["ref_mismatch"]:
        raise InputError(
            vcf_path,
            f"{counts['ref_mismatch']} of {counts['records']} records have a REF that does not match "
            f"{fasta_path}; first: {'; '.join(mismatches)}",
            "Use the FASTA of the VCF's genome build (check GRCh37 vs GRCh38), "
            "or fix the records with `bcftools norm -c s -f FASTA`.",
        )
    return counts


def _merge_regions(regions):
    by_chrom: dict[str, list[tuple[int, int]]] = {}
    for chrom, s, e in regions:
        by_chrom.setdefault(chrom, []).append((max(0, s), e))
    for chrom in sorted(by_chrom):
        ivs = sorted(by_chrom[chrom])
        cur_s, cur_e = ivs[0]
        for s, e in ivs[1:]:
            if s <= cur_e:
                cur_e = max(cur_e, e)
            else:
                yield chrom, cur_s, cur_e
                cur_s, cur_e = s, e
        yield chrom, cur_s, cur_e


def read_lines(path) -> list[str]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as fh:
        return [line.strip() for line in fh if line.strip() and not line.startswith("#")]


# --------------------------------------------------------------------------- driver


def validate_cohort(config: dict, cohort: str, configfile: str = "config") -> Report:
    """Run every check for one cohort; raise InputError on the first problem."""
    import pysam

    from hapexp.formats import read_covariates
    from hapexp.genes import load_genes

    report = Report()
    ccfg = config["cohorts"][cohort]
    vcfg = config.get("variants", {})
    harmonize = vcfg.get("harmonize_chrom", True)

    contigs = check_fasta(config["reference"]["fasta"])

    # VCF files: format, index, contigs, samples.
    vcf_samples: list[str] | None = None
    contig_map: dict[str, str] = {}  # FASTA contig -> (file, VCF contig)
    vcf_of_contig: dict[str, str] = {}
    for path in vcf_paths(ccfg):
        check_vcf_file(path)
        with pysam.VariantFile(path) as vf:
            names = list(vf.header.samples)
            dups = sorted({s for s in names if names.count(s) > 1})
            if dups:
                raise InputError(path, f"duplicate sample ids in the header: {', '.join(dups[:MAX_EXAMPLES])}", "Rename them.")
            if vcf_samples is None:
                vcf_samples = names
            elif names != vcf_samples:
                raise InputError(
                    path,
                    "samples differ from the cohort's first VCF file",
                    "Per-chromosome VCFs must list the same samples in the same order (bcftools view -S).",
                )
            file_contigs = list(vf.index.keys()) if vf.index is not None else list(vf.header.contigs)
            absent = []
            for c in file_contigs:
                fa = harmonize_name(c, contigs) if harmonize else (c if c in contigs else None)
                if fa is None:
                    absent.append(c)
                else:
                    contig_map[fa] = c
                    vcf_of_contig[fa] = path
            if absent and len(absent) == len(file_contigs):
                raise InputError(
                    path,
                    f"none of the VCF's contigs ({', '.join(absent[:MAX_EXAMPLES])}) is in the FASTA "
                    f"({', '.join(list(contigs)[:MAX_EXAMPLES])}…)",
                    "Use the FASTA of the VCF's build; for chr-prefix differences keep variants.harmonize_chrom: true.",
                )
            if absent:
                report.warn(f"{path}: {len(absent)} contig(s) absent from the FASTA are ignored: {', '.join(absent[:10])}")
    vcf_samples = vcf_samples or []

    # Expression, samples.
    expr = read_expression_checked(ccfg["expression"], ccfg.get("expression_format", "auto"))
    samples = [s for s in vcf_samples if s in set(expr.columns)]
    if ccfg.get("samples"):
        wanted = read_lines(ccfg["samples"])
        samples = [s for s in samples if s in set(wanted)]
    if not samples:
        raise InputError(
            ccfg["expression"],
            f"no sample id is both in the expression matrix ({expr.shape[1]} samples, e.g. "
            f"{', '.join(map(str, expr.columns[:3]))}) and in the VCF ({len(vcf_samples)}, e.g. {', '.join(vcf_samples[:3])})",
            "Make the column names of the expression matrix the VCF's sample ids.",
        )
    if len(samples) < max(len(vcf_samples), expr.shape[1]):
        report.warn(
            f"sample overlap: {len(samples)} used; {len(vcf_samples)} in the VCF, {expr.shape[1]} in the expression"
        )
    report.facts["samples"] = len(samples)

    if ccfg.get("covariates"):
        cov = read_covariates(ccfg["covariates"])
        missing = [s for s in samples if s not in set(cov.columns)]
        if missing:
            raise InputError(
                ccfg["covariates"],
                f"{len(missing)} sample(s) used in the analysis have no covariate values, e.g. {', '.join(missing[:MAX_EXAMPLES])}",
                "Add columns for them, or restrict the cohort with `samples:`.",
            )
        na = cov[samples].isna().any(axis=1)
        if na.any():
            raise InputError(
                ccfg["covariates"], f"covariate {na.index[na][0]!r} has missing values", "Impute or drop it."
            )

    # Genes.
    genes_src = config["genes"].get("table") or config["genes"].get("gtf")
    genes = load_genes(config["genes"])
    check_gene_table(genes.reset_index(drop=True), genes_src, contigs, harmonize)
    from hapexp.formats import match_gene_ids

    in_expr = match_gene_ids(genes["gene_id"], expr.index)
    n_in = int(pd.notna(in_expr).sum())
    if n_in == 0:
        raise InputError(
            genes_src,
            f"none of the {len(genes)} genes is in the expression matrix {ccfg['expression']} "
            f"(genes e.g. {', '.join(genes['gene_id'][:3])}; expression e.g. {', '.join(expr.index[:3])})",
            "Use gene ids of the same annotation (Ensembl version suffixes are matched either way).",
        )
    if n_in < len(genes):
        report.warn(f"{len(genes) - n_in} of {len(genes)} genes are absent from the expression matrix and skipped")
    genes = genes[pd.notna(in_expr)]
    fa_chrom = genes["chrom"].astype(str).map(lambda c: harmonize_name(c, contigs) if harmonize else c)
    genes = genes.assign(fa_chrom=fa_chrom)
    kept = genes[genes["fa_chrom"].isin(list(contig_map))]
    if kept.empty:
        raise InputError(
            genes_src,
            "no gene is left after filtering: none of the genes in the expression matrix lies on a chromosome "
            f"present in both the VCF and the FASTA (gene chromosomes e.g. {', '.join(genes['chrom'].astype(str).unique()[:5])})",
            "Check that genes, VCF and FASTA use the same build and chromosome names.",
        )
    report.facts["genes"] = len(kept)

    # VCF content in the model windows around the kept genes (0-based half-open).
    half = max(model_spec(m)["window"] for m in config["models"].values()) // 2 + 1
    counts_total: dict[str, int] = {}
    for path in dict.fromkeys(vcf_of_contig.values()):
        regions = [
            (c, int(t) - 1 - half, int(t) - 1 + half)
            for c, t in zip(kept["fa_chrom"], kept["tss"], strict=True)
            if vcf_of_contig.get(c) == path
        ]
        if not regions:
            continue
        counts = scan_vcf(
            path,
            config["reference"]["fasta"],
            regions,
            vcfg.get("unphased", "error"),
            vcfg.get("missing", "ref"),
            contig_map,
            samples,
        )
        for k, v in counts.items():
            counts_total[k] = counts_total.get(k, 0) + v
    report.facts.update(counts_total)
    return report
