"""Rule download: one configured download entry to its path."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.inputs.download import run_download

run_download(path=snakemake.output[0], **snakemake.params)
