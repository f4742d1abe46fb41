"""Rule download: one configured download entry to its path."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.inputs.download import run_download

run_download(
    snakemake.params.entry,
    snakemake.output[0],
)
