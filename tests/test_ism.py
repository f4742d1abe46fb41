"""ISM scoring on a fake haplotype index with an additive position-weight read-out,
where the exact answer is known: score = w[i, alt] - w[i, ref]."""

import numpy as np
import pandas as pd
import pytest

from hapexp.engine import ism

L = 64
COMP = bytes.maketrans(b"ACGTN", b"TGCAN")
CODE = {ord("A"): 0, ord("C"): 1, ord("G"): 2, ord("T"): 3}


class FakeIndex:
    """Minimal HaplotypeIndex stand-in following the contract (1-based pos and tss)."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.chrom_seq = rng.choice(list(b"ACGT"), size=1000).astype(np.uint8)
        self.genes = pd.DataFrame(
            {
                "gene_id": ["GP", "GM"],
                "name": ["p", "m"],
                "chrom": "chr1",
                "tss": [300, 700],
                "strand": ["+", "-"],
            }
        )
        rows = []
        for gid, tss in (("GP", 300), ("GM", 700)):
            for k, off in enumerate([-20, -3, 0, 5, 17]):
                pos = tss + off
                ref = chr(self.chrom_seq[pos - 1])
                alt = {"A": "G", "C": "T", "G": "A", "T": "C"}[ref]
                rows.append((gid, pos, ref, alt, [0.3, 0.5, 0.005, 0.9, 0.2][k], True))
            rows.append((gid, tss + 9, "A", "AT", 0.4, False))  # an indel
        self.var = pd.DataFrame(rows, columns=["gene_id", "pos", "ref", "alt", "af", "is_snv"])
        self.var["chrom"] = "chr1"
        self.var["variant_id"] = [
            f"chr1_{p}_{r}_{a}" for p, r, a in zip(self.var.pos, self.var.ref, self.var.alt, strict=True)
        ]
        self.n_reference_rows = 0

    def _start0(self, gene_id):
        g = self.genes.set_index("gene_id").loc[gene_id]
        tss0 = int(g["tss"]) - 1
        return (tss0 - L // 2) if g["strand"] == "+" else (tss0 - L // 2 + 1), g["strand"]

    def variants(self, gene_id, length):
        return self.var[self.var.gene_id == gene_id].drop(columns="gene_id").reset_index(drop=True)

    def _orient(self, seq, strand, rc_minus):
        if strand == "-" and rc_minus:
            return np.frombuffer(seq.tobytes().translate(COMP)[::-1], dtype=np.uint8).copy()
        return seq

    def reference_window(self, gene_id, length, rc_minus):
        s0, strand = self._start0(gene_id)
        return self._orient(self.chrom_seq[s0 : s0 + length].copy(), strand, rc_minus), length // 2

    def gene_haplotypes(self, gene_id, length, rc_minus):
        raise AssertionError("ISM must not render personal haplotypes")

    def single_variant_sequences(self, gene_id, length, variant_ids, rc_minus=True):
        s0, strand = self._start0(gene_id)
        v = self.var.set_index("variant_id")
        out = []
        for vid in variant_ids:
            assert v.loc[vid, "is_snv"], "fake index only substitutes SNVs"
            seq = self.chrom_seq[s0 : s0 + length].copy()
            seq[v.loc[vid, "pos"] - 1 - s0] = ord(v.loc[vid, "alt"])
            out.append(self._orient(seq, strand, rc_minus))
        return np.stack(out)


def additive_readout(weights, index=None):
    def fn(seqs, tss_index):
        assert tss_index == L // 2
        idx = np.vectorize(CODE.get)(seqs)
        val = weights[np.arange(seqs.shape[1])[None, :], idx].sum(axis=1)
        if index is not None:
            ref = index.reference_window("GP", L, True)[0]
            index.n_reference_rows += int((seqs == ref).all(axis=1).sum())
        return val + 10.0  # positive, for the log2 option

    return fn


def expected_score(index, weights, row, gene, rc_minus=True):
    s0, strand = index._start0(gene)
    i = row.pos - 1 - s0
    ref, alt = row.ref, row.alt
    if strand == "-" and rc_minus:
        i = L - 1 - i
        ref, alt = ref.translate(str.maketrans("ACGT", "TGCA")), alt.translate(str.maketrans("ACGT", "TGCA"))
    return weights[i, CODE[ord(alt)]] - weights[i, CODE[ord(ref)]]


@pytest.fixture
def setup():
    index = FakeIndex()
    weights = np.random.default_rng(1).normal(size=(L, 4))
    return index, weights


def test_scores_exact_with_filters_and_strand(setup):
    index, weights = setup
    spec = {"window": L, "rc_minus": True}
    df = ism.score_chunk(index, additive_readout(weights), spec, {"maf": 0.01, "indels": False})
    assert list(df.columns) == ism.ISM_COLUMNS
    # MAF 0.005 variant dropped; AF 0.9 kept (MAF 0.1); indel dropped.
    assert len(df) == 8
    assert not df["variant_id"].str.contains("AT").any()
    for _, row in df.iterrows():
        assert row["score"] == pytest.approx(expected_score(index, weights, row, row["gene_id"]), abs=1e-9)
    # Strand-aware distances: + gene pos - tss; - gene tss - pos.
    gp = df[df.gene_id == "GP"].set_index("pos")
    gm = df[df.gene_id == "GM"].set_index("pos")
    assert gp.loc[280, "tss_distance"] == -20 and gp.loc[317, "tss_distance"] == 17
    assert gm.loc[680, "tss_distance"] == 20 and gm.loc[717, "tss_distance"] == -17


def test_reference_scored_once_per_gene_and_blocks_do_not_change_scores(setup, monkeypatch):
    index, weights = setup
    spec = {"window": L, "rc_minus": True}
    full = ism.score_chunk(index, additive_readout(weights, index), spec, {"maf": 0.0})
    assert index.n_reference_rows == 1  # gene GP's reference, once
    monkeypatch.setattr(ism, "BLOCK", 2)
    blocked = ism.score_chunk(index, additive_readout(weights), spec, {"maf": 0.0})
    pd.testing.assert_frame_equal(full, blocked)
    assert len(full) == 10


def test_no_rc_and_log2_ratio(setup):
    index, weights = setup
    df = ism.score_chunk(index, additive_readout(weights), {"window": L, "rc_minus": False}, {"maf": 0.0})
    for _, row in df.iterrows():
        assert row["score"] == pytest.approx(
            expected_score(index, weights, row, row["gene_id"], rc_minus=False), abs=1e-9
        )
    lg = ism.score_chunk(index, additive_readout(weights), {"window": L}, {"maf": 0.0, "log2_ratio": True})
    lin = ism.score_chunk(index, additive_readout(weights), {"window": L}, {"maf": 0.0})
    # log2 ratio keeps the sign of the difference.
    assert (np.sign(lg["score"]) == np.sign(lin["score"])).all()
    assert not np.allclose(lg["score"], lin["score"])


def test_gather_and_empty(tmp_path, setup):
    from hapexp.io import write_parquet

    index, weights = setup
    df = ism.score_chunk(index, additive_readout(weights), {"window": L}, {"maf": 0.0})
    write_parquet(df.iloc[:3], tmp_path / "000.parquet")
    write_parquet(ism.empty_ism(), tmp_path / "001.parquet")
    write_parquet(df.iloc[3:], tmp_path / "002.parquet")
    got = ism.gather([tmp_path / f"00{i}.parquet" for i in range(3)])
    pd.testing.assert_frame_equal(got, df)
    assert ism.gather([tmp_path / "001.parquet"]).empty
    assert ism.score_chunk(index, additive_readout(weights), {"window": L}, {"maf": 0.6}).empty


def test_float_noise_is_unresolved_not_zero(setup):
    index, weights = setup
    base = additive_readout(weights)

    def noisy(seqs, tss_index):
        # A model insensitive to sequence: differences at fp32 rounding level only.
        out = base(seqs, tss_index)
        return out[0] + 1e-7 * np.sign(out - out[0]) * np.abs(out[0])

    df = ism.score_chunk(index, noisy, {"window": L, "precision": "fp32"}, {"maf": 0.0})
    assert len(df) == 10 and df["score"].isna().all()  # unknown, not 0 (issue 13)
    # A real effect survives the floor.
    df = ism.score_chunk(index, base, {"window": L, "precision": "fp32"}, {"maf": 0.0})
    assert df["score"].notna().all() and (df["score"] != 0).all()
