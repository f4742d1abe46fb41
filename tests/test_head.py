"""Track-combination heads (hapexp.training.heads): fitted on training people, judged on held-out people."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hapexp.engine.predict import save_all_tracks
from hapexp.training.heads import crossgene_head, per_gene_head, person_features
from hapexp.verdict.split_verdict import split_performance


def _tracks(tmp_path, n_genes=30, n_people=160, n_tracks=6, seed=0):
    """All-tracks files (two chunks) with one row per haplotype, and the rows themselves."""
    rng = np.random.default_rng(seed)
    samples = [f"S{i:03d}" for i in range(n_people)]
    genes = [f"G{i:02d}" for i in range(n_genes)]
    vals = rng.normal(size=(n_genes, n_people, 2, n_tracks)).astype(np.float32)
    paths = []
    for part, gs in enumerate([range(0, n_genes // 2), range(n_genes // 2, n_genes)]):
        gs = list(gs)
        values = np.concatenate(
            [np.concatenate([vals[g].reshape(-1, n_tracks), np.zeros((1, n_tracks))]) for g in gs]
        )
        offsets = np.arange(len(gs) + 1) * (2 * n_people + 1)
        hap = np.stack(
            [np.arange(2 * n_people).reshape(n_people, 2)[::-1] for _ in gs]
        )  # people stored reversed
        save_all_tracks(
            {"gene_ids": np.array([genes[g] for g in gs]), "samples": np.array(samples[::-1]),
             "values": values.astype(np.float32), "offsets": offsets, "hap_rows": hap.astype(np.int32),
             "ref_rows": np.full(len(gs), 2 * n_people, np.int32), "track_names": np.array([f"t{i}" for i in range(n_tracks)])},
            tmp_path / f"{part}.tracks.npz",
        )  # fmt: skip
        paths.append(tmp_path / f"{part}.tracks.npz")
    return paths, samples, genes, vals


def test_person_features_are_the_haplotype_mean(tmp_path):
    paths, samples, genes, vals = _tracks(tmp_path, n_genes=4, n_people=5)
    f = person_features(paths, samples)
    np.testing.assert_allclose(f["G01"], vals[1].astype(np.float64).mean(1), rtol=1e-12)
    np.testing.assert_allclose(
        person_features(paths, samples, "sum")["G03"], vals[3].astype(np.float64).sum(1)
    )
    save_all_tracks(None, tmp_path / "off.npz")
    with pytest.raises(ValueError, match="store_all_tracks"):
        person_features([tmp_path / "off.npz"], samples)


def test_heads_learn_a_shared_track_and_null_genes_centre_on_zero(tmp_path):
    paths, samples, genes, vals = _tracks(tmp_path)
    rng = np.random.default_rng(1)
    feats = person_features(paths, samples)
    # the first 20 genes: expression = track 2 (+ noise); the last 10: noise only (null)
    expr = pd.DataFrame(rng.normal(size=(len(genes), len(samples))), index=genes, columns=samples)
    for g in genes[:20]:
        expr.loc[g] += 1.5 * feats[g][:, 2]
    perm = list(rng.permutation(samples))
    people = {"train": perm[:100], "validation": [], "test": perm[100:]}
    train_genes = genes[:10]
    split = pd.DataFrame(
        {"gene_id": genes, "split": ["train" if g in train_genes else "test" for g in genes]}
    )
    per_gene = per_gene_head(feats, expr, people["train"], alpha=0.5, inner_folds=5, seed=1)
    cross, w = crossgene_head(feats, expr, people["train"], train_genes)
    assert np.argmax(np.abs(w)) == 2 and w[2] > 0
    perf = split_performance(expr, {"gene": per_gene, "crossgene": cross}, people, split)
    r = perf.pivot(index="gene_id", columns="predictor", values="pearson_r")
    # signal genes (r of track 2 + noise with expression ~ 0.83): both heads find them on test
    # people; the cross-gene head on the 10 held-out signal genes too (weights from training genes)
    assert r.loc[genes[10:20], "crossgene"].mean() > 0.7
    assert r.loc[genes[:20], "gene"].mean() > 0.6
    # null genes: centred on 0 (r sd ~ 1/sqrt(60) = 0.13 per gene, 10 genes)
    assert abs(r.loc[genes[20:], "crossgene"].mean()) < 3 * 0.13 / np.sqrt(10)
    assert abs(r.loc[genes[20:], "gene"].dropna().mean()) < 3 * 0.13 / np.sqrt(
        max(1, r.loc[genes[20:], "gene"].notna().sum())
    )


def _unchunked_track_heads(tracks, prepared, individuals, genes, gene_matrix, crossgene_matrix, crossgene_weights,
                           spec, cfg, threads=1):  # fmt: skip
    """The reference: rule track_heads as it was before the per-gene head was chunked (git
    2db8ab7, `run_track_heads`, verbatim but for the imports and its log line): both heads of
    every gene in one call."""
    from threadpoolctl import threadpool_limits

    from hapexp.config.schema import with_defaults
    from hapexp.io import read_matrix, write_matrix, write_tsv
    from hapexp.training.splits import read_splits

    cfg = with_defaults("heads.*", cfg)
    expr = read_matrix(prepared)
    people, gene_split = read_splits(individuals, genes)
    samples = list(expr.columns)
    with threadpool_limits(limits=max(1, int(threads))):
        feats = person_features(list(tracks), samples, spec["haplotype_aggregation"])
        names = np.load(tracks[0], allow_pickle=False)["track_names"].astype(str)
        per_gene = per_gene_head(
            feats, expr, people["train"], alpha=cfg["alpha"], inner_folds=cfg["inner_folds"], seed=cfg["seed"]
        )
        cross, w = crossgene_head(feats, expr, people["train"], gene_split["train"], cfg["ridge"])
    write_matrix(per_gene, gene_matrix)
    write_matrix(cross, crossgene_matrix)
    write_tsv(
        pd.DataFrame({"track": np.arange(len(w)), "track_name": names[: len(w)], "weight": w}),
        crossgene_weights,
    )


def test_chunked_heads_equal_the_unchunked_run_byte_for_byte(tmp_path):
    """Rule track_heads_gene per chunk + rule track_heads' gather write the same bytes as the
    rule before chunking (both heads of every gene in one job: `_unchunked_track_heads`)."""
    from hapexp.io import write_matrix, write_tsv
    from hapexp.training.heads import run_track_heads, run_track_heads_gene

    paths, samples, genes, vals = _tracks(tmp_path, n_genes=16, n_people=80)
    rng = np.random.default_rng(2)
    feats = person_features(paths, samples)
    # track 1 drives the even genes; one gene without expression (skipped by both heads)
    expr = pd.DataFrame(rng.normal(size=(len(genes), len(samples))), index=genes, columns=samples)
    for g in genes[::2]:
        expr.loc[g] += 1.5 * feats[g][:, 1]
    write_matrix(expr.drop(genes[5]), tmp_path / "prepared.tsv")
    perm = rng.permutation(samples)
    split = ["train"] * 50 + ["validation"] * 10 + ["test"] * 20
    write_tsv(pd.DataFrame({"sample": perm, "group": "", "split": split}), tmp_path / "individuals.tsv")
    write_tsv(pd.DataFrame({"gene_id": genes, "chrom": "1", "split": ["train", "test"] * 8, "unit": "gene"}),
              tmp_path / "genes.tsv")  # fmt: skip
    common = dict(prepared=tmp_path / "prepared.tsv", individuals=tmp_path / "individuals.tsv",
                  genes=tmp_path / "genes.tsv", spec={"haplotype_aggregation": "mean"}, cfg={"inner_folds": 4})  # fmt: skip
    names = ("gene_matrix", "crossgene_matrix", "crossgene_weights")
    ref = {k: tmp_path / f"ref.{k}.tsv" for k in names}
    _unchunked_track_heads(paths, **ref, **common)
    parts = [tmp_path / f"{p.stem}.gene.tsv" for p in paths]
    for npz, part in zip(paths, parts, strict=True):
        run_track_heads_gene(npz, gene_matrix=part, **common)
    out = {k: tmp_path / f"chunked.{k}.tsv" for k in names}
    run_track_heads(paths, parts, **out, **common)
    for k in names:
        assert out[k].read_bytes() == ref[k].read_bytes(), k
    # not trivial: each chunk's genes (but the unexpressed one), the driven genes predicted
    got = pd.read_csv(out["gene_matrix"], sep="\t", index_col=0)
    assert list(got.index) == [g for g in genes if g != genes[5]]
    assert [len(pd.read_csv(p, sep="\t")) for p in parts] == [7, 8]
    r = [np.corrcoef(got.loc[g], expr.loc[g])[0, 1] for g in genes[::2]]
    assert np.mean(r) > 0.5
