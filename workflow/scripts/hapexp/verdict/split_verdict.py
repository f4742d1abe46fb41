"""The verdict on the splits (rule `split_verdict`): held-out people × training / held-out genes.

Every predictor — each model of the registry (fine-tuned or not) and an elastic net
fitted on the *training people only* (`elasticnet_on_training_people`, the same
variants, window, α and glmnet fit as rule elasticnet, λ by cv.glmnet on the training
people) — is judged by `hapexp.verdict.performance.cross_individual` on the **test people**
only: the same residualization on the expression's covariates, the same constancy floor
rule (`resolve_floors`: the elastic net on the training people and the heads, float64
arithmetic, get the main elastic net's), the same shared gene set. The expression is the
split-aware preparation (rule prepare_split_expression: transform, PCs and covariate
regression fitted on the training people, applied to the test people), so what the
elastic net and the heads fit on does not depend on a test person's expression. Genes
are labelled by the gene split: a fine-tuned model saw the training genes (of other people), never the held-out ones; the per-gene elastic
net is fitted for every gene on the training people, so for it the gene split only
says which genes are compared.

The elastic net is fitted per gene chunk (rule split_verdict_elasticnet:
`run_split_verdict_elasticnet`); rule split_verdict gathers the chunks and computes the
tables over every gene (`run_split_verdict`).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from hapexp.config.schema import defaults
from hapexp.linear.elasticnet import fit_predict_on
from hapexp.verdict.performance import PERFORMANCE_COLUMNS, cross_individual, resolve_floors

log = logging.getLogger(__name__)

ELASTICNET = "elasticnet_train_people"
NOISE_Z = defaults("precision_audit")["noise_floor_z"]
SUMMARY_COLUMNS = [
    "predictor", "gene_split", "n_people", "n_genes", "mean_r", "median_r", "n_significant", "per_gene_model",
]  # fmt: skip
# Why per-gene models are marked in the tables: a model fitted gene by gene (the elastic net
# below, the per-gene heads) is fitted on every gene, the held-out ones included; for it
# "held-out genes" means held-out people only, not genes it never saw.
PER_GENE_NOTE = (
    "† per-gene model: one model per gene, fitted on the training people of every gene, the "
    "held-out genes included; its held-out-gene columns are held-out people only, not genes it never saw."
)


def elasticnet_on_training_people(
    dosages, genes: pd.DataFrame, expression: pd.DataFrame, train: list[str], *, alpha, inner_folds, seed,
    thresh=1e-7,
):  # fmt: skip
    """genes × all people predictions of a per-gene elastic net fitted on `train` people.

    `hapexp.linear.elasticnet.fit_predict_on` on the gene's window: y = the prepared
    expression of the training people scaled as PredictDB does; λ by cv.glmnet over
    `inner_folds` seeded folds of those people; genes with fewer than 2 variants in the
    window, or whose fit fails, are NaN rows (not tested)."""
    samples = list(expression.columns)
    if list(dosages.samples) != samples:
        raise ValueError("dosages and expression must have the same samples in the same order")
    tr = np.isin(samples, train)
    out = {}
    for row in genes.itertuples(index=False):
        if row.gene_id not in expression.index:
            continue
        ix = dosages.window_index(str(row.chrom), int(row.start0), int(row.end0))
        x = np.ascontiguousarray(dosages.dosage[ix].T)  # people × variants
        out[row.gene_id] = fit_predict_on(
            x,
            expression.loc[row.gene_id].to_numpy(float),
            tr,
            row.gene_id,
            alpha=alpha,
            inner_folds=inner_folds,
            seed=seed,
            thresh=thresh,
        )
    pred = pd.DataFrame.from_dict(out, orient="index", columns=samples)
    pred.index.name = "gene_id"
    return pred


def split_performance(
    expression: pd.DataFrame,
    predictions: dict[str, pd.DataFrame],
    people: dict[str, list[str]],
    gene_split: pd.DataFrame,
    covariates: pd.DataFrame | None = None,
    floors: dict | None = None,
    residualize: bool = True,
) -> pd.DataFrame:
    """cross_individual on the test people and the split's genes, with a `gene_split` column."""
    test = [s for s in expression.columns if s in set(people["test"])]
    genes = gene_split.set_index("gene_id")["split"]
    keep = [g for g in expression.index if g in genes.index]
    expr = expression.loc[keep, test]
    cov = None if covariates is None else covariates.loc[:, test]
    preds = {k: v.loc[[g for g in v.index if g in genes.index]] for k, v in predictions.items()}
    perf = cross_individual(expr, preds, cov, floors=floors, residualize=residualize)
    perf.insert(2, "gene_split", perf["gene_id"].map(genes).to_numpy())
    return perf


