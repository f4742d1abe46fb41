"""Report figures (matplotlib, PNG + PDF side by side).

Every function takes tidy tables (the workflow's outputs) and writes `path` (.png)
plus the same figure as .pdf next to it. Panels with no data say so instead of
failing: a cohort where no gene passes a filter still gets a complete report.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hapexp.config.schema import with_defaults  # noqa: E402
from hapexp.io import atomic_output  # noqa: E402
from hapexp.stats import pearson, spearman  # noqa: E402

STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 12,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "axes.spines.top": False,
    "axes.spines.right": False,
    # Embed TrueType fonts in PDFs (editable text, no Type 3).
    "pdf.fonttype": 42,
    # Deterministic PDFs: no creation date.
    "svg.hashsalt": "hapexp",
}
POS, NEG, GREY = "#c0392b", "#2471a3", "#7f8c8d"


def save(fig, png_path) -> None:
    """Write `png_path` and its .pdf sibling atomically, then close the figure."""
    png_path = Path(png_path)
    with atomic_output(png_path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", metadata={"Software": None})
    with atomic_output(png_path.with_suffix(".pdf")) as tmp:
        fig.savefig(tmp, format="pdf", bbox_inches="tight", metadata={"CreationDate": None, "Creator": None})
    plt.close(fig)


def _no_data(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no data:\n{what}", ha="center", va="center", transform=ax.transAxes, color=GREY)
    ax.set_xticks([])
    ax.set_yticks([])


def _grid(n: int, width: float = 4.8, height: float = 3.8, max_cols: int = 3):
    n = max(n, 1)
    cols = min(math.ceil(math.sqrt(n)), max_cols)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(width * cols, height * rows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _numeric(perf: pd.DataFrame) -> pd.DataFrame:
    return perf.astype({"pearson_r": float, "fdr": float})


def fdr_r_threshold(perf: pd.DataFrame, fdr: float) -> float:
    """Smallest |r| among genes significant at `fdr` (NaN when none)."""
    sig = perf[perf["fdr"] < fdr]
    return float(sig["pearson_r"].abs().min()) if len(sig) else np.nan


def r_histograms(perf: pd.DataFrame, fdr: float, path) -> None:
    """Histogram of per-gene Pearson r per predictor; dashed lines at the FDR threshold."""
    perf = _numeric(perf)
    with plt.rc_context(STYLE):
        predictors = list(dict.fromkeys(perf["predictor"]))
        fig, axes = _grid(len(predictors))
        bins = np.linspace(-1, 1, 41)
        for ax, name in zip(axes, predictors or ["(none)"], strict=False):
            d = perf[(perf["predictor"] == name) & np.isfinite(perf["pearson_r"])]
            if d.empty:
                _no_data(ax, name)
                continue
            sig = d["fdr"] < fdr
            ax.hist(
                [
                    d.loc[~sig, "pearson_r"],
                    d.loc[sig & (d["pearson_r"] > 0), "pearson_r"],
                    d.loc[sig & (d["pearson_r"] < 0), "pearson_r"],
                ],
                bins=bins,
                stacked=True,
                color=[GREY, POS, NEG],
                label=["not significant", f"FDR<{fdr}, r>0", f"FDR<{fdr}, r<0"],
            )
            thr = fdr_r_threshold(d, fdr)
            if np.isfinite(thr):
                for x in (-thr, thr):
                    ax.axvline(x, ls="--", color="black", lw=1)
            ax.axvline(0, color="black", lw=0.5)
            ax.set_title(f"{name}  (n={len(d)}, mean r={d['pearson_r'].mean():.2f})")
            ax.set_xlabel("Pearson r (prediction vs expression)")
            ax.set_ylabel("genes")
            ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            ax.set_xlim(-1, 1)
        if axes[0].get_legend_handles_labels()[0]:
            axes[0].legend(loc="upper left", frameon=False)
        fig.suptitle("Cross-individual performance per gene (dashed: |r| at the FDR threshold)")
        save(fig, path)


def deep_vs_linear(perf: pd.DataFrame, model: str, linear: str, fdr: float, path) -> None:
    """Per gene of the shared gene set (tested by every predictor, same individuals):
    the deep model's r against the linear model's r; significance = BH across that set."""
    perf = _numeric(perf)
    shared = perf["in_shared_set"].astype(bool) if "in_shared_set" in perf else np.isfinite(perf["pearson_r"])
    fcol = "fdr_shared" if "fdr_shared" in perf else "fdr"
    perf = perf[shared]
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5, 5))
        a = perf[perf["predictor"] == model].set_index("gene_id")
        b = perf[perf["predictor"] == linear].set_index("gene_id")
        genes = a.index.intersection(b.index)
        x, y = b.loc[genes, "pearson_r"], a.loc[genes, "pearson_r"]
        ok = np.isfinite(x) & np.isfinite(y)
        if not ok.any():
            _no_data(ax, f"{model} vs {linear}")
        else:
            sig = (a.loc[genes, fcol].astype(float) < fdr) | (b.loc[genes, fcol].astype(float) < fdr)
            ax.scatter(x[ok & ~sig], y[ok & ~sig], s=18, color=GREY, label="neither significant")
            ax.scatter(x[ok & sig], y[ok & sig], s=22, color=POS, label=f"either FDR<{fdr}")
            ax.plot([-1, 1], [-1, 1], color="black", lw=0.8, ls=":")
            ax.axhline(0, color="black", lw=0.5)
            ax.axvline(0, color="black", lw=0.5)
            ax.set_xlim(-1, 1)
            ax.set_ylim(-1, 1)
            ax.legend(loc="upper left", frameon=False)
        ax.set_xlabel(f"{linear}: Pearson r per gene")
        ax.set_ylabel(f"{model}: Pearson r per gene")
        ax.set_title(f"{model} vs {linear} (shared gene set: {int(ok.sum())} genes)")
        save(fig, path)


def _ism_eqtl_panel(ax, m: pd.DataFrame, title: str) -> None:
    unresolved = int(m["score"].isna().sum())
    m = m[m["score"].notna()]  # unresolved ISM scores are unknown, not 0
    if m.empty:
        _no_data(ax, title + (f" ({unresolved} unresolved)" if unresolved else ""))
        return
    sig = m["significant"].to_numpy(bool)
    ax.scatter(m.loc[~sig, "slope"], m.loc[~sig, "score"], s=10, color=GREY, alpha=0.6, label="eQTL n.s.")
    ax.scatter(m.loc[sig, "slope"], m.loc[sig, "score"], s=16, color=POS, label="significant eQTL")
    ax.axhline(0, color="black", lw=0.5)
    ax.axvline(0, color="black", lw=0.5)
    r = pearson(m["slope"], m["score"])
    extra = f", {unresolved} unresolved excluded" if unresolved else ""
    ax.set_title(
        f"{title}  (n={len(m)}, r={r:.2f}{extra})" if np.isfinite(r) else f"{title}  (n={len(m)}{extra})"
    )
    ax.set_xlabel("eQTL slope (per ALT allele)")
    ax.set_ylabel("ISM score (alt − ref read-out)")


def ism_vs_eqtl(merged: pd.DataFrame, model: str, genes: list[str], path_pooled, path_genes) -> None:
    """ISM vs eQTL slope: all genes pooled, and one panel per chosen gene.

    `merged`: ISM rows joined to eQTL (columns gene_id, variant_id, score, slope, significant).
    """
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5.5, 4.8))
        _ism_eqtl_panel(ax, merged, f"{model}, all genes")
        if not merged.empty:
            ax.legend(loc="best", frameon=False)
        save(fig, path_pooled)
        fig, axes = _grid(len(genes) or 1)
        if not genes:
            _no_data(axes[0], "no genes chosen")
        for ax, g in zip(axes, genes, strict=False):
            _ism_eqtl_panel(ax, merged[merged["gene_id"] == g], g)
        fig.suptitle(f"{model}: ISM vs eQTL slope for selected genes")
        save(fig, path_genes)


def supported_vs_r(conc: pd.DataFrame, perf: pd.DataFrame, model: str, path) -> None:
    """Supported fraction of the top-|ISM| variants vs the model's per-gene r."""
    perf = _numeric(perf)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        p = perf[perf["predictor"] == model][["gene_id", "pearson_r"]]
        m = conc.merge(p, on="gene_id").dropna(subset=["supported_fraction", "pearson_r"])
        if m.empty:
            _no_data(ax, model)
        else:
            rng = np.random.default_rng(0)  # jitter only: fractions are discrete
            ax.scatter(
                m["pearson_r"], m["supported_fraction"] + rng.uniform(-0.015, 0.015, len(m)), s=20, color=NEG
            )
            ax.set_xlim(-1, 1)
            ax.set_ylim(-0.05, 1.05)
            ax.axvline(0, color="black", lw=0.5)
        ax.set_xlabel(f"{model}: Pearson r per gene")
        ax.set_ylabel("supported fraction of top-k |ISM| variants")
        ax.set_title(f"{model}: eQTL support vs performance ({len(m)} genes)")
        save(fig, path)


