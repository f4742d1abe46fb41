"""Train/validation/test splits of individuals and train/test splits of genes (rule `splits`).

Every predictor that is trained on the cohort (the fine-tuned models, the
track-combination head, the split verdict's elastic net) reads these two tables, so
all of them learn from the same people and genes and are judged on the same
held-out ones.

Individuals: a seeded random split into train / validation / test. With a grouping
column from a sample sheet (e.g. population), whole groups go to the test set
(`test_groups`, or groups drawn at random until the test fraction is reached):
transfer to an ancestry never seen in training. Validation people (early stopping)
are drawn from the remaining individuals.

Genes: by chromosome by default — whole chromosomes are held out, so paralogs in a
cluster and genes sharing regulatory regions cannot sit on both sides. A cohort
with a single chromosome cannot be split that way; its genes are split at random
(seeded; `unit` says so in the table and the log warns).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from hapexp.config.schema import with_defaults
from hapexp.errors import InputError

log = logging.getLogger(__name__)


def _n_of(fraction: float, n: int, name: str) -> int:
    if not 0 <= fraction < 1:
        raise InputError(
            "config", f"splits.{name}={fraction} is not in [0, 1)", f"set splits.{name} to e.g. 0.2"
        )
    return int(round(fraction * n))


def read_groups(path, column: str, samples: list[str]) -> pd.Series:
    """sample → group from a sample sheet (TSV with a `sample` column and `column`)."""
    sheet = pd.read_csv(path, sep="\t", dtype=str)
    for need in ("sample", column):
        if need not in sheet.columns:
            raise InputError(
                path,
                f"the sample sheet has no column {need!r} (columns: {list(sheet.columns)})",
                "give a TSV with a `sample` column and the grouping column named by splits.group_column",
            )
    if sheet["sample"].duplicated().any():
        dup = sheet.loc[sheet["sample"].duplicated(), "sample"].iloc[0]
        raise InputError(
            path, f"sample {dup!r} is listed twice", "keep one row per sample", where=f"sample {dup}"
        )
    groups = sheet.set_index("sample")[column]
    missing = [s for s in samples if s not in groups.index or pd.isna(groups.get(s))]
    if missing:
        raise InputError(
            path,
            f"{len(missing)} analysed samples have no {column!r} value (e.g. {missing[0]!r})",
            "add a row (and a group) for every sample of the cohort",
        )
    return groups.reindex(samples)


def _stratified_pick(rng, candidates: np.ndarray, strata: np.ndarray | None, k: int) -> np.ndarray:
    """k of `candidates` (indices) at random; with `strata` (one label per person), each
    stratum gets its share of k (largest remainders; ties in sorted stratum order)."""
    if strata is None:
        return rng.permutation(candidates)[:k]
    labels = strata[candidates]
    names = sorted(set(labels))
    sizes = np.array([(labels == s).sum() for s in names], dtype=float)
    exact = k * sizes / max(sizes.sum(), 1)
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[: k - int(take.sum())]:
        take[i] += 1
    return np.concatenate(
        [rng.permutation(candidates[labels == s])[:t] for s, t in zip(names, take, strict=True)] or [[]]
    ).astype(int)


def split_individuals(
    samples: list[str], cfg: dict, groups: pd.Series | None = None, strata: pd.Series | None = None
) -> pd.DataFrame:
    """Table sample, group, split (train | validation | test), in `samples` order.

    Seeded (`cfg['seed']`): the same config and samples give the same table. `strata`
    (sample → label, e.g. which tissues a person has and their sex): test and validation
    people drawn in proportion from each stratum, so that every tissue and sex keeps its
    share of test people.
    """
    cfg = with_defaults("splits", cfg)
    samples = [str(s) for s in samples]
    n = len(samples)
    rng = np.random.default_rng(int(cfg["seed"]))
    st = None if strata is None else strata.reindex(samples).astype(str).to_numpy()
    split = np.full(n, "train", dtype=object)
    n_test = _n_of(cfg["test_fraction"], n, "test_fraction")
    if groups is not None:
        g = groups.reindex(samples).astype(str).to_numpy()
        names = sorted(set(g))
        if cfg["test_groups"]:
            unknown = [x for x in cfg["test_groups"] if str(x) not in names]
            if unknown:
                raise InputError(
                    "config",
                    f"splits.test_groups {unknown} are not groups of the cohort",
                    f"use some of {names}",
                )
            test_groups = {str(x) for x in cfg["test_groups"]}
        else:
            test_groups, count = set(), 0
            for name in rng.permutation(names):
                if count >= max(n_test, 1):
                    break
                test_groups.add(str(name))
                count += int((g == name).sum())
        if test_groups >= set(names):
            raise InputError(
                "config",
                "every group would be held out for testing",
                "hold out fewer groups (splits.test_groups)",
            )
        split[np.isin(g, sorted(test_groups))] = "test"
    else:
        g = np.full(n, "", dtype=object)
        split[_stratified_pick(rng, np.arange(n), st, n_test)] = "test"
    rest = np.flatnonzero(split == "train")
    n_val = _n_of(cfg["validation_fraction"], n, "validation_fraction")
    split[_stratified_pick(rng, rest, st, n_val)] = "validation"
    n_train = int((split == "train").sum())
    if n_train < 3 or not (split == "test").any():
        raise InputError(
            "config",
            f"the split leaves {n_train} training and {int((split == 'test').sum())} test individuals of {n}",
            "lower splits.test_fraction / validation_fraction or use a larger cohort",
        )
    return pd.DataFrame({"sample": samples, "group": g, "split": split})


def split_genes(genes: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """Table gene_id, chrom, split (train | test), unit (chromosome | gene), in `genes` order."""
    cfg = with_defaults("splits", cfg)
    gcfg = cfg["genes"]
    rng = np.random.default_rng(int(cfg["seed"]) + 1)  # independent of the individuals' draw
    chrom = genes["chrom"].astype(str).to_numpy()
    n = len(genes)
    n_test = max(1, _n_of(gcfg["test_fraction"], n, "genes.test_fraction"))
    chroms = list(dict.fromkeys(chrom))
    by = gcfg["by"]
    if by not in ("chromosome", "gene"):
        raise InputError("config", f"splits.genes.by={by!r}", "use chromosome or gene")
    split = np.full(n, "train", dtype=object)
    if gcfg["test_chromosomes"]:
        want = [str(c) for c in gcfg["test_chromosomes"]]
        unknown = [c for c in want if c not in chroms]
        if unknown:
            raise InputError(
                "config", f"splits.genes.test_chromosomes {unknown} hold no gene", f"use some of {chroms}"
            )
        split[np.isin(chrom, want)] = "test"
        unit = "chromosome"
    elif by == "chromosome" and len(chroms) > 1:
        count, test = 0, []
        for c in rng.permutation(chroms):
            if count >= n_test or len(test) == len(chroms) - 1:
                break
            test.append(str(c))
            count += int((chrom == c).sum())
        split[np.isin(chrom, test)] = "test"
        unit = "chromosome"
    else:
        if by == "chromosome":
            log.warning(
                "all %d genes lie on one chromosome (%s): genes are split at random (seed %s), so genes "
                "sharing regulatory regions may sit on both sides",
                n, chroms[0] if chroms else "-", cfg["seed"],
            )  # fmt: skip
        split[rng.permutation(n)[:n_test]] = "test"
        unit = "gene"
    if (split == "train").sum() == 0 or (split == "test").sum() == 0:
        raise InputError(
            "config",
            f"the gene split leaves {int((split == 'train').sum())} training and {int((split == 'test').sum())} test genes",
            "hold out fewer chromosomes or use more genes",
        )
    return pd.DataFrame(
        {"gene_id": genes["gene_id"].astype(str).to_numpy(), "chrom": chrom, "split": split, "unit": unit}
    )


def read_splits(individuals_path, genes_path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """({train, validation, test: samples}, {train, test: genes}) from the rule's tables."""
    ind = pd.read_csv(individuals_path, sep="\t", dtype={"sample": str, "group": str})
    gen = pd.read_csv(genes_path, sep="\t", dtype={"gene_id": str, "chrom": str})
    people = {s: ind.loc[ind["split"] == s, "sample"].tolist() for s in ("train", "validation", "test")}
    genes = {s: gen.loc[gen["split"] == s, "gene_id"].tolist() for s in ("train", "test")}
    return people, genes


