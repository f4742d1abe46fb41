"""Rule concordance (one model) and rule ism_agreement (all models)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging
from hapexp.verdict.concordance import run, run_agreement

log = setup_rule_logging(snakemake)
if snakemake.rule == "ism_agreement":
    t = run_agreement(dict(zip(snakemake.params.models, snakemake.input, strict=True)), snakemake.output[0])
else:
    t = run(
        snakemake.input.ism,
        snakemake.input.eqtl,
        snakemake.input.predictions,
        snakemake.input.bcf,
        snakemake.params.cfg,
        snakemake.output.table,
        snakemake.output.drivers,
        egenes_path=snakemake.input.egenes,
    )
log.info("%s: %d rows", snakemake.rule, len(t))
