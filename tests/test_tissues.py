"""Tissues (issue 21): one predict/ISM run serves every tissue's tracks, the tissue config,
the shared split stratified by tissues and sex, and the across-tissue tables.

Independent answers: a predict or ISM run with only the tissue's tracks (the same model,
the same sequences), pandas' own regex matching on Enformer's real targets table, recounts
of the split by hand, and planted effects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hapexp.config.units import cohort_units, split_unit, track_groups, unit_config, units
from hapexp.engine.predict import aggregate_predictions, predict_chunk, track_groups_table
from hapexp.engine.predictor import Predictor
from hapexp.errors import InputError
from tests.test_inference import TINY, FakeIndex

pytestmark = pytest.mark.usefixtures("torch_one_thread")

# Enformer's 5,313 human tracks (the repo's copy of ../shared/data/enformer_targets_human.tsv)
TARGETS = Path(__file__).resolve().parents[1] / "resources" / "enformer_targets_human.tsv"


def test_units_and_unit_config():
    cohorts = {
        "one": {"vcf": "a.vcf.gz", "expression": "e.tsv", "covariates": "c.tsv"},
        "gtex": {"vcf": "g.vcf.gz", "chromosomes": ["1"], "tissues": {
            "Liver": {"expression": "liver.bed.gz", "covariates": "liver.cov", "tracks": {"m": [3]}},
            "Lung": {"expression": "lung.bed.gz"}}},
    }  # fmt: skip
    assert units(cohorts) == ["one", "gtex/Liver", "gtex/Lung"]
    assert cohort_units(cohorts, "gtex") == ["gtex/Liver", "gtex/Lung"]
    assert split_unit("gtex/Lung") == ("gtex", "Lung") and split_unit("one") == ("one", None)
    assert unit_config(cohorts, "one") is cohorts["one"]  # a one-expression cohort as it is
    lung = unit_config(cohorts, "gtex/Lung")
    assert lung["vcf"] == "g.vcf.gz" and lung["chromosomes"] == ["1"] and lung["expression"] == "lung.bed.gz"
    assert "covariates" not in lung and lung["expression_format"] == "auto" and lung["tissue"] == "Lung"
    assert track_groups(cohorts["gtex"], "m") == {"Liver": [3], "Lung": None}
    assert track_groups(cohorts["one"], "m") is None


def test_config_checks_name_the_tissue(tmp_path):
    from hapexp.config.check import check_config

    base = {
        "reference": {"fasta": "r.fa"},
        "genes": {"table": "g.tsv"},
        "models": {"m": {"kind": "enformer_tiny", "window": 2048}},
    }
    with pytest.raises(InputError, match="tissues.predict: a tissue cannot be named"):
        check_config({**base, "cohorts": {"c": {"vcf": "v", "tissues": {"predict": {"expression": "e"}}}}})
    with pytest.raises(InputError, match=r"tissues.a.tracks: 'enformer' is not a model"):
        check_config({**base, "cohorts": {"c": {"vcf": "v", "tissues": {
            "a": {"expression": "e", "tracks": {"enformer": [0]}}}}}})  # fmt: skip
    with pytest.raises(InputError, match="cohorts.c"):  # expression and tissues: one or the other
        check_config({**base, "cohorts": {"c": {"vcf": "v", "expression": "e", "tissues": {"a": {"expression": "e"}}}}})
    check_config({**base, "cohorts": {"c": {"vcf": "v", "tissues": {"a": {"expression": "e", "tracks": {"m": [1]}}}}}})


def test_regex_track_filter_on_enformers_real_targets_table():
    from hapexp.models.tracks import resolve_tracks, track_table

    t = pd.read_csv(TARGETS, sep="\t")
    tab = track_table(t["identifier"], t["description"], 128)
    names, ids = tab["description"].tolist(), tab["identifier"].tolist()
    got = resolve_tracks([{"description": {"regex": "^CAGE:.*liver"}}], names, ids, table=tab)
    want = t.index[t["description"].str.contains("^CAGE:.*liver", regex=True)].tolist()
    assert got == want and len(want) >= 2
    # combined with an exact column filter (AND), as GTEx tissue → track tables need
    got = resolve_tracks([{"assay": "dnase", "description": {"regex": "[Ll]ung"}}], names, ids, table=tab)
    want = t.index[t["description"].str.startswith("DNASE:") & t["description"].str.contains("[Ll]ung")].tolist()
    assert got == want and want
    assert resolve_tracks(["CAGE:B lymphoblastoid cell line: GM12878 ENCODE, biol_"], names, ids, table=tab) == [5110]
    with pytest.raises(InputError, match="invalid regular expression"):
        resolve_tracks([{"description": {"regex": "CAGE:("}}], names, ids, table=tab)
    with pytest.raises(InputError, match="no track matches"):
        resolve_tracks([{"description": {"regex": "^no such assay"}}], names, ids, table=tab)


@pytest.fixture(scope="module")
def index():
    return FakeIndex(n_genes=3, n_samples=10)


def test_one_predict_run_serves_every_tissues_tracks(index):
    """Tracks of two tissues (one shares the model's track) in one run: each tissue's matrix
    equals a run with only its tracks, byte for byte (the same forward passes; selection is
    indexing), and the model's own matrix equals a run without tissues."""
    groups = {"a": None, "b": [5, 3], "c": ["track_6"]}
    p = Predictor({**TINY, "track_groups": groups})
    assert p.track_idx == [0, 3, 5, 6]  # the model's [0, 3], then each tissue's new ones, once
    tidy, _ = predict_chunk(index, p, progress=False)
    tab = track_groups_table(p)
    for group, tracks in {"": [0, 3], "a": [0, 3], "b": [5, 3], "c": [6]}.items():
        assert tab.loc[tab["group"] == group, "track"].tolist() == tracks
        alone, _ = predict_chunk(index, Predictor({**TINY, "tracks": tracks}), progress=False)
        want, want_ref = aggregate_predictions(alone, "mean")
        got, got_ref = aggregate_predictions(tidy[tidy["track"].isin(tracks)], "mean")
        assert got.to_numpy().tobytes() == want.to_numpy().tobytes(), group
        assert got_ref.to_numpy().tobytes() == want_ref.to_numpy().tobytes(), group
    # a run without tissues: one group, the model's tracks
    assert track_groups_table(Predictor(TINY))["group"].tolist() == ["", ""]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """A small simulated cohort → normalized BCF → haplotype index."""
    from tests.simulated_cohort import simulated_index

    d = tmp_path_factory.mktemp("tissues")
    return simulated_index(d, 5, n_individuals=12, n_chromosomes=1, chromosome_length=40000, n_genes=3)


def test_one_ism_run_scores_every_tissues_tracks(cohort):
    """ISM with two tissues' tracks: `score` is the model's tracks, `score:<tissue>` each
    tissue's, and each equals an ISM run with only those tracks (reference reuse on)."""
    from hapexp.engine import ism

    spec = {**TINY, "precision": "fp32", "track_groups": {"a": [1], "b": [2, 7]}}
    cfg = {"maf": 0.0, "indels": True}
    df = ism.score_chunk(cohort, ism.make_readout(spec), spec, cfg)
    assert list(df.columns) == ism.ISM_COLUMNS + ["score:a", "score:b"] and len(df) >= 10
    for col, tracks in {"score": [0, 3], "score:a": [1], "score:b": [2, 7]}.items():
        one = {**TINY, "precision": "fp32", "tracks": tracks}
        alone = ism.score_chunk(cohort, ism.make_readout(one), one, cfg)
        assert alone["variant_id"].tolist() == df["variant_id"].tolist()
        np.testing.assert_allclose(df[col], alone["score"], rtol=1e-5, atol=1e-7, err_msg=col)
        tissue = col.partition(":")[2]
        if tissue:
            np.testing.assert_array_equal(ism.tissue_scores(df, tissue)["score"], df[col])
    # the tissues' scores differ from each other (different tracks, not a copy)
    assert not np.allclose(df["score:a"], df["score:b"], equal_nan=True)


def test_split_shared_across_tissues_and_stratified(tmp_path):
    """Two tissues (the second lacks a quarter of the people) and sex: one split; every
    stratum (tissues × sex) keeps its share of test people (±1); tissues.tsv recounted."""
    from hapexp.io import write_matrix
    from hapexp.training.splits import run_splits

    rng = np.random.default_rng(0)
    people = [f"P{i:03d}" for i in range(200)]
    lacks_b = set(rng.choice(people, 50, replace=False))
    sex = pd.DataFrame({"sample": people, "sex": rng.choice(["female", "male"], 200, p=[0.3, 0.7])})
    sheet = tmp_path / "samples.tsv"
    sex.to_csv(sheet, sep="\t", index=False)
    genes = pd.DataFrame({"gene_id": [f"G{i}" for i in range(8)], "chrom": ["1"] * 4 + ["2"] * 4,
                          "tss": np.arange(8) * 1000 + 1, "strand": "+"})  # fmt: skip
    genes.to_csv(tmp_path / "genes.tsv", sep="\t", index=False)
    a = pd.DataFrame(rng.normal(size=(6, 200)), index=[f"G{i}" for i in range(6)], columns=people)
    b_people = [p for p in people if p not in lacks_b]
    b = pd.DataFrame(rng.normal(size=(5, 150)), index=[f"G{i}" for i in range(3, 8)], columns=b_people)
    write_matrix(a, tmp_path / "a.tsv")
    write_matrix(b, tmp_path / "b.tsv")
    cfg = {"seed": 3, "test_fraction": 0.25, "validation_fraction": 0.15, "sample_sheet": str(sheet),
           "sex_column": "sex", "min_test_people": 40}  # fmt: skip
    out = {k: tmp_path / f"{k}.tsv" for k in ("individuals", "genes_split", "tissues_out")}
    run_splits(tmp_path / "genes.tsv", [tmp_path / "a.tsv", tmp_path / "b.tsv"], **out, cfg=cfg,
               tissues=["a", "b"])  # fmt: skip
    ind = pd.read_csv(out["individuals"], sep="\t")
    assert ind["sample"].tolist() == people  # the union of the tissues' people, once each
    assert set(pd.read_csv(out["genes_split"], sep="\t")["gene_id"]) == {f"G{i}" for i in range(8)}
    strata = pd.Series([("a" if p in lacks_b else "a+b") + "|" + s for p, s in zip(people, sex["sex"], strict=True)],
                       index=people)  # fmt: skip
    split = ind.set_index("sample")["split"]
    for s in strata.unique():
        members = strata.index[strata == s]
        n_test = int((split[members] == "test").sum())
        assert abs(n_test - 0.25 * len(members)) <= 1, (s, n_test, len(members))
        n_val = int((split[members] == "validation").sum())
        assert abs(n_val - 0.15 * 200 * len(members) / 200) <= 1.5, (s, n_val, len(members))
    tab = pd.read_csv(out["tissues_out"], sep="\t")
    for tissue, members in {"a": people, "b": b_people}.items():
        row = tab.set_index("tissue").loc[tissue]
        counts = split[members].value_counts()
        assert (row["people"], row["train"], row["validation"], row["test"]) == (
            len(members), counts["train"], counts["validation"], counts["test"])  # fmt: skip
        assert bool(row["scored"]) == (counts["test"] >= 40)
    assert tab.set_index("tissue").loc["a", "scored"] and not tab.set_index("tissue").loc["b", "scored"]


def test_own_vs_other_tracks_test_is_uniform_on_null_genes():
    """Null check of matched.tsv's Williams' t: expression independent of both read-outs
    (which correlate with each other, r ≈ 0.5, as two tracks of one model do) — p < 0.05 within
    the binomial 99 % bounds overall and in each direction (own better / other better), KS
    not rejected (tests.null_genes.assert_calibrated)."""
    from hapexp.verdict.tissues import matched_table
    from tests.null_genes import assert_calibrated

    rng = np.random.default_rng(7)
    people, genes = [f"P{i}" for i in range(100)], [f"G{i}" for i in range(2000)]
    shared = rng.normal(size=(2000, 100))
    track = {t: pd.DataFrame(shared + rng.normal(size=(2000, 100)), index=genes, columns=people) for t in "ab"}
    expr = {"a": pd.DataFrame(rng.normal(size=(2000, 100)), index=genes, columns=people)}
    cov = {"a": pd.DataFrame(rng.normal(size=(3, 100)), index=["c1", "c2", "c3"], columns=people)}
    _, per_gene = matched_table(expr, cov, {"m": track}, fdr=0.05)
    assert len(per_gene) == 2000
    assert_calibrated("own vs other tracks", per_gene["p"], per_gene["r_matched"] - per_gene["r_mismatched"])


def test_matched_tracks_beat_mismatched_on_a_planted_tissue_signal():
    """Expression of tissue t = the model's track t + noise: each tissue's own read-out wins
    per gene (Williams' t), the other's does not; and the table's sign convention."""
    from hapexp.verdict.tissues import matched_table, tissue_table

    rng = np.random.default_rng(1)
    people, genes = [f"P{i}" for i in range(120)], [f"G{i}" for i in range(40)]
    track = {t: pd.DataFrame(rng.normal(size=(40, 120)), index=genes, columns=people) for t in ("a", "b")}
    expr = {t: track[t] * 0.6 + rng.normal(size=(40, 120)) for t in ("a", "b")}
    cov = {t: pd.DataFrame(rng.normal(size=(2, 120)), index=["c1", "c2"], columns=people) for t in ("a", "b")}
    summary, per_gene = matched_table(expr, cov, {"m": track}, fdr=0.05)
    assert summary[["tissue", "tracks_of"]].values.tolist() == [["a", "b"], ["b", "a"]]
    for _, r in summary.iterrows():
        assert r["mean_r_matched"] > 0.35 and abs(r["mean_r_mismatched"]) < 0.1
        assert r["n_matched_better"] >= 30 and r["n_mismatched_better"] == 0
    # per-gene r's are the partial correlations on the covariates (statsmodels OLS residuals)
    import statsmodels.api as sm

    g = per_gene.iloc[0]
    X = sm.add_constant(cov[g["tissue"]].T.to_numpy())
    e = sm.OLS(expr[g["tissue"]].loc[g["gene_id"]].to_numpy(), X).fit().resid
    m = sm.OLS(track[g["tissue"]].loc[g["gene_id"]].to_numpy(), X).fit().resid
    assert g["r_matched"] == pytest.approx(np.corrcoef(e, m)[0, 1], abs=1e-10)
    # tissue_table: 'common' = genes in every tissue's shared set, BH over them
    perf = {
        "a": pd.DataFrame({"gene_id": ["G1", "G2", "G3"], "predictor": "m", "n": 100, "pearson_r": [0.5, -0.3, 0.1],
                           "pearson_p": [1e-6, 0.002, 0.3], "fdr_shared": [3e-6, 0.003, 0.3],
                           "in_shared_set": True}),
        "b": pd.DataFrame({"gene_id": ["G2", "G3", "G4"], "predictor": "m", "n": 80, "pearson_r": [0.2, 0.4, 0.0],
                           "pearson_p": [0.04, 1e-4, 0.9], "fdr_shared": [0.06, 3e-4, 0.9],
                           "in_shared_set": True}),
    }  # fmt: skip
    tab = tissue_table(perf, 0.05).set_index(["tissue", "gene_set"])
    assert tab.loc[("a", "shared"), "n_sig_positive"] == 1 and tab.loc[("a", "shared"), "n_sig_negative"] == 1
    assert tab.loc[("a", "common"), "genes_tested"] == 2  # G2, G3
    assert tab.loc[("a", "common"), "mean_r"] == pytest.approx(-0.1)
    # BH over G2, G3 in b: p 0.04, 1e-4 → q 0.04, 2e-4: both significant, positive
    assert tab.loc[("b", "common"), "n_sig_positive"] == 2 and tab.loc[("b", "common"), "people"] == 80