def driver_distance(drivers: pd.DataFrame, model: str, path) -> None:
    """Strand-corrected distance of driver variants to the TSS (positive = downstream)."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6, 4))
        if drivers.empty:
            _no_data(ax, "no drivers")
        else:
            d = drivers["tss_distance"].astype(float) / 1000.0
            ax.hist(d, bins=min(40, max(5, len(d) // 2)), color=NEG)
            ax.axvline(0, color="black", lw=0.8, ls="--")
        ax.set_xlabel("driver distance to TSS (kb; + = downstream in gene orientation)")
        ax.set_ylabel("driver variants")
        ax.set_title(f"{model}: drivers of predicted expression ({len(drivers)} variants)")
        save(fig, path)


def cross_gene(reference: dict[str, pd.Series], mean_expression: pd.Series, scale: str, path) -> None:
    """Reference-genome prediction vs mean expression across genes, one panel per model."""
    with plt.rc_context(STYLE):
        names = list(reference)
        fig, axes = _grid(len(names) or 1)
        if not names:
            _no_data(axes[0], "no models")
        for ax, name in zip(axes, names, strict=False):
            ref = reference[name]
            genes = ref.index.intersection(mean_expression.index)
            x, y = ref.loc[genes].astype(float), mean_expression.loc[genes].astype(float)
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() < 3:
                _no_data(ax, name)
                continue
            ax.scatter(x[ok], y[ok], s=16, color=NEG)
            rho = spearman(x[ok], y[ok])
            ax.set_title(f"{name}  (Spearman r={rho:.2f}, n={int(ok.sum())})")
            ax.set_xlabel("reference-genome prediction")
            ax.set_ylabel(f"mean expression ({scale})")
        fig.suptitle("Cross-gene: reference prediction vs mean expression")
        save(fig, path)


def ism_models(ism_by_model: dict[str, pd.DataFrame], path) -> None:
    """ISM of model A vs model B for each pair of models (all variants pooled)."""
    with plt.rc_context(STYLE):
        names = list(ism_by_model)
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
        fig, axes = _grid(len(pairs) or 1)
        if not pairs:
            _no_data(axes[0], "needs two models")
        for ax, (a, b) in zip(axes, pairs, strict=False):
            m = ism_by_model[a][["gene_id", "variant_id", "score"]].merge(
                ism_by_model[b][["gene_id", "variant_id", "score"]],
                on=["gene_id", "variant_id"],
                suffixes=("_a", "_b"),
            )
            ok = m["score_a"].notna() & m["score_b"].notna()  # unresolved: unknown, not 0
            unresolved = int((~ok).sum())
            m = m[ok]
            if m.empty:
                _no_data(ax, f"{a} vs {b}")
                continue
            ax.scatter(m["score_a"], m["score_b"], s=8, alpha=0.6, color=NEG)
            ax.axhline(0, color="black", lw=0.5)
            ax.axvline(0, color="black", lw=0.5)
            signed = (m["score_a"] != 0) & (m["score_b"] != 0)
            same = np.mean(np.sign(m.loc[signed, "score_a"]) == np.sign(m.loc[signed, "score_b"]))
            ax.set_title(
                f"n={len(m)}, same sign {same:.0%}"
                + (f"; {unresolved} unresolved excluded" if unresolved else "")
            )
            ax.set_xlabel(f"ISM score, {a}")
            ax.set_ylabel(f"ISM score, {b}")
        fig.suptitle("ISM agreement between models")
        save(fig, path)


# --------------------------------------------------------------------------- rule glue
def pick_genes(conc: pd.DataFrame, chosen: list[str], n: int = 4) -> list[str]:
    """Genes for the per-gene ISM panels: the config's list, else those with most significant eQTLs."""
    if chosen:
        return [g for g in chosen if g in set(conc["gene_id"])]
    c = conc.dropna(subset=["ism_eqtl_r"]).copy()
    c["_abs"] = c["ism_eqtl_r"].abs()
    c = c.sort_values(["n_sig_eqtl", "_abs", "gene_id"], ascending=[False, False, True], kind="mergesort")
    return list(c["gene_id"].head(n))


