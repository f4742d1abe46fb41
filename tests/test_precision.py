"""Precision budget (hapexp.engine.precision) and its audit (hapexp.engine.audit: predict and ism).

Independent answers: (1) a model with *planted* reduced-precision noise — its output
is a known function of the sequence, plus, only under bf16 autocast, a deterministic
pseudo-random term of known size — whose budget is recomputed here with numpy; (2) on
enformer_tiny in bf16 autocast on CPU (the CI check of the real audit), the audit's
strict and reduced runs equal separate plain fp32 and bf16 runs of the engine.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from hapexp.engine import ism, precision
from hapexp.engine.audit import audit_predict
from hapexp.engine.predict import predict_chunk
from hapexp.engine.predictor import Predictor
from hapexp.models.registry import LoadedModel
from tests.test_inference import FakeIndex
from tests.test_ism import FakeIndex as IsmIndex
from tests.test_ism import L as ISM_L

pytestmark = pytest.mark.usefixtures("torch_one_thread")

CODES = np.frombuffer(b"ACGT", np.uint8)


def _planted_noise_np(seqs: np.ndarray) -> np.ndarray:
    """Deterministic pseudo-noise in [-1, 1] per sequence (numpy twin of the model's)."""
    w = np.sin(np.arange(seqs.shape[1]) * 0.37)
    idx = np.stack([(seqs == c) for c in CODES], -1).astype(np.float64) @ np.arange(1, 5)
    return np.sin(idx @ w * 12.9898)


def _weights(n):
    return np.sin(np.arange(n * 4) * 0.61).reshape(n, 4)


class Planted(torch.nn.Module):
    """Every bin: track 0 = Σ weight × one-hot over the window (every SNV moves it), track 1
    = count of A per bin; plus sigma × noise(seq) on every output, only when bf16
    autocast is on (what reduced precision adds)."""

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = sigma

    def forward(self, x):
        b, n, _ = x.shape
        w = torch.from_numpy(_weights(n))
        glob = (x.double() * w).sum((1, 2))[:, None].expand(-1, n // 128)
        out = torch.stack([glob, x.reshape(b, n // 128, 128, 4).sum(2)[..., 0].double()], -1)
        if torch.is_autocast_enabled("cpu"):
            w = torch.sin(torch.arange(n, dtype=torch.float64) * 0.37)
            idx = x.double() @ torch.arange(1, 5, dtype=torch.float64)
            out = out + self.sigma * torch.sin(idx @ w * 12.9898)[:, None, None]
        return out.float()


def _planted_predictor(sigma, precision_mode="bf16", **kw):
    model = LoadedModel(Planted(sigma), 2048, 128, 0, 2, ["A", "C"], kind="planted")
    spec = {"kind": "oracle", "window": 2048, "tracks": [0], "bins": 2, "device": "cpu",
            "precision": precision_mode, "batch_size": 8, **kw}  # fmt: skip
    return Predictor(spec, model=model)


def _expected_predict_budget(index, gene_id, sigma):
    """numpy: per-haplotype read-out (A count over the 2 central bins) and its planted noise."""
    gh = index.gene_haplotypes(gene_id, 2048)
    seqs = gh.sequences
    onehot = np.stack([(seqs == c) for c in CODES], -1).astype(float)
    a = 2 * (onehot * _weights(seqs.shape[1])).sum((1, 2))  # the 2 central bins, summed
    noise = 2 * sigma * _planted_noise_np(seqs)  # added to each of the 2 summed bins
    hap = gh.hap_map
    diff = noise[hap].ravel()
    people = a[hap].mean(1)
    return (
        diff.std(ddof=1),
        people.std(ddof=1),
        np.corrcoef(a[hap].mean(1) + noise[hap].mean(1), people)[0, 1],
    )


def test_audit_sample_is_deterministic_and_sized():
    genes = [f"G{i:04d}" for i in range(500)]
    s = precision.audit_genes(genes, 0.02, 3)
    assert len(s) == 10 and s == [g for g in genes if g in set(s)]  # 2 % of 500, in job order
    assert set(precision.audit_genes(genes[::-1], 0.02, 3)) == set(s)  # order does not matter
    # A gene is audited whatever chunk it is in when the chunk's share is the same.
    part = precision.audit_genes(genes[:250], 0.02, 3)
    assert len(part) == 5 and len(set(part) - set(s)) <= 5
    assert precision.audit_genes(genes[:2], 0.02, 3) == genes[:2]  # fewer than min_genes: all
    assert len(precision.audit_genes(genes[:20], 0.02, 3)) == 3


@pytest.mark.parametrize("sigma", [0.05, 2.0])
def test_predict_budget_recovers_planted_noise(sigma):
    index = FakeIndex(n_genes=3, n_samples=12)
    p = _planted_predictor(sigma)
    table = audit_predict(index, p, {"fraction": 1.0, "max_noise_ratio": 0.1}, model="planted")
    assert list(table.columns) == precision.COLUMNS
    assert set(table["gene_id"]) == {"G0", "G1", "G2"} and (table["precision"] == "bf16").all()
    for _, row in table.iterrows():
        noise, signal, r = _expected_predict_budget(index, row["gene_id"], sigma)
        # The engine's read-outs are float32 (|value| < 64, ulp ≤ 4e-6): that rounding is
        # the absolute tolerance of the SDs.
        assert row["noise_sd"] == pytest.approx(noise, rel=1e-5, abs=1e-5)
        assert row["signal_sd"] == pytest.approx(signal, rel=1e-5, abs=1e-5)
        assert row["noise_ratio"] == pytest.approx(noise / signal, rel=1e-4)
        assert row["r_fp32"] == pytest.approx(r, rel=1e-4)
        assert row["flagged"] == (noise / signal > 0.1)
    assert table["flagged"].all() == (sigma > 1) and (not table["flagged"].any()) == (sigma < 0.1)
    assert p.precision == "bf16"  # configured precision: used even when flagged


@pytest.mark.parametrize(("sigma", "want"), [(0.001, "bf16"), (2.0, "tf32")])
def test_auto_uses_bf16_only_when_its_budget_holds(monkeypatch, sigma, want):
    # The CUDA candidate list on CPU (TF32 is fp32 there; the planted noise is bf16's only).
    monkeypatch.setitem(precision.AUTO_CANDIDATES, "cpu", ("bf16", "tf32", "fp32"))
    index = FakeIndex(n_genes=3, n_samples=12)
    p = _planted_predictor(sigma, "auto")
    table = audit_predict(index, p, {"fraction": 1.0}, model="planted")
    assert p.precision == want
    used = table[table["used"]]
    assert (used["precision"] == want).all() and len(used) == 3
    assert not used["flagged"].any()
    if want == "tf32":  # bf16 was tried, measured and rejected; both are in the table
        assert set(table["precision"]) == {"bf16", "tf32"} and table.loc[~table["used"], "flagged"].all()
    # The run itself then uses that precision.
    tidy, _ = predict_chunk(index, p, progress=False)
    fp32, _ = predict_chunk(index, _planted_predictor(0.0, "fp32"), progress=False)
    assert np.allclose(tidy["value"], fp32["value"]) == (want == "tf32")


def test_fp32_runs_have_nothing_to_audit():
    t = audit_predict(FakeIndex(n_genes=2), _planted_predictor(1.0, "fp32"), {}, model="m")
    assert t.empty and list(t.columns) == precision.COLUMNS
    assert precision.summary_lines(t)[0].startswith("- every model ran in strict fp32")


def test_ism_noise_floor_and_nan(monkeypatch):
    """ISM audit on the planted model: the floor is z × RMS of the bf16 score errors
    relative to the reference read-out (numpy), and exactly the scores at or below it are NaN."""
    index = IsmIndex()
    sigma = 0.3

    class Weights(torch.nn.Module):
        def forward(self, x):  # (B, 64, 4) → (B, 1, 1): an additive position-weight read-out + 10
            w = torch.from_numpy(np.random.default_rng(1).normal(size=(ISM_L, 4))).float()
            out = (x * w).sum((1, 2))[:, None, None] + 10
            if torch.is_autocast_enabled("cpu"):
                out = (
                    out
                    + sigma
                    * torch.sin((x.double() @ torch.arange(1, 5.0, dtype=torch.float64)).sum(1) * 1.7)[
                        :, None, None
                    ].float()
                )
            return out

    model = LoadedModel(Weights(), ISM_L, ISM_L, 0, 1, ["t"], kind="planted")
    spec = {"kind": "oracle", "window": ISM_L, "bin_size": ISM_L, "tracks": [0], "bins": 1, "device": "cpu", "precision": "bf16",
            "batch_size": 4, "rc_minus": True}  # fmt: skip
    readout = ism.EngineReadout(spec, predictor=Predictor(spec, model=model))
    df, table = ism.score_chunk(index, readout, spec, {"maf": 0.0}, {"fraction": 1.0, "noise_floor_z": 3.0},
                                model="planted", return_audit=True)  # fmt: skip
    strict = ism.score_chunk(index, ism.EngineReadout({**spec, "precision": "fp32"},
                             predictor=Predictor({**spec, "precision": "fp32"}, model=model)), {**spec, "precision": "fp32"},
                             {"maf": 0.0})  # fmt: skip

    # numpy: per variant, the planted noise of alt and ref sequences.
    def nz(s):  # the planted bf16 noise of sequences s
        return sigma * np.sin((np.stack([(s == c) for c in CODES], -1) @ np.arange(1, 5)).sum(-1) * 1.7)

    errs, refs = [], {}
    for gid in ("GP", "GM"):
        ref_seq, _ = index.reference_window(gid, ISM_L, True)
        ids = list(index.variants(gid, ISM_L)["variant_id"])
        ids = [v for v in ids if index.var.set_index("variant_id").loc[v, "is_snv"]]
        alts = index.single_variant_sequences(gid, ISM_L, ids)
        w = np.random.default_rng(1).normal(size=(ISM_L, 4))
        ref_val = (np.stack([(ref_seq == c) for c in CODES], -1) * w).sum() + 10
        refs[gid] = ref_val
        errs.append((nz(alts) - nz(ref_seq[None])[0]) / abs(ref_val))
    e = np.concatenate(errs)
    floor = 3.0 * np.sqrt(np.mean(e**2))
    assert table["noise_floor"].iloc[0] == pytest.approx(floor, rel=1e-4)
    assert len(table) == 2 and (table["stage"] == "ism").all()
    # Exactly the scores within the floor are NaN; the others equal fp32's up to the planted noise.
    m = df.merge(strict, on=["gene_id", "variant_id"], suffixes=("", "_fp32"))
    raw = m["score_fp32"].to_numpy() + np.concatenate(errs) * np.array([refs[g] for g in m["gene_id"]])
    below = np.abs(raw) <= floor * np.array([refs[g] for g in m["gene_id"]])
    assert below.any() and (~below).any()
    assert np.array_equal(m["score"].isna().to_numpy(), below)
    np.testing.assert_allclose(m.loc[~below, "score"], raw[~below], rtol=1e-4, atol=1e-4)
    got = table.set_index("gene_id")["frac_unresolved"]
    for gid, g in m.groupby("gene_id"):
        assert got[gid] == pytest.approx(g["score"].isna().mean())


@pytest.fixture(scope="module")
def small_cohort(tmp_path_factory):
    from tests.simulated_cohort import simulated_index

    d = tmp_path_factory.mktemp("prec")
    return simulated_index(d, 11, n_individuals=30, n_chromosomes=1, chromosome_length=60000, n_genes=4)


TINY_BF16 = {"kind": "enformer_tiny", "window": 2048, "tracks": [0], "bins": 2, "device": "cpu",
             "precision": "bf16", "batch_size": 32}  # fmt: skip


def test_enformer_tiny_bf16_audit_on_cpu(small_cohort):
    """The real audit, bf16 autocast on CPU: its two passes are the plain runs of each
    precision; bf16 noise is measured (non-zero, but the predictions still track fp32)."""
    idx = small_cohort
    p = Predictor(TINY_BF16)
    table = audit_predict(idx, p, {"fraction": 0.5, "min_genes": 2}, model="tiny")
    sample = precision.audit_genes(idx.genes["gene_id"], 0.5, 2)
    assert list(table["gene_id"]) == sample and (table["precision"] == "bf16").all() and table["used"].all()
    bf16, _ = predict_chunk(idx, Predictor(TINY_BF16), genes=sample, progress=False)
    fp32, _ = predict_chunk(idx, Predictor({**TINY_BF16, "precision": "fp32"}), genes=sample, progress=False)
    want = precision.predict_budget(bf16, fp32, "mean", 0.1)
    pd.testing.assert_frame_equal(
        table[["noise_sd", "signal_sd", "r_fp32"]], want[["noise_sd", "signal_sd", "r_fp32"]]
    )
    assert (table["noise_sd"] > 0).all() and (table["signal_sd"] > 0).all()
    assert (table["r_fp32"] > 0.5).all() and (table["max_rel_diff"] < 0.1).all()
    # ISM on the same genes: scores below the measured floor are NaN, the rest agree in sign with fp32.
    spec = {**TINY_BF16, "name": "tiny"}
    df, it = ism.score_chunk(idx, ism.make_readout(spec), spec, {"maf": 0.0}, {"fraction": 0.5, "min_genes": 2},
                             model="tiny", return_audit=True)  # fmt: skip
    strict = ism.score_chunk(
        idx, ism.make_readout({**spec, "precision": "fp32"}), {**spec, "precision": "fp32"}, {"maf": 0.0}
    )
    assert set(it["gene_id"]) <= set(sample) and (it["stage"] == "ism").all()
    floor = it["noise_floor"].iloc[0]
    assert precision.STATIC_FLOOR["fp32"] < floor < 0.5
    m = df.merge(strict, on=["gene_id", "variant_id"], suffixes=("", "_fp32"))
    kept = m["score"].notna() & m["score_fp32"].notna()
    assert kept.any() and (np.sign(m.loc[kept, "score"]) == np.sign(m.loc[kept, "score_fp32"])).mean() >= 0.9
    lines = precision.summary_lines(pd.concat([table, it]))
    assert any("tiny predict in bf16" in s for s in lines) and any("unresolved (NaN)" in s for s in lines)
    flagged = precision.flagged_genes(pd.concat([table, it]), "tiny", "predict")
    assert flagged == sorted(table.loc[table["flagged"], "gene_id"])
    assert all(g in " ".join(lines) for g in flagged)


def test_auto_constancy_floor_is_the_precision_its_jobs_used():
    """The precision a `precision: auto` model used = the coarsest of its predict jobs (bf16 on
    one chunk), fp32 when every job ran strict (header-only tables); only strict fp32 has a
    floor without a table (a reduced one is measured: `constancy_floor`)."""
    from hapexp.engine.precision import empty_table, finish, model_floor, used_precision

    row = pd.DataFrame([{"gene_id": "g1", "n": 4, "noise_sd": 0.0, "signal_sd": 1.0, "noise_ratio": 0.0,
                         "flagged": False, "stage": "predict"}]).reindex(columns=precision.COLUMNS)  # fmt: skip
    bf16_job = finish([("bf16", row)], "bf16", "m")
    tf32_job = finish([("bf16", row.assign(flagged=True)), ("tf32", row)], "tf32", "m")
    both = pd.concat([tf32_job, bf16_job, empty_table()], ignore_index=True)
    assert used_precision(both, "m") == "bf16"
    assert used_precision(tf32_job, "m") == "tf32"
    assert used_precision(both, "other") == "fp32" and used_precision(empty_table(), "m") == "fp32"
    assert used_precision(both, "m", stage="ism") == "fp32"
    assert model_floor({"precision": "auto"}) is None and model_floor({"precision": "tf32"}) is None


def test_both_verdicts_resolve_auto_floors_from_the_jobs_tables(tmp_path):
    """`performance` and `split_verdict` get the same floors: a `precision: auto` model's is
    measured by its predict jobs' audits (the tables: bf16 here, rel_noise × margin), a strict
    fp32 model's is fp32's; both rules take the per-chunk tables of every model not in
    strict fp32 as input (the workflow parsed by Snakemake with such a config)."""
    import yaml

    from hapexp.engine.precision import finish
    from hapexp.verdict.performance import resolve_floors
    from tests.workflow_utils import parse_workflow

    row = pd.DataFrame([{"gene_id": "g1", "n": 4, "noise_sd": 0.0, "signal_sd": 1.0, "noise_ratio": 0.0,
                         "rel_noise": 1e-3, "flagged": False, "stage": "predict"}]).reindex(columns=precision.COLUMNS)  # fmt: skip
    finish([("bf16", row)], "bf16", "a").to_csv(tmp_path / "a.tsv", sep="\t", index=False)
    o = {"kind": "oracle", "weights": "oracle.pt", "window": 2048}
    config = {"reference": {"fasta": "ref.fa"}, "genes": {"table": "genes.tsv", "chunks": 2},
              "cohorts": {"c": {"vcf": "c.vcf.gz", "expression": "e.tsv"}},
              "models": {"a": {**o, "precision": "auto"}, "b": {**o, "precision": "fp32"}}}  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    c, u = "SimpleNamespace(cohort='c')", "SimpleNamespace(unit='c')"  # per-cohort / per-tissue rules
    got = parse_workflow(tmp_path, tmp_path / "config.yaml", {
        "floors": "MODEL_FLOORS",
        "tables": f"reduced_precision_tables({c})",
        "performance": f"performance_inputs({u})['precision']",
        "split_verdict": "rules.split_verdict.rule.input.precision.__name__",
    })  # fmt: skip
    assert got["floors"] == {"a": None, "b": 1e-6}
    preds = {"a": pd.DataFrame(index=["g1", "g2"]), "b": pd.DataFrame(index=["g1"])}
    floors = resolve_floors(got["floors"], [tmp_path / "a.tsv"], preds, 3.0)
    want = 1e-3 * np.exp(3.0 * np.sqrt(1 / (2 * 3)))  # 4 haplotypes audited, no people given
    assert floors["b"] == 1e-6 and floors["a"].to_dict() == pytest.approx({"g1": want, "g2": want})
    tables = ["results/c/predict/a/000.precision.tsv", "results/c/predict/a/001.precision.tsv"]
    assert got["tables"] == tables and got["performance"] == tables
    assert got["split_verdict"] == "reduced_precision_tables"


class Sensitive(torch.nn.Module):
    """Every bin: 100 + eps × Σ weight × one-hot over the window's first half (variants in
    the second half do not move it: an insensitive gene there), plus, only under bf16
    autocast, sigma × a deterministic pseudo-random term of the whole sequence (rounding
    that follows genotype)."""

    def __init__(self, eps: float, sigma: float):
        super().__init__()
        self.eps, self.sigma = eps, sigma

    def forward(self, x):
        b, n, _ = x.shape
        w = torch.from_numpy(_weights(n))
        w[n // 2 :] = 0
        level = 100 + self.eps * (x.double() * w).sum((1, 2))
        if torch.is_autocast_enabled("cpu"):
            ws = torch.sin(torch.arange(n, dtype=torch.float64) * 0.37)
            level = level + self.sigma * torch.sin(
                (x.double() @ torch.arange(1, 5.0, dtype=torch.float64)) @ ws * 12.9898
            )
        return level[:, None, None].expand(b, n // 128, 1).float()


class HalfIndex(FakeIndex):
    """FakeIndex whose gene G0 has its SNVs in the window's first half (the model reads
    them: a small real spread) and G1 in its second half (the model is blind to them)."""

    def __init__(self, n_samples=40, length=2048, seed=3):
        super().__init__(n_genes=2, n_samples=n_samples, length=length, seed=seed)
        rng = np.random.default_rng(seed)
        for gid, lo in (("G0", length // 2 - 400), ("G1", length // 2 + 10)):
            ref = self._data[gid][2]
            pos = rng.choice(np.arange(lo, lo + 300), 6, replace=False)
            alt = np.array([{65: 67, 67: 71, 71: 84, 84: 65}[ref[p]] for p in pos], np.uint8)
            gt = rng.random((n_samples, 2, len(pos))) < 0.3
            haps = np.repeat(ref[None, None, :], n_samples * 2, 0).reshape(n_samples, 2, length)
            for k, p in enumerate(pos):
                haps[:, :, p] = np.where(gt[:, :, k], alt[k], ref[p])
            uniq, inv = np.unique(haps.reshape(-1, length), axis=0, return_inverse=True)
            self._data[gid] = (uniq, inv.reshape(n_samples, 2).astype(np.int32), ref)


def _sensitive_matrix(index, mode, eps=0.5, sigma=0.02, audit=False):
    from hapexp.engine.predict import aggregate_predictions

    model = LoadedModel(Sensitive(eps, sigma), 2048, 128, 0, 1, ["t"], kind="planted")
    spec = {"kind": "oracle", "window": 2048, "tracks": [0], "bins": 2, "device": "cpu", "precision": mode,
            "batch_size": 8}  # fmt: skip
    p = Predictor(spec, model=model)
    table = audit_predict(index, p, {"fraction": 1.0}, model="m") if audit else None
    tidy, _ = predict_chunk(index, p, progress=False)
    matrix, _ = aggregate_predictions(tidy, "mean")
    return matrix, table


def test_precision_does_not_change_the_gene_set(tmp_path):
    """The same model at fp32 and bf16 (autocast on CPU, through the engine, its audit and
    the verdict's floor rule): G0's real spread across people (~0.3 % of its level, from
    the fp32 run) is far above bf16's measured rounding noise, so bf16 keeps it as fp32
    does; G1's model output does not depend on its variants (fp32: identical for everyone)
    and bf16's per-sequence rounding of it is called constant, as in fp32. The old static
    bf16 floor (1 % of the level) dropped G0 from the gene set at bf16 only."""
    from hapexp.verdict.performance import cross_individual, resolve_floors

    index = HalfIndex()
    m32, _ = _sensitive_matrix(index, "fp32")
    m16, table = _sensitive_matrix(index, "bf16", audit=True)
    rel = m32.std(axis=1, ddof=0) / np.sqrt((m32**2).mean(axis=1))
    assert 1e-3 < rel["G0"] < 1e-2 and rel["G1"] == 0  # the case: a small real spread, and none
    assert m16.loc["G1"].std() > 0  # bf16 rounding moves the blind gene's predictions
    table.to_csv(tmp_path / "bf16.tsv", sep="\t", index=False)
    expr = pd.DataFrame(np.random.default_rng(0).normal(size=m32.shape), index=m32.index, columns=m32.columns)
    constant = {}
    for mode, m, paths in (("fp32", m32, []), ("bf16", m16, [tmp_path / "bf16.tsv"])):
        floors = resolve_floors({"m": precision.model_floor({"precision": mode})}, paths, {"m": m}, 3.0)
        perf = cross_individual(expr, {"m": m}, floors=floors)
        constant[mode] = set(perf.loc[perf["constant"], "gene_id"])
    assert constant["fp32"] == constant["bf16"] == {"G1"}
    # the old rule, bf16's static 1e-2 relative floor, dropped G0 too
    old = cross_individual(expr, {"m": m16}, floors={"m": precision.RELATIVE_RESOLUTION["bf16"]})
    assert set(old.loc[old["constant"], "gene_id"]) == {"G0", "G1"}


def test_constancy_floor_from_the_audit():
    """Per gene: its audited relative noise × exp(z·√(1/(2(n_h − 1)) + 1/(2(n − 1)))) (z SEs
    of the log ratio of two SDs), never below fp32's; unaudited genes the largest audited
    noise with the smallest audit's margin; fp32 runs (no used rows) fp32's; a reduced run
    that measured nothing its static floor. Float64 predictors get float64's."""
    from hapexp.verdict.performance import LINEAR_FLOOR, resolve_floors

    row = pd.DataFrame([{"gene_id": g, "n": n, "rel_noise": v, "flagged": False, "stage": "predict"}
                        for g, n, v in (("a", 60, 1e-4), ("b", 60, 1e-9), ("c", 20, 3e-4))]
                       ).reindex(columns=precision.COLUMNS)  # fmt: skip
    t = precision.finish([("bf16", row)], "bf16", "m")
    got = precision.constancy_floor(t, "m", ["a", "b", "c", "d"], z=3.0, n_people=30)

    def margin(n_h):
        return np.exp(3.0 * np.sqrt(1 / (2 * (n_h - 1)) + 1 / (2 * 29)))

    want = [1e-4 * margin(60), 1e-6, 3e-4 * margin(20), 3e-4 * margin(20)]
    np.testing.assert_allclose(got.to_numpy(), want, rtol=1e-12)
    assert 1.5 < margin(60) < 1.7  # 30 people: a spread 1.6 × the rounding noise is real
    assert (precision.constancy_floor(t, "other", ["a"]) == 1e-6).all()  # strict fp32: no used rows
    nothing = precision.finish([("tf32", row.assign(rel_noise=np.nan))], "tf32", "m")
    assert (precision.constancy_floor(nothing, "m", ["a"]) == precision.STATIC_FLOOR["tf32"]).all()
    assert precision.model_floor({"precision": "fp32"}) == 1e-6
    assert all(precision.model_floor({"precision": p}) is None for p in ("bf16", "tf32", "auto"))
    preds = {"m": pd.DataFrame(index=["a"]), "elasticnet": None, "m_head_gene": None}
    assert resolve_floors({"m": 1e-6}, [], preds) == {"m": 1e-6, "elasticnet": LINEAR_FLOOR,
                                                      "m_head_gene": LINEAR_FLOOR}  # fmt: skip


def test_enformer_tiny_gene_set_same_in_fp32_and_bf16(small_cohort):
    """enformer_tiny (random weights) through the engine in fp32 and in bf16 autocast on CPU:
    its bf16 rounding is large (0.7–1 % of the level, 15–50 % of the between-people SD) and
    the genes' real spread 2–5 %; the measured floor keeps every gene at both precisions
    (a fixed 3 × the noise would drop the noisiest one at bf16 only)."""
    from hapexp.engine.predict import aggregate_predictions
    from hapexp.verdict.performance import cross_individual, resolve_floors

    idx = small_cohort
    p16 = Predictor(TINY_BF16)
    table = audit_predict(idx, p16, {"fraction": 1.0}, model="tiny")
    m16, _ = aggregate_predictions(predict_chunk(idx, p16, progress=False)[0], "mean")
    m32, _ = aggregate_predictions(
        predict_chunk(idx, Predictor({**TINY_BF16, "precision": "fp32"}), progress=False)[0], "mean"
    )
    expr = pd.DataFrame(np.random.default_rng(0).normal(size=m32.shape), index=m32.index, columns=m32.columns)
    tables = {"fp32": precision.empty_table(), "bf16": table}
    constant = {}
    for mode, m in (("fp32", m32), ("bf16", m16)):
        floors = {"tiny": precision.model_floor({"precision": mode})}
        if floors["tiny"] is None:
            floors["tiny"] = precision.constancy_floor(tables[mode], "tiny", m.index, 3.0, m.shape[1])
        perf = cross_individual(expr, {"tiny": m}, floors=resolve_floors(floors, [], {"tiny": m}))
        constant[mode] = set(perf.loc[perf["constant"], "gene_id"])
    assert constant["fp32"] == constant["bf16"] == set()
    spread = m16.std(axis=1, ddof=0) / np.sqrt((m16**2).mean(axis=1))
    rel = table.set_index("gene_id")["rel_noise"].reindex(spread.index)
    assert (spread <= 3 * rel).any()  # the case a fixed z = 3 on the SD gets wrong


def test_ism_floor_includes_the_reference_reuse_error():
    """A model blind to the variants whose scores come from a path with error up to 1e-5 ×
    |ref| (reference reuse's measured class: 2.8e-6, declared 2e-5): in fp32 the old floor
    (1e-6) called that error resolved effects; with the path's declared bound added they
    are NaN, while a full-forward path (bound 0) keeps fp32's floor and a real effect
    survives. The engine's read-out declares the bound of the model's reuse, and 0 without
    reuse or for a model that has none."""
    from hapexp.models.enformer.ism_reuse import EnformerReuse
    from tests.test_ism import FakeIndex as IsmIndex
    from tests.test_ism import additive_readout

    index = IsmIndex()
    weights = np.random.default_rng(1).normal(size=(ISM_L, 4))
    base = additive_readout(weights)

    def blind(path_error, size):
        def fn(seqs, tss_index):
            out = base(seqs, tss_index)
            # the path's error: deterministic per sequence, up to `size` × the reference read-out
            return out[0] + size * np.sin(np.arange(len(out)) * 1.3) * np.abs(out[0])

        fn.path_error = path_error
        return fn

    spec, cfg = {"window": ISM_L, "precision": "fp32"}, {"maf": 0.0}
    old = ism.score_chunk(index, blind(0.0, 1e-5), spec, cfg)  # the floor without the path's bound
    assert old["score"].iloc[1:].notna().all()  # rounding of the path passed for effects
    new = ism.score_chunk(index, blind(EnformerReuse.score_error, 1e-5), spec, cfg)
    assert new["score"].isna().all()
    real = base
    real.path_error = EnformerReuse.score_error
    assert ism.score_chunk(index, real, spec, cfg)["score"].notna().all()
    tiny = {
        "kind": "enformer_tiny",
        "window": 2048,
        "tracks": [0],
        "bins": 2,
        "device": "cpu",
        "precision": "fp32",
    }
    assert ism.make_readout(tiny, reuse=True).path_error == EnformerReuse.score_error
    assert ism.make_readout(tiny, reuse=False).path_error == 0.0
