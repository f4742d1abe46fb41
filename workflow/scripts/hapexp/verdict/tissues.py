"""A multi-tissue cohort's verdict across tissues (rule `tissue_summary`).

- tissues.tsv: per tissue × predictor, from each tissue's performance.tsv (its people, its
  residualization, its shared gene set): people, genes tested, mean r, genes significant
  with r > 0 / r < 0 at the FDR; then the same on the genes common to all tissues (tested
  in every tissue's shared set; BH over those genes, per tissue × predictor).
- matched.tsv: every model scored on each tissue with the tissue's own tracks and with each
  other tissue's tracks, paired per gene on the same people, covariates and genes: Williams'
  t of the two dependent partial correlations (`hapexp.verdict.paired.paired_genes`; both
  predictions come from a model not fitted on the cohort's expression of that tissue, so
  the t-test is valid); BH per (model, tissue, other tissue).
- figures/tissues_mean_r.png: mean r per tissue and predictor.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from hapexp import stats

log = logging.getLogger(__name__)

TABLE_COLUMNS = ["tissue", "predictor", "gene_set", "people", "genes_tested", "mean_r",
                 "n_sig_positive", "n_sig_negative"]  # fmt: skip
MATCHED_COLUMNS = ["model", "tissue", "tracks_of", "genes", "people", "mean_r_matched", "mean_r_mismatched",
                   "n_matched_better", "n_mismatched_better"]  # fmt: skip


def _row(tissue, predictor, gene_set, d: pd.DataFrame, fdr: float, fdr_col: str) -> dict:
    r = d["pearson_r"].astype(float)
    sig = d[fdr_col].astype(float) < fdr
    return {
        "tissue": tissue,
        "predictor": predictor,
        "gene_set": gene_set,
        "people": int(d["n"].median()) if len(d) else 0,
        "genes_tested": len(d),
        "mean_r": r.mean() if len(d) else np.nan,
        "n_sig_positive": int((sig & (r > 0)).sum()),
        "n_sig_negative": int((sig & (r < 0)).sum()),
    }


def tissue_table(perf: dict[str, pd.DataFrame], fdr: float, exclude=()) -> pd.DataFrame:
    """TABLE_COLUMNS from each tissue's performance.tsv (`perf`: tissue → table): per tissue ×
    predictor on the tissue's shared gene set (`gene_set` "shared", the summary's headline),
    and on the genes in every tissue's shared set ("common"). `exclude`: predictors left
    out (fine-tuned on the cohort: judged on the split verdict's test people)."""
    tested = {
        t: p[p["in_shared_set"].astype(bool) & np.isfinite(p["pearson_r"].astype(float))
             & ~p["predictor"].isin(list(exclude))]
        for t, p in perf.items()
    }  # fmt: skip
    common = set.intersection(*(set(p["gene_id"]) for p in tested.values())) if tested else set()
    rows = []
    for t, p in tested.items():
        for name, d in p.groupby("predictor", sort=False):
            rows.append(_row(t, name, "shared", d, fdr, "fdr_shared"))
            c = d[d["gene_id"].isin(common)].copy()
            c["fdr_common"] = stats.bh_fdr(c["pearson_p"].astype(float)) if len(c) else []
            rows.append(_row(t, name, "common", c, fdr, "fdr_common"))
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def matched_table(
    expression: dict[str, pd.DataFrame],
    covariates: dict[str, pd.DataFrame | None],
    predictions: dict[str, dict[str, pd.DataFrame]],
    fdr: float,
    residualize: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary MATCHED_COLUMNS, per-gene rows). `predictions`: model → tissue → the model's
    genes × people predictions read with that tissue's tracks. For tissue t and every other
    tissue u: t's expression against the model read with t's tracks (matched) and with u's
    (mismatched), on t's people and covariates, the genes both cover."""
    from hapexp.verdict.paired import paired_genes
    from hapexp.verdict.performance import align_all

    summary, genes_rows = [], []
    for model, by_tissue in predictions.items():
        for t, expr in expression.items():
            for u in by_tissue:
                if u == t:
                    continue
                e, aligned, cov = align_all(expr, {"m": by_tissue[t], "x": by_tissue[u]}, covariates[t])
                genes = [g for g in aligned["m"][1].index if g in set(aligned["x"][1].index)]
                if not genes:
                    continue
                c = None if cov is None or not residualize or not cov.shape[0] else cov.to_numpy(float).T
                res = paired_genes(e.loc[genes].to_numpy(float), aligned["m"][1].loc[genes].to_numpy(float),
                                   aligned["x"][1].loc[genes].to_numpy(float), c)  # fmt: skip
                g = pd.DataFrame({"model": model, "tissue": t, "tracks_of": u, "gene_id": genes,
                                  "n": res["n"], "r_matched": res["r_deep"], "r_mismatched": res["r_linear"],
                                  "williams_t": res["williams_t"], "p": res["p"]})  # fmt: skip
                g["fdr"] = stats.bh_fdr(g["p"])
                ok = np.isfinite(g["p"])
                sig = g["fdr"] < fdr
                summary.append({
                    "model": model, "tissue": t, "tracks_of": u, "genes": int(ok.sum()), "people": e.shape[1],
                    "mean_r_matched": g.loc[ok, "r_matched"].mean(), "mean_r_mismatched": g.loc[ok, "r_mismatched"].mean(),
                    "n_matched_better": int((sig & (g["r_matched"] > g["r_mismatched"])).sum()),
                    "n_mismatched_better": int((sig & (g["r_matched"] < g["r_mismatched"])).sum()),
                })  # fmt: skip
                genes_rows.append(g)
    per_gene = pd.concat(genes_rows, ignore_index=True) if genes_rows else pd.DataFrame()
    return pd.DataFrame(summary, columns=MATCHED_COLUMNS), per_gene


def mean_r_figure(table: pd.DataFrame, path) -> None:
    """Mean r per tissue (groups) and predictor (bars), on each tissue's shared genes."""
    from hapexp.verdict.figures import STYLE, plt, save

    d = table[table["gene_set"] == "shared"]
    tissues = list(dict.fromkeys(d["tissue"]))
    predictors = list(dict.fromkeys(d["predictor"]))
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(max(4.8, 1.2 * len(tissues) * max(1, len(predictors)) / 2), 3.8))
        width = 0.8 / max(1, len(predictors))
        x = np.arange(len(tissues))
        for k, p in enumerate(predictors):
            v = d[d["predictor"] == p].set_index("tissue")["mean_r"].reindex(tissues).to_numpy(float)
            ax.bar(x + (k - (len(predictors) - 1) / 2) * width, v, width, label=p)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(x, tissues, rotation=30, ha="right")
        ax.set_ylabel("mean r across people (per gene)")
        ax.set_title("mean r per tissue and predictor (each tissue's shared genes)")
        ax.legend(frameon=False, fontsize=8, ncol=2)
        save(fig, path)