def run_figures_model(
    performance,
    ism,
    eqtl,
    egenes,
    concordance,
    drivers,
    deep_vs_linear_png,
    ism_vs_eqtl_png,
    ism_vs_eqtl_genes_png,
    supported_vs_r_png,
    driver_distance_png,
    model: str,
    cfg: dict,
    linear: str = "elasticnet",
):
    """Rule `figures_model`: the figures of one model (each `*_png` path gets a PDF beside it)
    from the `performance` table, its `ism` scores, the `eqtl` scan (significance from
    `egenes`), its `concordance` and `drivers` tables; compared with the `linear` predictor."""
    from hapexp.verdict.concordance import mark_significant, read_egenes

    cfg = with_defaults("concordance", cfg)
    fdr = float(cfg["fdr"])
    perf = pd.read_csv(performance, sep="\t", dtype={"gene_id": str})
    scores = pd.read_parquet(ism)
    pairs = mark_significant(
        pd.read_parquet(eqtl, columns=["phenotype_id", "variant_id", "slope", "pval_nominal"]),
        fdr,
        cfg["eqtl_significance"],
        read_egenes(egenes) if egenes else None,
    )
    conc = pd.read_csv(concordance, sep="\t", dtype={"gene_id": str})
    driver_table = pd.read_csv(drivers, sep="\t", dtype={"gene_id": str})
    merged = scores.merge(
        pairs.rename(columns={"phenotype_id": "gene_id"})[["gene_id", "variant_id", "slope", "significant"]],
        on=["gene_id", "variant_id"],
    )
    deep_vs_linear(perf, model, linear, fdr, deep_vs_linear_png)
    ism_vs_eqtl(
        merged, model, pick_genes(conc, list(cfg["genes_to_plot"])), ism_vs_eqtl_png, ism_vs_eqtl_genes_png
    )
    supported_vs_r(conc, perf, model, supported_vs_r_png)
    driver_distance(driver_table, model, driver_distance_png)


