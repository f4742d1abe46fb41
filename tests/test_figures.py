"""Every figure renders to a valid PNG + PDF, including on empty inputs."""

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from hapexp.verdict import figures as fg


def _perf():
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(30)]
    rows = []
    for name, shift in (("oracle", 0.6), ("enformer_tiny", 0.0), ("elasticnet", 0.4)):
        r = np.clip(shift + 0.2 * rng.normal(size=30), -1, 1)
        fdr = np.where(np.abs(r) > 0.35, 0.001, 0.5)
        rows.append(pd.DataFrame({"gene_id": genes, "predictor": name, "n": 100, "pearson_r": r, "fdr": fdr}))
    return pd.concat(rows, ignore_index=True)


def _check(path):
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200
    # Not a blank canvas: something was drawn.
    assert img[..., :3].std() > 0.01
    pdf = path.with_suffix(".pdf")
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 1000


def test_fdr_threshold():
    perf = _perf()
    sub = perf[perf.predictor == "oracle"]
    thr = fg.fdr_r_threshold(sub, 0.05)
    assert thr == pytest.approx(sub.loc[sub.fdr < 0.05, "pearson_r"].abs().min())
    assert np.isnan(fg.fdr_r_threshold(sub.assign(fdr=1.0), 0.05))


def test_all_figures_render(tmp_path):
    rng = np.random.default_rng(1)
    perf = _perf()
    fg.r_histograms(perf, 0.05, tmp_path / "r_hist.png")
    fg.deep_vs_linear(perf, "oracle", "elasticnet", 0.05, tmp_path / "dvl.png")
    merged = pd.DataFrame(
        {
            "gene_id": np.repeat(["G0", "G1"], 20),
            "variant_id": [f"v{i}" for i in range(40)],
            "score": rng.normal(size=40),
            "slope": rng.normal(size=40),
            "significant": rng.uniform(size=40) < 0.3,
        }
    )
    fg.ism_vs_eqtl(merged, "oracle", ["G0", "G1"], tmp_path / "iv.png", tmp_path / "ivg.png")
    conc = pd.DataFrame(
        {"gene_id": [f"G{i}" for i in range(30)], "supported_fraction": rng.integers(0, 6, 30) / 5}
    )
    fg.supported_vs_r(conc, perf, "oracle", tmp_path / "sup.png")
    drivers = pd.DataFrame({"gene_id": "G0", "tss_distance": rng.integers(-1000, 1000, 50)})
    fg.driver_distance(drivers, "oracle", tmp_path / "drv.png")
    genes = [f"G{i}" for i in range(30)]
    ref = {
        "oracle": pd.Series(rng.normal(size=30), index=genes),
        "enformer_tiny": pd.Series(rng.normal(size=30), index=genes),
    }
    fg.cross_gene(ref, pd.Series(rng.normal(size=30), index=genes), "log2(x+1)", tmp_path / "cg.png")
    ism = pd.DataFrame(
        {"gene_id": "G0", "variant_id": [f"v{i}" for i in range(40)], "score": rng.normal(size=40)}
    )
    fg.ism_models({"a": ism, "b": ism.assign(score=-ism.score)}, tmp_path / "im.png")
    for name in ("r_hist", "dvl", "iv", "ivg", "sup", "drv", "cg", "im"):
        _check(tmp_path / f"{name}.png")


def test_empty_inputs_still_render(tmp_path):
    empty_perf = pd.DataFrame(columns=["gene_id", "predictor", "n", "pearson_r", "fdr"])
    fg.r_histograms(empty_perf, 0.05, tmp_path / "a.png")
    fg.deep_vs_linear(empty_perf, "m", "elasticnet", 0.05, tmp_path / "b.png")
    fg.driver_distance(pd.DataFrame(columns=["gene_id", "tss_distance"]), "m", tmp_path / "c.png")
    fg.ism_models({"only": pd.DataFrame(columns=["gene_id", "variant_id", "score"])}, tmp_path / "d.png")
    for n in "abcd":
        assert (tmp_path / f"{n}.png").stat().st_size > 1000
        assert (tmp_path / f"{n}.pdf").exists()


def test_pick_genes():
    conc = pd.DataFrame({"gene_id": ["A", "B", "C"], "n_sig_eqtl": [1, 5, 5], "ism_eqtl_r": [0.9, -0.2, 0.8]})
    assert fg.pick_genes(conc, [], n=2) == ["C", "B"]
    assert fg.pick_genes(conc, ["B", "Z"]) == ["B"]


def test_null_check_qq_renders(tmp_path):
    rng = np.random.default_rng(2)
    rows = [
        pd.DataFrame(
            {
                "predictor": name,
                "run": run,
                "permutation": b,
                "gene_id": [f"G{i}" for i in range(50)],
                "pearson_r": rng.normal(size=50),
                "pearson_p": rng.uniform(size=50) ** power,
            }
        )
        for name in ("oracle", "elasticnet")
        for run, b, power in (("real", 0, 3.0), ("permuted", 1, 1.0), ("permuted", 2, 1.0))
    ]
    path = tmp_path / "pv.tsv"
    pd.concat(rows, ignore_index=True).to_csv(path, sep="\t", index=False)
    fg.run_figures_null_check(path, tmp_path / "qq.png")
    _check(tmp_path / "qq.png")
    fg.null_check_qq(pd.DataFrame(columns=["predictor", "run", "permutation", "gene_id", "pearson_p"]),
                     tmp_path / "e.png")  # fmt: skip
    assert (tmp_path / "e.png").stat().st_size > 1000 and (tmp_path / "e.pdf").exists()