def _sheet_column(cfg: dict, key: str, samples: list[str]) -> pd.Series | None:
    """sample → the sample sheet's column named by splits.<key> (None when unset)."""
    if not cfg[key]:
        return None
    if not cfg["sample_sheet"]:
        raise InputError("config", f"splits.{key} is set but splits.sample_sheet is not", "give the sample sheet TSV")
    return read_groups(cfg["sample_sheet"], cfg[key], samples)


def tissue_strata(has: pd.DataFrame, sex: pd.Series | None) -> pd.Series | None:
    """sample → stratum: the set of tissues a person has (`has`: people × tissues, bool)
    and their sex; None when there is one tissue and no sex (the plain random split)."""
    parts = []
    if has.shape[1] > 1:
        parts.append(has.apply(lambda r: "+".join(t for t in has.columns if r[t]), axis=1))
    if sex is not None:
        parts.append(sex.reindex(has.index).astype(str))
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out = out + "|" + p
    return out


def tissue_table(people: pd.DataFrame, has: pd.DataFrame, min_test: int) -> pd.DataFrame:
    """Per tissue: people in each split, and whether its test people reach `min_test`
    (a tissue below is reported, not scored in the split verdict)."""
    split = people.set_index("sample")["split"]
    rows = []
    for t in has.columns:
        s = split[has.index[has[t].to_numpy()]]
        n = {k: int((s == k).sum()) for k in ("train", "validation", "test")}
        rows.append({"tissue": t, "people": int(len(s)), **n, "scored": n["test"] >= min_test})
    return pd.DataFrame(rows, columns=["tissue", "people", "train", "validation", "test", "scored"])


