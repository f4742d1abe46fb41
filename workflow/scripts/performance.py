"""Rule performance: per-gene cross-individual r of every predictor; cross-gene r."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.verdict.performance import run_performance

run_performance(
    prepared_path=snakemake.input.prepared,
    raw_expression_path=snakemake.input.raw,
    raw_format=snakemake.params.raw_format,
    matrices=dict(zip(snakemake.params.models, snakemake.input.matrices, strict=True)),
    references=dict(zip(snakemake.params.models, snakemake.input.references, strict=True)),
    out_performance=snakemake.output.performance,
    out_cross_gene=snakemake.output.cross_gene,
    oof_path=snakemake.input.get("oof"),
    predictdb_path=snakemake.input.get("predictdb"),
    vcf_path=snakemake.input.get("bcf"),
    legacy=snakemake.params.legacy,
    genes_path=snakemake.input.genes,
    covariates_path=snakemake.input.covariates,
    residualize=snakemake.params.residualize,
    floors=snakemake.params.floors,
    level_path=snakemake.input.get("level"),
    level_format=snakemake.params.level_format,
    policies=snakemake.params.policies,
    precision_paths=snakemake.input.get("precision", []),
)
