"""Rule performance: per-gene cross-individual r of every predictor; cross-gene r."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging
from hapexp.verdict.performance import run

log = setup_rule_logging(snakemake)
p = snakemake.params
perf = run(
    prepared_path=snakemake.input.prepared,
    raw_expression_path=snakemake.input.raw,
    raw_format=p.raw_format,
    matrices=dict(zip(p.models, snakemake.input.matrices, strict=True)),
    references=dict(zip(p.models, snakemake.input.references, strict=True)),
    out_performance=snakemake.output.performance,
    out_cross_gene=snakemake.output.cross_gene,
    oof_path=snakemake.input.get("oof"),
    predictdb_path=snakemake.input.get("predictdb"),
    vcf_path=snakemake.input.get("bcf"),
    legacy=p.legacy,
    genes_path=snakemake.input.genes,
    covariates_path=snakemake.input.covariates,
    residualize=p.residualize,
    floors=p.floors,
    level_path=snakemake.input.get("level"),
    level_format=p.level_format,
    policies=p.policies,
    precision_paths=snakemake.input.get("precision", []),
)
log.info("performance: %d gene × predictor rows", len(perf))