def summarize_splits(perf: pd.DataFrame, fdr: float = 0.05, per_gene=(ELASTICNET,)) -> pd.DataFrame:
    """Per predictor × gene split, on the shared gene set: genes, mean/median r, BH-significant;
    `per_gene_model`: the predictor is one of `per_gene` (fitted gene by gene, PER_GENE_NOTE)."""
    rows = []
    per_gene = set(per_gene)
    shared = perf[perf["in_shared_set"].astype(bool)]
    for (name, split), t in shared.groupby(["predictor", "gene_split"], sort=False):
        r = t["pearson_r"].astype(float)
        rows.append({
            "predictor": name, "gene_split": split, "n_people": int(t["n"].max()) if len(t) else 0,
            "n_genes": int(r.notna().sum()), "mean_r": float(r.mean()), "median_r": float(r.median()),
            "n_significant": int((t["fdr_shared"].astype(float) < fdr).sum()), "per_gene_model": name in per_gene,
        })  # fmt: skip
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def markdown(
    summary: pd.DataFrame, people: dict[str, list[str]], trained: list[str] | None = None
) -> list[str]:
    """The summary.md section: one row per predictor, training and held-out genes side by side.
    `trained`: predictors fitted on this cohort's training people (fine-tuned models), whose
    rows in the tables above include the people they were trained on."""
    lines = [
        "## Verdict on the splits (held-out people)",
        "",
        f"{len(people['test'])} test people (fine-tuning and the elastic net below used "
        f"{len(people['train'])} training + {len(people['validation'])} validation people); "
        "mean Pearson r over the shared gene set, residualized as above, against the expression "
        "prepared on the training people (expression/prepared_split.tsv).",
        "",
        "| predictor | training genes: n | mean r | held-out genes: n | mean r |",
        "| --- | --- | --- | --- | --- |",
    ]
    if trained:
        lines[4:4] = [
            f"Fine-tuned on this cohort's training people: {', '.join(trained)}. They are judged here, "
            "on the test people only (the headline tables above leave them out).",
            "",
        ]
    if summary.empty:
        lines.append(
            "| (no gene testable: too few test people for the covariates, or no shared gene) | | | | |"
        )
    marked = False
    for name, t in summary.groupby("predictor", sort=False):
        by = t.set_index("gene_split")
        cell = [
            (str(int(by.loc[s, "n_genes"])), f"{by.loc[s, 'mean_r']:.3f}") if s in by.index else ("0", "–")
            for s in ("train", "test")
        ]
        per_gene = "per_gene_model" in t and bool(t["per_gene_model"].astype(bool).any())
        marked |= per_gene
        label = f"{name} (per-gene model †)" if per_gene else name
        lines.append(f"| {label} | {cell[0][0]} | {cell[0][1]} | {cell[1][0]} | {cell[1][1]} |")
    return lines + ([""] + [PER_GENE_NOTE] if marked else []) + [""]


# On significant eQTL pairs, as the headline (hapexp.verdict.concordance.ism_headline):
# r of ISM with the slopes and sign agreement over them, and the top-k |ISM| variants
# backed by one.
BEFORE_AFTER_METRICS = ("ism_eqtl_r_sig", "sign_agree_sig", "supported_fraction")
CONCORDANCE_BEFORE_AFTER = ["model", "before", "gene_split", "n_genes"] + [
    f"{m}_{when}" for m in BEFORE_AFTER_METRICS for when in ("before", "after")
]


