"""Rule download_faidx: the .fai index of a downloaded FASTA."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

setup_rule_logging(snakemake)

from hapexp.inputs.download import run_download_faidx

run_download_faidx(fasta=snakemake.input[0])
