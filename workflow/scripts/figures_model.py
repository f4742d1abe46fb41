"""Rule figures_model: one model's figures (PNG + PDF)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.verdict.figures import run_figures_model

run_figures_model(
    snakemake.wildcards.model,
    snakemake.input.performance,
    snakemake.input.ism,
    snakemake.input.eqtl,
    snakemake.input.concordance,
    snakemake.input.drivers,
    snakemake.params.cfg,
    # PDFs are written beside each PNG by the same call; only the PNG paths are passed.
    {k: v for k, v in snakemake.output.items() if not k.endswith("_pdf")},
    egenes_path=snakemake.input.egenes,
)