def concordance_before_after(
    concordance: dict[str, pd.DataFrame], starts: dict[str, str | None], gene_split: dict[str, list[str]]
) -> pd.DataFrame:
    """ISM/eQTL concordance of each fine-tuned model beside the model it started from
    (`starts`: fine-tuned model → its finetune.init), per gene split (`read_splits`' genes:
    train/test → gene ids), as medians over the genes where both have an ISM–eQTL r on
    significant eQTL pairs (`BEFORE_AFTER_METRICS`; the same genes before and after)."""
    rows = []
    split_of = {g: part for part, ids in gene_split.items() for g in ids}
    for model, before in starts.items():
        if before is None or model not in concordance or before not in concordance:
            continue
        a = concordance[before].set_index("gene_id")
        b = concordance[model].set_index("gene_id")
        genes = a.index[a["ism_eqtl_r_sig"].notna()].intersection(b.index[b["ism_eqtl_r_sig"].notna()])
        for part in ("train", "test"):
            g = [x for x in genes if split_of.get(x) == part]
            row = {"model": model, "before": before, "gene_split": part, "n_genes": len(g)}
            for col in BEFORE_AFTER_METRICS:
                row[f"{col}_before"] = float(a.loc[g, col].median()) if g else np.nan
                row[f"{col}_after"] = float(b.loc[g, col].median()) if g else np.nan
            rows.append(row)
    return pd.DataFrame(rows, columns=CONCORDANCE_BEFORE_AFTER)