def run_splits(genes, prepared, individuals, genes_split, tissues_out, cfg: dict, tissues=("",)):
    """Rule `splits`: the people and genes (those with a gene-table row) of the prepared
    expression of every tissue of the cohort (`prepared`, one per name in `tissues`; "" = the
    implicit one) into the files `individuals` and `genes_split` — one split shared by all
    tissues, stratified by the tissues each person has (and sex, splits.sex_column) — and the
    per-tissue counts `tissues_out` (`tissue_table`)."""
    from hapexp.io import read_matrix, write_tsv

    cfg = with_defaults("splits", cfg)
    prepared = [prepared] if isinstance(prepared, (str, Path)) else list(prepared)
    exprs = [read_matrix(p) for p in prepared]
    table = pd.read_csv(genes, sep="\t", dtype={"gene_id": str, "chrom": str})
    genes_any = set().union(*(e.index for e in exprs))
    kept = table[table["gene_id"].isin(genes_any)].sort_values(["chrom", "tss", "gene_id"], kind="stable")
    samples = list(dict.fromkeys(s for e in exprs for s in e.columns))
    has = pd.DataFrame({t: pd.Index(samples).isin(e.columns) for t, e in zip(tissues, exprs, strict=True)},
                       index=samples)  # fmt: skip
    sex, groups = (_sheet_column(cfg, key, samples) for key in ("sex_column", "group_column"))
    people = split_individuals(samples, cfg, groups, tissue_strata(has, sex))
    gsplit = split_genes(kept, cfg)
    per_tissue = tissue_table(people, has, int(cfg["min_test_people"]))
    write_tsv(people, individuals)
    write_tsv(gsplit, genes_split)
    write_tsv(per_tissue, tissues_out)
    log.info(
        "individuals: %s; genes (by %s): %s",
        people["split"].value_counts().to_dict(), gsplit["unit"].iloc[0], gsplit["split"].value_counts().to_dict(),
    )  # fmt: skip
    for r in per_tissue.itertuples():
        (log.info if r.scored else log.warning)(
            "tissue %s: %d people (train %d, validation %d, test %d)%s", r.tissue or "(the cohort's)", r.people,
            r.train, r.validation, r.test, "" if r.scored else f": fewer than {cfg['min_test_people']} test people, not scored",
        )  # fmt: skip
    return people, gsplit


def run_prepare_split_expression(individuals, prepared_split, covariates_split, cohort: dict, transform: str,
                                 n_pcs: int, genotype_pcs=None) -> None:  # fmt: skip
    """Rule `prepare_split_expression`: the expression that everything trained on the cohort
    fits on and is judged by (fine-tuning, the heads, the split verdict). The people of
    `individuals` (rule splits, in its order), their expression transformed, with `n_pcs`
    expression PCs, and residualized on the covariates (+ the `genotype_pcs` of rule
    genotype_pcs when on: from everyone's genotypes, no expression in them), every step
    *fitted on the training people* and applied to the validation and test people
    (`hapexp.inputs.expression.prepare_expression` with `fit_samples`); writes the residuals
    (`prepared_split`) and the covariates used (`covariates_split`: held-out people's PCs
    projected on the training loadings)."""
    from hapexp.inputs.expression import prepare_expression
    from hapexp.inputs.formats import read_covariates, read_expression, read_sample_list
    from hapexp.io import read_matrix, write_matrix

    table = pd.read_csv(individuals, sep="\t", dtype={"sample": str, "group": str})
    expr = read_expression(cohort["expression"], cohort["expression_format"])
    if cohort.get("tissue"):  # one tissue of several: the split's people this tissue has
        wanted = set(read_sample_list(cohort["samples"])) if cohort.get("samples") else None
        table = table[table["sample"].isin(expr.columns) & (table["sample"].isin(wanted) if wanted else True)]
    samples = table["sample"].tolist()
    train = table.loc[table["split"] == "train", "sample"].tolist()
    missing = [s for s in samples if s not in expr.columns]
    if missing:
        raise InputError(
            individuals,
            f"{len(missing)} people of the split have no expression (e.g. {missing[0]!r})",
            "rerun rule splits for this cohort",
        )
    cov = read_covariates(cohort["covariates"]) if cohort.get("covariates") else None
    residuals, used, _ = prepare_expression(
        expr, cov, transform=transform, n_pcs=n_pcs, samples=samples,
        expression_path=cohort["expression"], covariates_path=cohort.get("covariates") or "covariates",
        fit_samples=train,
        genotype_pcs=read_matrix(genotype_pcs, index_col="id") if genotype_pcs else None,
        genotype_pcs_path=genotype_pcs or "genotype_pcs",
    )  # fmt: skip
    log.info(
        "split-aware preparation fitted on %d training people, applied to %d others: %d genes, %d covariates",
        len(train), len(samples) - len(train), residuals.shape[0], used.shape[0],
    )  # fmt: skip
    write_matrix(used, covariates_split, index_col="id")
    write_matrix(residuals, prepared_split)


