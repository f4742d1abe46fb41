"""Rules figures_cohort and figures_model: report figures (PNG + PDF)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.io import read_matrix
from hapexp.log import setup_rule_logging
from hapexp.verdict.figures import run_cohort, run_model

log = setup_rule_logging(snakemake)
# PDFs are written beside each PNG by the same call; only the PNG paths are passed.
out = {k: v for k, v in snakemake.output.items() if not k.endswith("_pdf")}
if snakemake.rule == "figures_cohort":
    run_cohort(
        snakemake.input.performance,
        snakemake.input.raw,
        snakemake.params.raw_format,
        dict(zip(snakemake.params.models, snakemake.input.references, strict=True)),
        dict(zip(snakemake.params.models, snakemake.input.ism, strict=True)),
        snakemake.params.cfg,
        out,
        samples=list(read_matrix(snakemake.input.prepared).columns),
        is_level=snakemake.params.is_level,
    )
else:
    run_model(
        snakemake.wildcards.model,
        snakemake.input.performance,
        snakemake.input.ism,
        snakemake.input.eqtl,
        snakemake.input.concordance,
        snakemake.input.drivers,
        snakemake.params.cfg,
        out,
        egenes_path=snakemake.input.egenes,
    )
log.info("figures written: %s", ", ".join(out.values()))
