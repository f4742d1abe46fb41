"""Rule `download` (one configured entry → its path) and rule `download_faidx`."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.inputs.download import download, write_fai
from hapexp.log import setup_rule_logging

log = setup_rule_logging(snakemake)

if snakemake.rule == "download_faidx":
    write_fai(snakemake.input[0])
else:
    entry = snakemake.params.entry
    download(
        entry["url"],
        snakemake.output[0],
        md5=entry.get("md5"),
        sha256=entry.get("sha256"),
        decompress=bool(entry["decompress"]),
    )
