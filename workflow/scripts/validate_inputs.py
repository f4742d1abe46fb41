"""Rule validate_inputs: every input check for one cohort, before any heavy job."""

import sys

sys.path.insert(0, snakemake.scriptdir)

import contextlib
import json
from pathlib import Path

from hapexp.errors import InputError
from hapexp.inputs.validate import validate_cohort
from hapexp.io import atomic_output
from hapexp.log import setup_rule_logging

log = setup_rule_logging(snakemake)
out = Path(snakemake.output[0])
try:
    report = validate_cohort(snakemake.params.config, snakemake.wildcards.cohort, snakemake.params.configfile)
except InputError as e:
    log.error("%s", e)
    # Snakemake made the output's directory before the job: leave results/ as it was.
    for d in (out.parent, out.parent.parent):
        with contextlib.suppress(OSError):
            d.rmdir()
    raise SystemExit(f"input validation failed: {e}") from None
for w in report.warnings:
    log.warning("%s", w)
log.info("validation passed: %s", report.facts)
with atomic_output(out) as tmp:
    tmp.write_text(
        json.dumps({"facts": report.facts, "warnings": report.warnings}, indent=2, sort_keys=True) + "\n"
    )
