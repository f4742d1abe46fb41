"""Rule prepare_expression: transform, add expression PCs, residualize (hapexp.inputs.expression)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.inputs.expression import prepare_expression, select_samples
from hapexp.inputs.formats import read_covariates, read_expression, read_sample_list
from hapexp.io import write_matrix
from hapexp.log import setup_rule_logging
from hapexp.variants.files import vcf_samples

log = setup_rule_logging(snakemake)
cohort = snakemake.params.cohort
expr = read_expression(cohort["expression"], cohort["expression_format"])
cov = read_covariates(cohort["covariates"]) if cohort.get("covariates") else None
sample_list = read_sample_list(cohort["samples"]) if cohort.get("samples") else None
samples = select_samples(expr, vcf_samples(snakemake.input.vcf), cov, sample_list)
log.info(
    "%d samples in expression, VCF%s", len(samples), ", covariates and sample list" if cov is not None else ""
)
prepared, used, _ = prepare_expression(
    expr,
    cov,
    transform=snakemake.params.transform,
    n_pcs=snakemake.params.n_pcs,
    samples=samples,
    expression_path=cohort["expression"],
    covariates_path=cohort.get("covariates", "covariates"),
)
log.info("prepared %d genes × %d samples; %d covariates", *prepared.shape, used.shape[0])
write_matrix(used, snakemake.output.covariates, index_col="id")
write_matrix(prepared, snakemake.output.prepared)