def _md(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(lines)


def markdown(cohort: str, table: pd.DataFrame, matched: pd.DataFrame, splits: pd.DataFrame, fdr: float) -> str:
    out = [
        f"# {cohort}: the verdict across tissues",
        "",
        f"Each tissue is judged as its own cohort (results/{cohort}/<tissue>/summary.md), on its people, "
        "covariates and genes; predictions and ISM were computed once for all tissues, each tissue reading "
        "the tracks it selects. One split of people serves every tissue: a test person is a test person in "
        "every tissue.",
        "",
        "## People per tissue and split",
        "",
        _md(splits),
        "",
        f"## Tissue × predictor (mean r; genes significant at FDR {fdr}, r > 0 / r < 0)",
        "",
        "`shared`: the tissue's shared gene set (its summary's headline); `common`: the genes in every "
        "tissue's shared set (BH over those genes).",
        "",
        _md(table),
        "",
        "## Own tracks vs other tissues' tracks",
        "",
        "Each tissue's expression against a model read with the tissue's own tracks (matched) and with "
        "another tissue's (mismatched), per gene on the same people and covariates (Williams' t, BH per "
        f"row; genes where one read-out is better at FDR {fdr}).",
        "",
        _md(matched) if len(matched) else "(no model has different tracks per tissue)",
        "",
    ]
    return "\n".join(out)


def run_tissue_summary(performance, prepared, covariates, predictions, splits, tsv, md, matched, matched_genes,
                       figure, cohort: str, tissues: list[str], models: list[str], fdr: float,
                       residualize: bool, exclude=()) -> None:  # fmt: skip
    """Rule `tissue_summary`: the files of the module doc. `performance`, `prepared`,
    `covariates`: one per tissue (`tissues` order); `predictions`: per model, one matrix
    per tissue (model-major: models[0]'s tissues first)."""
    from hapexp.io import atomic_output, read_matrix, write_tsv

    perf = {t: pd.read_csv(p, sep="\t", dtype={"gene_id": str}) for t, p in zip(tissues, performance, strict=True)}
    table = tissue_table(perf, fdr, exclude)
    expr = {t: read_matrix(p) for t, p in zip(tissues, prepared, strict=True)}
    cov = {t: read_matrix(p, index_col="id") for t, p in zip(tissues, covariates, strict=True)}
    preds, k = {}, 0
    for m in models:
        preds[m] = {t: read_matrix(predictions[k + i]) for i, t in enumerate(tissues)}
        k += len(tissues)
    # a model reading the same values for every tissue has nothing to compare
    preds = {m: p for m, p in preds.items() if any(not p[t].equals(p[tissues[0]]) for t in tissues[1:])}
    summary, per_gene = matched_table(expr, cov, preds, fdr, residualize)
    split_table = pd.read_csv(splits, sep="\t", dtype={"tissue": str})
    write_tsv(table, tsv)
    write_tsv(summary, matched)
    write_tsv(per_gene, matched_genes)
    mean_r_figure(table, figure)
    with atomic_output(md) as tmp:
        tmp.write_text(markdown(cohort, table, summary, split_table, fdr))
    log.info("%d tissues, %d predictors; matched vs mismatched: %d rows", len(tissues),
             table["predictor"].nunique(), len(summary))  # fmt: skip
