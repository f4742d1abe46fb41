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
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pysam

from hapexp.errors import InputError
from hapexp.inputs.formats import match_gene_ids, read_covariates, read_expression, read_sample_list
from hapexp.inputs.genes import build_gene_table, check_chunkable, gene_regions, load_genes, sample_overlap
from hapexp.inputs.gtf import match_contigs
from hapexp.models.spec import check_weights_dir, model_spec
from hapexp.variants.genotypes import resolve_window
from hapexp.variants.vcf import fasta_lengths, merge_regions, vcf_contigs, vcf_paths

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
            hints = [
                f"{k!r} → did you mean {m[0]!r}?"
                for k in extra
                if (m := difflib.get_close_matches(k, allowed, 1))
            ]
            fix = (" ".join(hints) + " " if hints else "") + f"Allowed keys here: {', '.join(allowed)}."
        elif err.validator == "required":
            fix = f"Add the missing key under {key}. " + fix
        elif err.validator == "enum":
            fix = f"Use one of: {', '.join(map(str, err.validator_value))}."
        raise InputError(configfile, f"config key {key}: {err.message}", fix)

    for name, cfg in config["models"].items():
        try:
            spec = model_spec(cfg, name)
        except InputError as e:  # model_spec knows the model, not the config file's name
            raise InputError(configfile, e.problem, e.fix, where=e.where) from None
        check_weights_dir(spec, name)
    for name, c in config["cohorts"].items():
        if "{chrom}" in c["vcf"] and not c.get("chromosomes"):
            raise InputError(
                configfile,
                f"cohort {name!r}: vcf {c['vcf']!r} has {{chrom}} but no `chromosomes` list",
                f"Add cohorts.{name}.chromosomes: [...] with the names that fill {{chrom}}.",
            )
    method = config.get("concordance", {}).get("eqtl_significance", "permutation")
    if method == "permutation" and int(config.get("eqtl", {}).get("permutations", 1000)) == 0:
        raise InputError(
            configfile,
            "eqtl.permutations is 0, but eGenes (concordance.eqtl_significance: permutation) come from the "
            "permutation pass",
            "Set eqtl.permutations (e.g. 1000), or concordance.eqtl_significance: bh_all_pairs (legacy).",
        )
    for stage in ("eqtl", "elasticnet"):
        window = config.get(stage, {}).get("window", 1000000)
        try:
            resolve_window(window, config["models"])
        except ValueError as e:
            raise InputError(
                configfile, f"{stage}.window: {e}", "See config/README.md, section " + stage
            ) from None


def _schema_at(schema: dict, path) -> dict:
    node = schema
    for p in path:
        props = node.get("properties", {})
        node = props[p] if p in props else node.get("additionalProperties", {})
        if not isinstance(node, dict):
            return {}
    return node


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


def check_vcf_file(path) -> None:
    """VCF/BCF exists, is BGZF-compressed (BCF is BGZF too) and has a .tbi/.csi index."""
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