def run_figures_cohort(
    performance,
    prepared,
    raw,
    references,
    ism,
    r_hist_png,
    cross_gene_png,
    ism_models_png,
    models: list[str],
    raw_format: str,
    is_level: bool,
    cfg: dict,
):
    """Rule `figures_cohort`: r histograms, cross-gene scatter, ISM agreement between models
    (each `*_png` path gets a PDF beside it), from the `performance` table, each of `models`'
    `references` (reference-genome values) and `ism` scores.

    `raw`: the expression-level matrix when the cohort has one (`is_level`; restricted to
    the analysed people of `prepared` as in rule performance), else the expression input."""
    from hapexp.io import read_matrix
    from hapexp.verdict.cross_gene import expression_levels, mean_expression, read_references

    fdr = float(with_defaults("concordance", cfg)["fdr"])
    perf = pd.read_csv(performance, sep="\t", dtype={"gene_id": str})
    r_histograms(perf, fdr, r_hist_png)
    levels = expression_levels(raw, raw_format, list(read_matrix(prepared).columns) if is_level else None)
    mean, scale = mean_expression(levels)
    cross_gene(read_references(models, references), mean, scale, cross_gene_png)
    ism_models({name: pd.read_parquet(p) for name, p in zip(models, ism, strict=True)}, ism_models_png)


