"""Atomic outputs: a failure leaves neither the output nor a temporary file behind."""

import os

import pandas as pd
import pytest

from hapexp.io import atomic_output, read_matrix, write_matrix, write_parquet


def test_atomic_output_renames_on_success(tmp_path):
    out = tmp_path / "sub" / "x.tsv"
    with atomic_output(out) as tmp:
        assert tmp.parent == out.parent and tmp.name.endswith(".tsv")
        tmp.write_text("a\n")
        assert not out.exists()
    assert out.read_text() == "a\n"
    assert os.listdir(out.parent) == ["x.tsv"]


def test_atomic_output_cleans_up_on_error(tmp_path):
    out = tmp_path / "x.parquet"
    with pytest.raises(RuntimeError), atomic_output(out) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_parquet_is_byte_identical_across_writes(tmp_path):
    df = pd.DataFrame({"gene_id": ["a", "b"], "value": [1.5, 2.0]})
    write_parquet(df, tmp_path / "1.parquet")
    write_parquet(df, tmp_path / "2.parquet")
    assert (tmp_path / "1.parquet").read_bytes() == (tmp_path / "2.parquet").read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "1.parquet"), df)


def test_matrix_round_trip(tmp_path):
    df = pd.DataFrame([[1.0, 2.0]], index=pd.Index(["g1"], name="gene_id"), columns=["s1", "s2"])
    write_matrix(df, tmp_path / "m.tsv")
    pd.testing.assert_frame_equal(read_matrix(tmp_path / "m.tsv"), df)


def test_concat_parquet_streams_and_keeps_rows(tmp_path):
    import numpy as np
    import pyarrow.parquet as pq

    from hapexp.io import concat_parquet, write_parquet

    rng = np.random.default_rng(0)
    parts = []
    for i, n in enumerate([5, 0, 7]):
        df = pd.DataFrame({"a": [f"g{i}"] * n, "b": rng.normal(size=n), "c": np.arange(n, dtype=np.int64)})
        write_parquet(df if n else df.iloc[:0], tmp_path / f"p{i}.parquet")
        parts.append(df)
    out = tmp_path / "all.parquet"
    assert concat_parquet([tmp_path / f"p{i}.parquet" for i in range(3)], out, ["a", "b", "c"]) == 12
    got = pd.read_parquet(out)
    pd.testing.assert_frame_equal(got, pd.concat(parts, ignore_index=True), check_dtype=False)
    assert pq.ParquetFile(out).metadata.num_row_groups == 2  # one per non-empty input
    concat_parquet([tmp_path / "p1.parquet"], tmp_path / "none.parquet", ["a", "b", "c"])
    assert list(pd.read_parquet(tmp_path / "none.parquet").columns) == ["a", "b", "c"]


def test_concat_tsv_is_the_bytes_of_one_write(tmp_path):
    """Chunks written by write_matrix and concatenated line by line are the bytes that one
    write_matrix of the whole matrix writes (floats formatted value by value: shortest
    round-trip repr, NaN empty); an empty chunk adds nothing; a header mismatch is refused."""
    import numpy as np

    from hapexp.io import concat_tsv

    rng = np.random.default_rng(0)
    values = rng.normal(size=(7, 4)) * 10.0 ** rng.integers(-20, 20, size=(7, 4))
    values[2, 1] = np.nan
    values[5] = np.nan
    df = pd.DataFrame(
        values, index=pd.Index([f"g{i}" for i in range(7)], name="gene_id"), columns=list("abcd")
    )
    parts = [df.iloc[:3], df.iloc[3:3], df.iloc[3:]]
    paths = [tmp_path / f"{i}.tsv" for i in range(len(parts))]
    for part, path in zip(parts, paths, strict=True):
        write_matrix(part, path)
    write_matrix(df, tmp_path / "whole.tsv")
    assert concat_tsv(paths, tmp_path / "cat.tsv") == 7
    assert (tmp_path / "cat.tsv").read_bytes() == (tmp_path / "whole.tsv").read_bytes()
    pd.testing.assert_frame_equal(read_matrix(tmp_path / "cat.tsv"), df)
    write_matrix(df[["a", "b"]], tmp_path / "other.tsv")
    with pytest.raises(ValueError, match="header differs"):
        concat_tsv([paths[0], tmp_path / "other.tsv"], tmp_path / "bad.tsv")
    assert not (tmp_path / "bad.tsv").exists()