TRANSFORM_WORDS = {
    "inverse_normal": "the inverse-normal transform (held-out values: their mid-rank among the training "
    "people's values — a tie takes the training value's rank, a value beyond the training extremes half a "
    "rank further)",
    "zscore": "the z-score (the training people's mean and SD)",
    "none": "no transform",
}


def splits_lines(people: dict, genes_split, stated: dict) -> list[str]:
    """summary.md's statement of how the split verdict's, fine-tuning's and the heads' expression
    was prepared (split-aware, fitted on the training people), whether the cohort's expression
    was already corrected upstream on all people (`cohorts.<c>.expression_corrected_upstream`),
    and how the genes were split (a random gene split of a one-chromosome cohort said plainly).
    `people`: `read_splits`' people; `genes_split`: rule splits' gene table (path);
    `stated`: rule summary's `stated` params (expression block, covariates given, seed)."""
    table = pd.read_csv(genes_split, sep="\t", dtype={"gene_id": str, "chrom": str})
    n_pcs = int(stated["expression"]["n_pcs"])
    covs = (["the user covariates"] if stated["covariates"] else []) + (
        [f"{n_pcs} expression PCs (held-out people projected on the training loadings)"] if n_pcs else []
    )
    regression = f"the regression on {' and '.join(covs)}" if covs else "the centring (no covariates)"
    n_train, n_other = len(people["train"]), len(people["validation"]) + len(people["test"])
    lines = [
        "### Expression of the split verdict, fine-tuning and heads",
        "",
        f"- Split-aware preparation (expression/prepared_split.tsv): "
        f"{TRANSFORM_WORDS[stated['expression']['transform']]} and {regression} are fitted on the "
        f"{n_train} training people and applied to the {n_other} validation and test people, so what "
        "fine-tuning, the heads and the elastic net on the training people fit on does not depend on a "
        "held-out person's expression. The main tables above keep the all-people preparation "
        "(expression/prepared.tsv): no model is fitted on it but the elastic net, whose nested "
        "cross-validation adjusts expression on all people before its folds, as PredictDB's pipeline does "
        "(pretrained models and PredictDB are only scored; fine-tuned models and heads are fitted on the "
        "split-aware preparation).",
    ]
    if stated["expression_corrected_upstream"]:
        lines.append(
            "- **The cohort's expression was corrected upstream on all people** "
            "(`expression_corrected_upstream: true`, e.g. Geuvadis' PEER-residualized file or GTEx's PEER "
            "covariates): those factors were estimated from every person's expression, the test people's "
            "included. The split-aware preparation cannot undo that: the training targets of the split "
            "verdict, fine-tuning and the heads still carry some information from the test people through it."
        )
    unit = table["unit"].iloc[0] if len(table) else "chromosome"
    chroms = list(dict.fromkeys(table["chrom"]))
    held = table.loc[table["split"] == "test"]
    counts = f"{int((table['split'] == 'train').sum())} training and {len(held)} held-out genes"
    if unit == "gene" and len(chroms) == 1:
        lines.append(
            f"- **Genes split at random, not by chromosome**: all {len(table)} genes lie on one chromosome "
            f"({chroms[0]}), so the gene split is a seeded random draw (splits.seed {stated['splits_seed']}; "
            f"{counts}). Neighbouring genes and paralogs sharing regulatory regions can sit on both sides: "
            '"held-out genes" are less independent of the training genes than with a chromosome split.'
        )
    elif unit == "gene":
        lines.append(
            f"- Genes split at random (splits.genes.by: gene, seed {stated['splits_seed']}; {counts}): "
            "neighbouring genes can sit on both sides."
        )
    else:
        lines.append(
            f"- Genes split by chromosome ({counts}); held out: {', '.join(dict.fromkeys(held['chrom']))}."
        )
    return lines + [""]