def null_check_qq(pvalues: pd.DataFrame, path) -> None:
    """QQ plot of each predictor's p-values (`pvalues`: predictor, run, permutation,
    pearson_p; hapexp.verdict.null_check): expected vs observed −log10 p, the real run in
    colour over the permuted runs in grey, with the 99 % pointwise band of uniform order
    statistics (Beta(i, m − i + 1) quantiles, m genes). The y axis is scaled to the permuted
    runs and the band (what the check is about); a real run beyond it is cut at the top
    edge and its largest −log10 p is written in the title."""
    from scipy.stats import beta

    preds = list(dict.fromkeys(pvalues["predictor"]))
    with plt.rc_context(STYLE):
        fig, axes = _grid(len(preds))
        if not preds:
            _no_data(axes[0], "no predictor checked")
        for ax, name in zip(axes, preds, strict=False):
            curves = []
            for (run, b), t in pvalues[pvalues["predictor"] == name].groupby(
                ["run", "permutation"], sort=True
            ):
                p = np.sort(t["pearson_p"].to_numpy(float))
                p = p[np.isfinite(p)]
                if p.size:
                    x = -np.log10(np.arange(1, p.size + 1) / (p.size + 1))
                    curves.append((run == "real", int(b), x, -np.log10(np.maximum(p, 1e-300))))
            if not curves:
                _no_data(ax, f"{name}: no gene tested")
                continue
            xmax = max(c[2].max() for c in curves)
            ymax = max([xmax] + [c[3].max() for c in curves if not c[0]])
            real_top, genes = np.nan, 0
            for real, b, x, y in curves:
                if real:  # where a calibrated predictor's points fall, 99 % of the time each
                    m = x.size
                    i = np.arange(1, m + 1)
                    lo, hi = (
                        -np.log10(beta.ppf(0.995, i, m - i + 1)),
                        -np.log10(beta.ppf(0.005, i, m - i + 1)),
                    )
                    ax.fill_between(x, lo, hi, color=GREY, alpha=0.15, lw=0, label="99 % band")
                    ymax, real_top, genes = max(ymax, hi.max()), y.max(), m
                ax.plot(
                    x, y, color=POS if real else GREY, lw=2 if real else 0.8, alpha=1 if real else 0.7,
                    label="real" if real else ("permuted" if b == min(c[1] for c in curves if not c[0]) else None),
                    zorder=3 if real else 2,
                )  # fmt: skip
            top = 1.25 * ymax
            ax.plot([0, xmax], [0, xmax], color="black", lw=0.8, ls="--")
            ax.set_ylim(0, top)
            title = f"{name} ({genes} genes)" if genes else name
            if real_top > top:
                title += f"\nreal run cut: up to {real_top:.1f}"
            ax.set_title(title)
            ax.set_xlabel("expected −log10 p")
            ax.set_ylabel("observed −log10 p")
            ax.legend(loc="upper left", frameon=False)
        save(fig, path)


def run_figures_null_check(pvalues, png) -> None:
    """Rule `figures_null_check`: the QQ figure (`png`, a PDF beside it) of the
    permuted-expression check's per-gene p-values (`pvalues`, rule null_check)."""
    null_check_qq(pd.read_csv(pvalues, sep="\t", dtype={"gene_id": str}), png)
