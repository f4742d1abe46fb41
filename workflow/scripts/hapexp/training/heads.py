"""Track-combination heads (Sasse et al. 2023): linear read-outs of *all* of a model's tracks.

From a model's every track at the TSS bins (predict with `store_all_tracks: true`:
`predict/{model}/{chunk}.tracks.npz`, one row per unique haplotype, each track
aggregated over the read-out's central bins and log-transformed as the model's read-out
is), a person's feature vector for a gene is the haplotype aggregation (mean or sum) of
their two haplotypes' rows. Two heads, both fitted on the **training people only**
(hapexp.training.splits), then applied to everyone:

- per gene (`gene`): an elastic net across people (`hapexp.linear.elasticnet.fit_predict_on`:
  glmnet path, λ by cv.glmnet over seeded folds of the training people) of the gene's
  prepared expression on its track features; one job per gene chunk (rule
  track_heads_gene), gathered by rule track_heads;
- across genes (`crossgene`): one ridge regression for all training genes — features
  centred per gene over the training people and scaled by their pooled SD, the target
  the expression standardized per gene — whose weights apply to any gene, held-out
  genes included. It needs every training gene at once, so it is fitted in the gather
  (rule track_heads). Accumulating X'X and X'y chunk by chunk would give the same ridge
  in exact arithmetic, but not the same floating-point sums as the one solve.

Their predictions enter the verdict on the splits beside the models they read.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from hapexp.config.schema import with_defaults
from hapexp.linear.elasticnet import fit_predict_on, scale_expression

log = logging.getLogger(__name__)


def person_features(
    npz_paths, samples: list[str], haplotype_aggregation: str = "mean"
) -> dict[str, np.ndarray]:
    """gene → (people, tracks) features from the all-tracks files, people in `samples` order."""
    out = {}
    for path in npz_paths:
        z = np.load(path, allow_pickle=False)
        if not bool(z["enabled"]):
            raise ValueError(f"{path}: no tracks stored; set store_all_tracks: true on the model")
        col = {s: i for i, s in enumerate(z["samples"].astype(str))}
        missing = [s for s in samples if s not in col]
        if missing:
            raise ValueError(f"{path}: {len(missing)} people missing (e.g. {missing[0]!r})")
        order = np.array([col[s] for s in samples])
        values, offsets = z["values"].astype(np.float64), z["offsets"]
        for k, gid in enumerate(z["gene_ids"].astype(str)):
            rows = values[offsets[k] : offsets[k + 1]][z["hap_rows"][k][order]]  # (people, 2, T)
            out[gid] = rows.mean(1) if haplotype_aggregation == "mean" else rows.sum(1)
    return out


def per_gene_head(features: dict, expression: pd.DataFrame, train: list[str], *, alpha, inner_folds, seed):
    """genes × people predictions of an elastic net per gene fitted on the training people
    (`fit_predict_on`), on the tracks that vary across them."""
    samples = list(expression.columns)
    tr = np.isin(samples, train)
    out = {}
    for gid, x in features.items():
        if gid not in expression.index:
            continue
        keep = x[tr].std(0) > 0
        out[gid] = fit_predict_on(
            x[:, keep],
            expression.loc[gid].to_numpy(float),
            tr,
            gid,
            alpha=alpha,
            inner_folds=inner_folds,
            seed=seed,
        )
    return _frame(out, samples)


def crossgene_head(
    features: dict, expression: pd.DataFrame, train: list[str], train_genes: list[str], ridge=1.0
):
    """(genes × people predictions, weights) of one ridge across the training genes."""
    samples = list(expression.columns)
    tr = np.isin(samples, train)

    def centred(x):
        return x - x[tr].mean(0)

    genes = [g for g in train_genes if g in features and g in expression.index]
    if not genes:
        raise ValueError("no training gene has track features and expression")
    xs = np.concatenate([centred(features[g])[tr] for g in genes])
    sd = xs.std(0)
    sd[sd == 0] = 1.0
    ys = np.concatenate([scale_expression(expression.loc[g].to_numpy(float)[tr]) for g in genes])
    xs = xs / sd
    # penalty per row (glmnet-style 1/n scaling): the same ridge means the same shrinkage for any cohort size
    w = np.linalg.solve(xs.T @ xs + float(ridge) * len(ys) * np.eye(xs.shape[1]), xs.T @ ys)
    out = {g: (centred(x) / sd) @ w for g, x in features.items() if g in expression.index}
    return _frame(out, samples), w


def _frame(rows: dict, samples: list[str]) -> pd.DataFrame:
    df = pd.DataFrame.from_dict(rows, orient="index", columns=samples)
    df.index.name = "gene_id"
    return df


def run_track_heads_gene(tracks, prepared, individuals, genes, gene_matrix, spec: dict, cfg: dict,
                         threads: int = 1) -> pd.DataFrame:  # fmt: skip
    """Rule `track_heads_gene`: the per-gene head of one model for one chunk (`tracks`: the
    chunk's all-tracks file), fitted on the training people (`individuals`, `genes`: the
    splits) against the split-aware `prepared` expression; writes its genes × people
    predictions (`gene_matrix`). A gene's head reads that gene's features alone (its seeded
    folds too), so rule track_heads' gather of the chunks is the fit of every gene at once.
    `threads`: BLAS threads of the job."""
    from threadpoolctl import threadpool_limits

    from hapexp.io import read_matrix, write_matrix
    from hapexp.training.splits import read_splits

    cfg = with_defaults("heads.*", cfg)
    expr = read_matrix(prepared)
    people, _ = read_splits(individuals, genes)
    with threadpool_limits(limits=max(1, int(threads))):
        feats = person_features([tracks], list(expr.columns), spec["haplotype_aggregation"])
        per_gene = per_gene_head(
            feats, expr, people["train"], alpha=cfg["alpha"], inner_folds=cfg["inner_folds"], seed=cfg["seed"]
        )
    write_matrix(per_gene, gene_matrix)
    log.info("per-gene head: %d genes, %d training people", len(per_gene), len(people["train"]))
    return per_gene


def run_track_heads(tracks, gene_chunks, prepared, individuals, genes, gene_matrix, crossgene_matrix,
                    crossgene_weights, spec: dict, cfg: dict, threads: int = 1) -> None:  # fmt: skip
    """Rule `track_heads`: the per-gene head's chunks (`gene_chunks`, rule track_heads_gene, in
    chunk order) gathered into `gene_matrix`, and the cross-gene head of one model from
    every chunk's all-track file (`tracks`): one ridge over the training genes × training
    people (`individuals`, `genes`: the splits) against the split-aware `prepared`
    expression, which needs every gene at once; writes its genes × people matrix
    (`crossgene_matrix`) and its weights per track (`crossgene_weights`). `threads`: BLAS
    threads of the job."""
    from threadpoolctl import threadpool_limits

    from hapexp.io import concat_tsv, read_matrix, write_matrix, write_tsv
    from hapexp.training.splits import read_splits

    cfg = with_defaults("heads.*", cfg)
    expr = read_matrix(prepared)
    people, gene_split = read_splits(individuals, genes)
    samples = list(expr.columns)
    with threadpool_limits(limits=max(1, int(threads))):
        feats = person_features(list(tracks), samples, spec["haplotype_aggregation"])
        names = np.load(tracks[0], allow_pickle=False)["track_names"].astype(str)
        cross, w = crossgene_head(feats, expr, people["train"], gene_split["train"], cfg["ridge"])
    n_gene = concat_tsv(list(gene_chunks), gene_matrix)
    write_matrix(cross, crossgene_matrix)
    write_tsv(
        pd.DataFrame({"track": np.arange(len(w)), "track_name": names[: len(w)], "weight": w}),
        crossgene_weights,
    )
    log.info("heads on %d tracks: %d genes (per-gene head: %d), %d training people", len(w), len(feats), n_gene,
             len(people["train"]))  # fmt: skip