def concordance_markdown(table: pd.DataFrame, starts: dict[str, str | None]) -> list[str]:
    """The summary.md table of `concordance_before_after` (fine-tuned models only)."""
    if not starts:
        return []
    lines = [
        "### ISM/eQTL concordance before and after fine-tuning",
        "",
        "Medians over the genes where both models have an ISM–eQTL r on significant eQTL pairs "
        "(all people's eQTLs; concordance/{model}.tsv `ism_eqtl_r_sig`): r of ISM with the slopes "
        "of the significant pairs, sign agreement over those pairs, fraction of the top-k |ISM| "
        "variants backed by a significant eQTL of the same sign.",
        "",
        "| model | started from | genes | n | ISM–eQTL r (sig. pairs) before → after | sign agreement (sig. pairs) "
        "| supported fraction |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    names = {"train": "training", "test": "held-out"}

    def pair(r, col):
        return f"{r[col + '_before']:.3f} → {r[col + '_after']:.3f}" if r["n_genes"] else "–"

    for r in table.to_dict("records"):
        lines.append(
            f"| {r['model']} | {r['before']} | {names[r['gene_split']]} | {r['n_genes']} | "
            f"{pair(r, 'ism_eqtl_r_sig')} | {pair(r, 'sign_agree_sig')} | {pair(r, 'supported_fraction')} |"
        )
    for model, before in starts.items():
        if before is None:
            lines.append(
                f"| {model} | (its own random initialisation: set finetune.init to compare) | | | | | |"
            )
    return lines + [""]


def _tissue_scored(tissues, tissue: str) -> bool:
    """False when `tissue` (of a cohort with tissues) has fewer test people than
    splits.min_test_people (rule splits' per-tissue table `tissues`): it is reported there,
    not scored."""
    if tissues is None or not tissue:
        return True
    row = pd.read_csv(tissues, sep="\t", dtype={"tissue": str}).set_index("tissue").loc[tissue]
    if not bool(row["scored"]):
        log.warning(
            "tissue %s: %d test people, below splits.min_test_people: not scored", tissue, row["test"]
        )
        return False
    return True


def run_split_verdict_elasticnet(prepared, individuals, genes_split, chunk, vcf, elasticnet, cfg: dict,
                                 threads: int = 1, tissues=None, tissue: str = "") -> pd.DataFrame:  # fmt: skip
    """Rule `split_verdict_elasticnet`: the per-gene part of the verdict on the splits for one
    `chunk` of genes (chunks/{chunk}.tsv, those of the gene split `genes_split`): the elastic
    net fitted on the training people (`individuals`) against the split-aware `prepared`
    expression, on the cis dosages of the normalized `vcf` (`cfg`: the validated config's
    elasticnet, models and variants blocks); writes its genes × people predictions
    (`elasticnet`). Each gene's fit depends on that gene alone (its window, its seeded
    folds), so rule split_verdict's gather of the chunks is the fit of every gene at once.
    A tissue not scored (`tissues`, `tissue`: `_tissue_scored`) is not fitted: no rows.
    `threads`: BLAS threads."""
    from threadpoolctl import threadpool_limits

    from hapexp.io import read_matrix, write_matrix
    from hapexp.training.splits import read_splits
    from hapexp.variants.genotypes import cis_dosages
    from hapexp.variants.windows import resolve_window

    if not _tissue_scored(tissues, tissue):
        write_matrix(pd.DataFrame(index=pd.Index([], name="gene_id")), elasticnet)
        return None
    expr = read_matrix(prepared)
    people, _ = read_splits(individuals, genes_split)
    split_ids = pd.read_csv(genes_split, sep="\t", dtype={"gene_id": str, "chrom": str})["gene_id"]
    table = pd.read_csv(chunk, sep="\t", dtype={"gene_id": str, "chrom": str})
    table = table[table["gene_id"].isin(split_ids)]
    en = cfg["elasticnet"]
    window = resolve_window(en["window"], cfg["models"])
    with threadpool_limits(limits=max(1, int(threads))):
        dosages, table = cis_dosages(
            vcf, table, window, list(expr.columns), en["maf"], cfg["policies"], en["predictdb_exclusions"]
        )
        linear = elasticnet_on_training_people(
            dosages, table, expr, people["train"], alpha=en["alpha"], inner_folds=en["inner_folds"],
            seed=en["seed"], thresh=en["thresh"],
        )  # fmt: skip
    write_matrix(linear, elasticnet)
    log.info("elastic net on %d training people: %d genes", len(people["train"]), len(linear))
    return linear


def run_split_verdict(prepared, covariates, individuals, genes_split, elasticnet_chunks, matrices, heads, precision,
                      performance, verdict, elasticnet, models: list[str], head_names: list[str], cfg: dict,
                      per_gene: list[str] = (), threads: int = 1, tissues=None, tissue: str = ""):  # fmt: skip
    """Rule `split_verdict`: the gather of rule split_verdict_elasticnet's chunks
    (`elasticnet_chunks`: the elastic net on the training people, in chunk order = the
    genes' order) into `elasticnet`, then every predictor (the `matrices` of `models`, the
    `heads` named `head_names`, that elastic net) on the test people (`individuals`), with
    the genes labelled by `genes_split`: writes the per-gene `performance` table and the
    `verdict` summary. The statistics across genes (the shared gene set, BH FDR, the
    summaries) see every gene here. `cfg`: the models' floors (None: measured by the
    predict jobs' `precision` tables, margin `noise_z`) and performance's residualize_predictions;
    `per_gene`: the heads fitted gene by gene (marked in the tables with the elastic net:
    PER_GENE_NOTE); `threads`: BLAS threads. `tissues`: rule splits' per-tissue counts; a
    `tissue` (of a cohort with tissues) with fewer test people than splits.min_test_people
    is reported there, not scored: empty tables here."""
    from threadpoolctl import threadpool_limits

    from hapexp.io import concat_tsv, read_matrix, write_matrix, write_tsv
    from hapexp.training.splits import read_splits

    if not _tissue_scored(tissues, tissue):
        write_matrix(pd.DataFrame(index=pd.Index([], name="gene_id")), elasticnet)
        write_tsv(pd.DataFrame(columns=["gene_id", "predictor", "gene_split", *PERFORMANCE_COLUMNS[2:]]),
                  performance)  # fmt: skip
        write_tsv(pd.DataFrame(columns=SUMMARY_COLUMNS), verdict)
        return None, None
    expr = read_matrix(prepared)
    cov = read_matrix(covariates, index_col="id")
    people, _ = read_splits(individuals, genes_split)
    gene_split = pd.read_csv(genes_split, sep="\t", dtype={"gene_id": str, "chrom": str})
    # the chunks' rows as written, one file at a time (the values below are read from it)
    n_genes = concat_tsv(list(elasticnet_chunks), elasticnet)
    with threadpool_limits(limits=max(1, int(threads))):
        preds = {m: read_matrix(p) for m, p in zip(models, matrices, strict=True)}
        preds.update({name: read_matrix(p) for name, p in zip(head_names, heads, strict=True)})
        preds[ELASTICNET] = read_matrix(elasticnet)
        # one floor rule for every predictor: reduced-precision models' measured by their
        # predict jobs' audits, float64 predictors' (heads, this elastic net) float64's
        floors = resolve_floors(cfg["floors"], list(precision), preds, cfg.get("noise_z", NOISE_Z),
                                n_people=len(people["test"]))  # fmt: skip
        perf = split_performance(expr, preds, people, gene_split, cov, floors, cfg["residualize"])
    summary = summarize_splits(perf, per_gene=[ELASTICNET, *per_gene])
    write_tsv(perf, performance)
    write_tsv(summary, verdict)
    log.info("elastic net on the training people: %d genes from %d chunks", n_genes, len(elasticnet_chunks))
    log.info("verdict on the splits:\n%s", summary.to_string())
    return perf, summary
