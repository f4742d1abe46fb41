"""Helpers the input readers share: opening text files, config-named tables, row errors.

Row numbers are 0-based table rows; errors name 1-based file lines.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from hapexp.errors import InputError


def open_text(path):
    """Open a text file, gzipped or not (told by its magic bytes), for reading; line
    endings are returned as in the file (``newline=""``)."""
    path = Path(path)
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", newline="")
    return open(path, newline="")  # noqa: SIM115 - caller closes


def read_config_table(path, what: str, config_key: str, required: list[str], fix: str, dtype) -> pd.DataFrame:
    """A TSV table named by the config (`config_key`); `InputError` when the file is missing
    or lacks one of the `required` columns (`fix` says which columns it needs)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"{what} not found", f"Check `{config_key}` in the config.")
    df = pd.read_csv(path, sep="\t", dtype=dtype)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(
            path,
            f"missing column(s) {', '.join(missing)} (found {', '.join(map(str, df.columns))})",
            fix,
            where="line 1",
        )
    return df


def raise_first_bad(path, bad, problem, fix: str) -> None:
    """InputError at the first True row of `bad` (row i is file line i + 2: below the header);
    `problem(i)` says what is wrong with it."""
    rows = np.flatnonzero(np.asarray(bad))
    if len(rows):
        i = int(rows[0])
        raise InputError(path, problem(i), fix, where=f"line {i + 2}")