# --------------------------------------------------------------------------- VCF content


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
    """Check REF against the FASTA, phasing and missingness in `regions`.

    `alleles` (a list, optional) receives (REF, ALT, ALT frequency over the samples'
    called alleles) of every ALT of every record, for the variant-policy counts
    (`policy_counts`).

    `regions`: chrom (FASTA names), start0, end0 (0-based half-open); `to_vcf` maps
    FASTA contig names to the file's. Raises on REF mismatches (count and first
    examples) and on unphased heterozygotes / missing genotypes under `error`.
    Streams `bcftools query` in batches of records, genotypes parsed as fixed-width
    blocks (hapexp.variants.vcf): memory does not grow with the number of records, and a
    1000 Genomes-size file takes minutes, not a Python loop per sample and record.
    """
    import subprocess
    import tempfile

    import numpy as np

    from hapexp.variants.vcf import MISSING, _parse_gt_block, _write_regions

    counts = {"records": 0, "ref_mismatch": 0, "unphased": 0, "missing": 0}
    mismatches: list[str] = []
    out_alleles = alleles
    reg = merge_regions(regions)
    reg = reg[reg["chrom"].isin(list(to_vcf))].copy()
    if reg.empty or not samples:
        return counts
    reg["chrom"] = reg["chrom"].map(to_vcf)
    back = {v: k for k, v in to_vcf.items()}
    with tempfile.TemporaryDirectory() as tmp, pysam.FastaFile(str(fasta_path)) as fasta:
        rpath, spath = Path(tmp) / "regions.tsv", Path(tmp) / "samples.txt"
        _write_regions(reg, rpath)
        spath.write_text("\n".join(samples) + "\n")
        proc = subprocess.Popen(
            [
                "bcftools",
                "query",
                "-R",
                str(rpath),
                "-S",
                str(spath),
                "-f",
                "%CHROM\t%POS\t%REF\t%ALT[\t%GT]\n",
            ]
            + [str(vcf_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        blk = (None, 0, b"")

        def check(lines):
            nonlocal blk
            sites, gts = [], []
            for line in lines:
                k = line.index(b"\t", line.index(b"\t", line.index(b"\t", line.index(b"\t") + 1) + 1) + 1)
                sites.append(line[:k].split(b"\t"))
                gts.append(line[k:])
            for chrom, pos, ref, _ in sites:
                counts["records"] += 1
                pos0, fa_chrom = int(pos) - 1, back.get(chrom.decode(), chrom.decode())
                c, s0, seq = blk
                if c != fa_chrom or not (s0 <= pos0 and pos0 + len(ref) <= s0 + len(seq)):
                    blk = (
                        fa_chrom,
                        pos0,
                        fasta.fetch(fa_chrom, pos0, pos0 + (1 << 20) + len(ref)).upper().encode(),
                    )
                    c, s0, seq = blk
                got = seq[pos0 - s0 : pos0 - s0 + len(ref)]
                if got != ref.upper():
                    counts["ref_mismatch"] += 1
                    if len(mismatches) < MAX_EXAMPLES:
                        mismatches.append(
                            f"{chrom.decode()}:{pos.decode()} REF={ref.decode()} FASTA={got.decode()}"
                        )
            alleles, phased, ploidy = _parse_gt_block(b"".join(gts), len(sites), len(samples))
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

        try:
            lines = []
            for line in proc.stdout:
                lines.append(line)
                if len(lines) == batch:
                    check(lines)
                    lines = []
            if lines:
                check(lines)
        finally:
            proc.stdout.close()
            err = proc.stderr.read().decode(errors="replace")
            proc.stderr.close()
            rc = proc.wait()
        if rc != 0:
            raise InputError(vcf_path, f"bcftools could not read it: {err.strip()[-500:]}", "Check the file.")
    if counts["ref_mismatch"]:
        raise InputError(
            vcf_path,
            f"{counts['ref_mismatch']} of {counts['records']} records have a REF that does not match "
            f"{fasta_path}; first: {'; '.join(mismatches)}",
            "Use the FASTA of the VCF's genome build (check GRCh37 vs GRCh38), "
            "or fix the records with `bcftools norm -c s -f FASTA`.",
        )
    return counts


# --------------------------------------------------------------------------- driver


def validate_cohort(config: dict, cohort: str, configfile: str = "config") -> Report:
    """Run every check for one cohort; raise InputError on the first problem."""
    report = Report()
    ccfg = config["cohorts"][cohort]
    vcfg = config.get("variants", {})
    harmonize = vcfg.get("harmonize_chrom", True)
    fasta = config["reference"]["fasta"]
    contigs = check_fasta(fasta)

    # VCF files: format, index, samples, contigs (FASTA name -> (file, VCF name)).
    paths = vcf_paths(ccfg["vcf"], ccfg.get("chromosomes"))
    vcf_samples: list[str] | None = None
    file_of: dict[str, str] = {}
    to_vcf: dict[str, dict[str, str]] = {}
    for path in paths:
        check_vcf_file(path)
        with pysam.VariantFile(path) as vf:
            names = list(vf.header.samples)
        if vcf_samples is None:
            vcf_samples = names
        elif names != vcf_samples:
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
    vcf_samples = vcf_samples or []

    # Expression and samples.
    expr = read_expression_checked(ccfg["expression"], ccfg.get("expression_format", "auto"))
    overlap = sample_overlap(vcf_samples, expr.columns)
    samples = [s for s in vcf_samples if s in set(expr.columns)]
    if ccfg.get("samples"):
        wanted = set(read_sample_list(ccfg["samples"]))
        samples = [s for s in samples if s in wanted]
    if not samples:
        raise InputError(
            ccfg["expression"],
            f"no sample id is both in the expression matrix ({expr.shape[1]} samples, e.g. "
            f"{', '.join(map(str, expr.columns[:3]))}) and in the VCF ({len(vcf_samples)}, "
            f"e.g. {', '.join(vcf_samples[:3])})",
            "Make the column names of the expression matrix the VCF's sample ids.",
        )
    if overlap["vcf_only"] or overlap["expression_only"]:
        report.warn(
            f"sample overlap: {len(samples)} used; {overlap['vcf']} in the VCF, {overlap['expression']} in the expression"
        )
    report.facts["samples"] = len(samples)

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
    genes_src = config["genes"].get("table") or config["genes"].get("gtf")
    genes = load_genes(config["genes"])
    check_gene_table(genes, genes_src, contigs, harmonize)
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
    report.facts["genes"] = len(kept)
    check_chunkable(len(kept), int(config["genes"].get("chunks", 1)), configfile)

    # VCF content in the largest model window around the kept genes.
    half = max(model_spec(m)["window"] for m in config["models"].values()) // 2
    regions = gene_regions(kept, half)
    alleles: list = []
    for path, names in to_vcf.items():
        scanned = scan_vcf(
            path,
            fasta,
            regions,
            vcfg.get("unphased", "error"),
            vcfg.get("missing", "ref"),
            names,
            samples,
            alleles=alleles,
        )
        for k, v in scanned.items():
            report.facts[k] = report.facts.get(k, 0) + v
    report.facts["variant_policy"] = policy_counts(alleles, vcfg)
    return report


def policy_counts(alleles: list, policies: dict) -> dict:
    """The `variants` policy applied to (REF, ALT, frequency) triples: what every stage
    keeps (`hapexp.variants.policy`), counted over the models' windows."""
    from hapexp.variants.policy import POLICY_DEFAULTS, record_mask

    p = {k: v for k, v in {**POLICY_DEFAULTS, **(policies or {})}.items() if k in ("snv_only", "maf")}
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
