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
