"""Readers for real-cohort inputs: expression matrices, covariates, sample lists.

Expression formats (all genes × samples, one row per gene):

- ``tsv``: a plain TSV, first column the gene id (any header), then one column per
  sample.
- ``bed``: the GTEx/tensorQTL phenotype BED: ``#chr start end phenotype_id`` (the 4th
  column may be named anything, e.g. ``gene_id``), then samples. Coordinates are
  ignored here (genes are placed by the gene table/GTF).
- ``geuvadis``: the Geuvadis ``GD462.GeneQuantRPKM.50FN.samplename.resk10.txt.gz``
  layout: ``TargetID Gene_Symbol Chr Coord`` then samples.
- ``gct``: GTEx GCT (``#1.2``, a dimensions line, then ``Name Description`` +
  samples).

``fmt="auto"`` picks the format from the header. Gzipped files are read
transparently. Gene ids are kept exactly as in the file (Ensembl version suffix
included); `match_gene_ids` matches them against another id set with or without
the ``.N`` version suffix.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from hapexp.errors import InputError
from hapexp.inputs.tables import open_text

log = logging.getLogger(__name__)

EXPRESSION_FORMATS = ("auto", "tsv", "bed", "geuvadis", "gct")

# Values accepted as "missing" in a numeric matrix; anything else non-numeric is
# an error (a shifted column or a stray annotation column is the usual cause).
NA_TOKENS = frozenset({"NA", "NaN", "nan", "NAN", "na", "N/A"})

# Ensembl stable ids (ENSG…, ENST…, ENSMUSG…) with a ".N" version, optionally
# followed by GENCODE's "_PAR_Y" suffix. Only these are stripped: gene symbols such
# as "RP11-34P13.3" contain dots that are not versions.
_ENSEMBL_VERSION = re.compile(r"^(ENS[A-Z]*[GTPE]\d{11})\.\d+((?:_PAR_Y)?)$")


# --------------------------------------------------------------------------- ids
def strip_version(ids):
    """Drop the Ensembl ``.N`` version from one id or each of an iterable of ids.

    ``ENSG00000223972.5`` → ``ENSG00000223972``; ``ENSG00000182378.14_PAR_Y`` →
    ``ENSG00000182378_PAR_Y`` (PAR copies stay distinct); non-Ensembl ids are returned
    unchanged. A str gives a str; anything else gives a list.
    """
    if isinstance(ids, str):
        return _ENSEMBL_VERSION.sub(r"\1\2", ids)
    return [_ENSEMBL_VERSION.sub(r"\1\2", str(i)) for i in ids]


def match_gene_ids(query: Iterable[str], reference: Iterable[str]) -> pd.Series:
    """Map each query id to the reference id it denotes, ignoring version suffixes.

    An exact match wins; otherwise ids are compared with `strip_version` applied to
    both sides. A versionless key that several reference ids share (two versions of
    one gene) is ambiguous and left unmatched, as is a query id with no counterpart.
    Returns a Series indexed by the query ids (in order) holding the matched
    reference id or ``None``.
    """
    query = [str(q) for q in query]
    reference = [str(r) for r in reference]
    ref_set = set(reference)
    by_stripped: dict[str, str | None] = {}
    for r in reference:
        key = strip_version(r)
        by_stripped[key] = None if (key in by_stripped and by_stripped[key] != r) else r
    out = []
    for q in query:
        if q in ref_set:
            out.append(q)
        else:
            out.append(by_stripped.get(strip_version(q)))
    return pd.Series(out, index=pd.Index(query, name="query"), dtype=object, name="reference")


# ----------------------------------------------------------------------- helpers
def _check_exists(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(
            path, "file not found", "Check the path in the config (relative to the workflow directory)."
        )
    return path


def _first_lines(path, n: int = 3) -> list[str]:
    lines = []
    with open_text(path) as fh:
        for line in fh:
            lines.append(line.rstrip("\r\n"))
            if len(lines) >= n:
                break
    return lines


def detect_expression_format(path) -> str:
    """Guess the expression format from the first line(s) of `path`."""
    path = _check_exists(path)
    lines = _first_lines(path, 1)
    if not lines:
        raise InputError(path, "the file is empty", "Provide a genes × samples expression matrix.")
    first = lines[0]
    if first.startswith("#1.2") or first.startswith("#1.3"):
        return "gct"
    fields = [f.strip() for f in first.split("\t")]
    head = [f.lower().lstrip("#") for f in fields[:4]]
    if len(head) >= 3 and head[0] in ("chr", "chrom", "chromosome") and head[1:3] == ["start", "end"]:
        return "bed"
    if [f.lower() for f in fields[:4]] == ["targetid", "gene_symbol", "chr", "coord"]:
        return "geuvadis"
    return "tsv"


def _check_unique(path, values: list[str], what: str, where_of) -> None:
    seen: dict[str, int] = {}
    for i, v in enumerate(values):
        if v in seen:
            raise InputError(
                path,
                f"duplicate {what} {v!r} (also at {where_of(seen[v])})",
                f"Each {what} must appear once; remove or rename the duplicate.",
                where=where_of(i),
            )
        seen[v] = i


def _rows_complete(path, header_line: int, n_fields: int) -> bool:
    """Whether every non-blank line below the header has exactly `n_fields` fields."""
    with open_text(path) as fh:
        for _ in range(header_line):
            fh.readline()
        return all(line.count("\t") == n_fields - 1 for line in fh if line.strip())


def _read_rows(path, header_line: int, n_fields: int, **read_csv_args) -> pd.DataFrame:
    """The tab-separated rows below 1-based line `header_line` (the header, parsed by the
    caller to catch duplicates), columns numbered 0 … n_fields - 1."""
    with open_text(path) as fh, warnings.catch_warnings():
        # pandas only warns (and drops data) when the first row is longer than
        # the header; make that an error like any other ragged row.
        warnings.simplefilter("error", pd.errors.ParserWarning)
        return pd.read_csv(
            fh,
            sep="\t",
            header=None,
            names=list(range(n_fields)),
            index_col=False,
            skiprows=header_line,
            quoting=3,  # QUOTE_NONE: quotes are data, never field delimiters
            **read_csv_args,
        )


def _fast_numeric_table(path, header: list[str], header_line: int, n_meta: int, id_col: int):
    """Parse with pandas' C parser straight to float; None when anything needs the
    careful path (a parse error, a non-number, a missing value, a duplicate id, a
    short row), which then names the exact line."""
    numeric = {i: np.float64 for i in range(n_meta, len(header))}
    try:
        df = _read_rows(
            path,
            header_line,
            len(header),
            dtype={**{i: str for i in range(n_meta)}, **numeric},
            keep_default_na=False,
            na_values={i: [] for i in range(n_meta)} | {i: ["NA"] for i in numeric},
        )
    except (ValueError, pd.errors.ParserWarning):  # ParserError and EmptyDataError are ValueErrors
        return None
    if df.shape[0] == 0:
        return None
    values = df.iloc[:, n_meta:].to_numpy(dtype=float)
    # NaN is an NA token or the filler of a short row: the latter needs the careful path.
    if np.isnan(values).any() and not _rows_complete(path, header_line, len(header)):
        return None
    ids = df.iloc[:, id_col].astype(str).str.strip()
    if ids.duplicated().any() or (ids == "").any():
        return None
    return pd.DataFrame(values, index=pd.Index(ids.tolist()), columns=pd.Index(header[n_meta:], dtype=object))


def _read_numeric_table(
    path, *, header_line: int, n_meta: int, id_col: int, what_rows: str, fmt: str
) -> pd.DataFrame:
    """Read a TSV whose header is on 1-based line `header_line`; columns
    `n_meta` onwards are samples holding numbers, column `id_col` the row id."""
    path = Path(path)
    with open_text(path) as fh:
        for _ in range(header_line):
            header = fh.readline()
    header = [h.strip() for h in header.rstrip("\r\n").split("\t")]
    samples = header[n_meta:]
    if not samples:
        raise InputError(
            path,
            f"the header has no sample columns (read as {fmt!r}: {n_meta} leading id/annotation column(s))",
            "Expected the id column(s) followed by one column per sample, tab-separated.",
            where=f"line {header_line}",
        )
    _check_unique(path, samples, "sample id", lambda i: f"line {header_line}, column {i + n_meta + 1}")
    fast = _fast_numeric_table(path, header, header_line, n_meta, id_col)
    if fast is not None:
        return fast
    # Slow path: every cell as text, to name the exact line and column of a problem.
    try:
        raw = _read_rows(
            path, header_line, len(header), dtype=object, na_filter=False, skip_blank_lines=False
        )
    except pd.errors.EmptyDataError:
        raw = pd.DataFrame(columns=list(range(len(header))))
    except pd.errors.ParserWarning:
        raise InputError(
            path,
            f"the first row has more fields than the header's {len(header)}",
            "Every row must have the same number of tab-separated fields as the header.",
            where=f"line {header_line + 1}",
        ) from None
    except pd.errors.ParserError as e:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
        if m:
            problem = f"{m.group(3)} fields where the header has {m.group(1)}"
            where = f"line {m.group(2)}"  # pandas counts skipped rows too: a file line
        else:
            problem, where = f"cannot parse the table ({str(e).strip()})", None
        raise InputError(
            path,
            problem,
            "Every row must have the same number of tab-separated fields as the header.",
            where=where,
        ) from None
    if raw.shape[0] == 0:
        raise InputError(
            path, f"no rows below the header (expected one row per {what_rows[:-1]})", "The matrix is empty."
        )
    # Drop blank lines (all fields empty) but remember original line numbers.
    line_no = np.arange(raw.shape[0]) + header_line + 1
    first_empty = raw.iloc[:, 0].fillna("").astype(str).str.strip() == ""
    rest = raw.iloc[:, 1:]
    blank = (first_empty & (rest.isna() | (rest == "")).all(axis=1)).to_numpy()
    raw, line_no = raw.loc[~blank], line_no[~blank]
    if raw.shape[1] != len(header):
        raise InputError(
            path,
            f"rows have {raw.shape[1]} fields but the header has {len(header)}",
            "The header must name every column (id column(s) then one per sample), tab-separated.",
            where=f"line {header_line}",
        )
    ids = raw.iloc[:, id_col].astype(str).str.strip().tolist()
    _check_unique(
        path, ids, what_rows[:-1] if what_rows.endswith("s") else what_rows, lambda i: f"line {line_no[i]}"
    )

    values = raw.iloc[:, n_meta:]
    values.columns = samples
    shape = values.shape
    flat = pd.Series(values.to_numpy(dtype=object).ravel()).fillna("").astype(str).str.strip()
    num = pd.to_numeric(flat, errors="coerce").to_numpy(dtype=float)
    bad = (np.isnan(num) & ~flat.isin(NA_TOKENS).to_numpy()).reshape(shape)
    num = num.reshape(shape)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        val = flat.iat[r * shape[1] + c]
        problem = (
            f"empty value for sample {samples[c]!r} (row has too few fields?)"
            if val == ""
            else f"non-numeric value {val!r} for sample {samples[c]!r}"
        )
        raise InputError(
            path,
            problem,
            f"Every sample column must hold numbers (missing: NA). Is the format right? Read as {fmt!r}; "
            "set the cohort's expression_format (tsv, bed, geuvadis, gct) if auto-detection is wrong.",
            where=f"line {line_no[r]}, column {c + n_meta + 1}",
        )
    return pd.DataFrame(num, index=pd.Index(ids), columns=pd.Index(samples, dtype=object))


# -------------------------------------------------------------------- public API
def read_expression(path, fmt: str = "auto") -> pd.DataFrame:
    """Read an expression matrix: genes × samples (float), index ``gene_id``.

    `fmt` is one of `EXPRESSION_FORMATS`. Gene ids keep their version suffix as in
    the file. Raises `InputError` (with file and line) on non-numeric values,
    duplicate gene or sample ids, ragged rows or an empty matrix.
    """
    path = _check_exists(path)
    if fmt not in EXPRESSION_FORMATS:
        raise InputError(
            path,
            f"unknown expression format {fmt!r}",
            f"Use one of: {', '.join(EXPRESSION_FORMATS)}.",
        )
    if fmt == "auto":
        fmt = detect_expression_format(path)
        log.info("%s: expression format detected as %r", path, fmt)
    if fmt == "tsv":
        df = _read_numeric_table(path, header_line=1, n_meta=1, id_col=0, what_rows="genes", fmt=fmt)
    elif fmt == "bed":
        head = _first_lines(path, 1)[0].split("\t")
        if len(head) < 5 or head[1].strip().lower() != "start" or head[2].strip().lower() != "end":
            raise InputError(
                path,
                "not a phenotype BED header (expected '#chr start end phenotype_id' then samples)",
                "Fix the header or set expression_format to tsv/geuvadis/gct.",
                where="line 1",
            )
        df = _read_numeric_table(path, header_line=1, n_meta=4, id_col=3, what_rows="genes", fmt=fmt)
    elif fmt == "geuvadis":
        df = _read_numeric_table(path, header_line=1, n_meta=4, id_col=0, what_rows="genes", fmt=fmt)
    else:  # gct: line 1 version, line 2 dimensions, line 3 header (Name, Description, samples)
        df = _read_numeric_table(path, header_line=3, n_meta=2, id_col=0, what_rows="genes", fmt=fmt)
    df.index.name = "gene_id"
    df.columns.name = None
    return df


def read_covariates(path) -> pd.DataFrame:
    """Read a tensorQTL-style covariates file: covariates × samples, first column id.

    Values must be numeric (encode categorical covariates such as sex as 0/1 or
    one-hot columns). Index named ``id``.
    """
    path = _check_exists(path)
    df = _read_numeric_table(
        path, header_line=1, n_meta=1, id_col=0, what_rows="covariates", fmt="covariates"
    )
    if df.isna().any().any():
        r, c = np.argwhere(df.isna().to_numpy())[0]
        raise InputError(
            path,
            f"missing covariate {df.index[r]!r} for sample {df.columns[c]!r}",
            "Covariates cannot be missing: impute them or drop the sample.",
        )
    df.index.name = "id"
    return df


def read_sample_list(path) -> list[str]:
    """Read one sample id per line (first whitespace-separated field); blank lines and
    lines starting with ``#`` are ignored. Duplicates raise `InputError`."""
    path = _check_exists(path)
    ids, lines = [], []
    with open_text(path) as fh:
        for n, line in enumerate(fh, start=1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            ids.append(s.split()[0])
            lines.append(n)
    if not ids:
        raise InputError(path, "no sample ids in the file", "List one sample id per line.")
    _check_unique(path, ids, "sample id", lambda i: f"line {lines[i]}")
    return ids
