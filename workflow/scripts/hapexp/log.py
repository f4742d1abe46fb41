"""Logging for rule scripts: stderr and the `logging` module go to the rule's log."""

from __future__ import annotations

import logging
import sys


def setup_rule_logging(snakemake) -> logging.Logger:
    """Redirect stderr to `snakemake.log[0]` (if any) and return the package logger."""
    if len(snakemake.log) > 0:
        sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: SIM115 - lives for the job
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    return logging.getLogger("hapexp")
