"""Atomic, deterministic file output and the shared table readers.

Every output of the workflow goes through `atomic_output`: a job killed half-way
leaves only a hidden temporary file (removed on error), never a truncated output
that a rerun would mistake for a finished one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import pandas as pd


@contextlib.contextmanager
def atomic_output(path, suffix: str | None = None):
    """Yield a temporary path next to `path`; rename it to `path` on success.

    The temporary name keeps `path`'s suffix (or `suffix`) so that libraries that
    infer the format from the extension (pandas, pyarrow, sqlite) behave.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix if suffix is not None else "".join(path.suffixes)
    # A job killed earlier (SIGKILL, node failure) may have left its temporary
    # file; only one job writes a given output, so these are safe to remove.
    for stale in path.parent.glob(f".{path.name}.*.tmp*"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    # mkstemp creates 0600; give outputs the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_tsv(df: pd.DataFrame, path, index: bool = False, float_format: str | None = None) -> None:
    """Write a TSV atomically. Floats default to the shortest repr that round-trips
    exactly, which is also deterministic (byte-identical reruns)."""
    with atomic_output(path) as tmp:
        df.to_csv(tmp, sep="\t", index=index, float_format=float_format, lineterminator="\n")


def write_parquet(df: pd.DataFrame, path) -> None:
    """Write parquet atomically and deterministically (no pandas index, no timestamps)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    # pandas metadata embeds library versions, not times; drop it anyway so a
    # file depends only on its data.
    table = table.replace_schema_metadata(None)
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=False)


def concat_parquet(paths, path, columns: list[str]) -> int:
    """Concatenate parquet files (same columns) into `path` one file at a time: memory
    holds one input, not the whole result (a cohort's nominal eQTL pairs run to
    hundreds of millions of rows). Deterministic like `write_parquet`. Returns rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = [str(p) for p in paths]
    # column types from the first file with rows (an empty chunk's columns may be untyped)
    first = next((p for p in paths if pq.ParquetFile(p).metadata.num_rows), None)
    n = 0
    with atomic_output(path) as tmp:
        if first is None:
            pq.write_table(pa.table({c: pa.array([], pa.null()) for c in columns}), tmp, compression="zstd")
            return 0
        full = pq.read_schema(first)
        schema = pa.schema([full.field(c) for c in columns])
        with pq.ParquetWriter(tmp, schema, compression="zstd", write_statistics=False) as writer:
            for p in paths:
                t = pq.read_table(p, columns=columns)
                if t.num_rows:
                    writer.write_table(t.select(columns).cast(schema))
                    n += t.num_rows
    return n


def read_parquet_rows(path, column: str, values) -> pd.DataFrame:
    """The rows of a parquet file whose `column` is one of `values` (e.g. one chunk's genes
    of a cohort-wide table), in file order: read batch by batch, so memory holds the rows
    kept, not the file. The same frame as `pd.read_parquet(path)` filtered on `column`."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(str(path))
    schema = pf.schema_arrow
    keep = pa.array(list(values), type=schema.field(column).type)
    parts = [b.filter(pc.is_in(b.column(column), value_set=keep)) for b in pf.iter_batches()]
    return pa.Table.from_batches(parts, schema=schema).to_pandas()


def concat_tsv(paths, path) -> int:
    """Concatenate TSVs with one header (the per-chunk tables of a gather, written by
    `write_tsv`/`write_matrix`) into `path`, one file at a time and line by line: the rows
    are copied, never parsed and re-formatted, so the result is byte for byte what one
    `write_tsv` of the concatenated table writes (floats are formatted value by value). Every
    file must have the same header. Returns the number of rows."""
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError(f"{path}: no tables to concatenate")
    n, header = 0, None
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as out:
        for p in paths:
            with open(p, newline="") as fh:
                first = fh.readline()
                if header is None:
                    header = first
                    out.write(first)
                elif first != header:
                    raise ValueError(f"{p}: its header differs from {paths[0]}'s; cannot concatenate")
                for line in fh:
                    out.write(line)
                    n += 1
    return n


def read_matrix(path, index_col: str = "gene_id") -> pd.DataFrame:
    """Read a features × samples TSV whose first column holds the feature ids."""
    df = pd.read_csv(path, sep="\t", index_col=0)
    df = df.astype(float)
    df.index = df.index.astype(str)
    df.index.name = index_col
    df.columns = df.columns.astype(str)
    return df


def write_matrix(df: pd.DataFrame, path, index_col: str = "gene_id") -> None:
    """Write a features × samples matrix with the ids as first column."""
    out = df.copy()
    out.index.name = index_col
    write_tsv(out, path, index=True)
