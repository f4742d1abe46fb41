"""The precision audit of a job: the audited genes re-run in strict fp32 and in each candidate
precision, the budget measured (hapexp.engine.precision), the precision used chosen.

`audit_predict` for rule predict (tidy predictions of the genes' haplotypes),
`audit_ism` for rule ism (the raw read-outs of the genes' variants, and the noise floor);
both try the candidates in order through `try_candidates`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from hapexp.config.schema import with_defaults
from hapexp.engine.precision import (
    STATIC_FLOOR,
    audit_genes,
    budget_holds,
    choose,
    finish,
    ism_budget,
    measure_floor,
    predict_budget,
)

log = logging.getLogger(__name__)


def try_candidates(candidates, requested: str, set_precision: Callable, measure: Callable):
    """Measure each candidate precision in order (`measure(p)` → its budget table, or None when
    nothing could be measured) until one is chosen: the configured one, or for `auto` the
    first whose budget holds (fp32 holds unmeasured). Leaves the chosen precision set;
    returns ([(precision, table)], precision used)."""
    trials = []
    for p in candidates:
        if p == "fp32":
            trials.append((p, None))
            break
        set_precision(p)
        table = measure(p)
        trials.append((p, table))
        if requested != "auto" or (table is not None and budget_holds(table)):
            break
    used = choose(trials, requested)
    set_precision(used)
    return trials, used


def audit_predict(index, predictor, audit_cfg: dict | None = None, model: str = "model", exons=None):
    """Precision budget of `predict` for one job (a hapexp.engine.predictor.Predictor); sets the
    precision used.

    Re-runs the audited genes (all their unique haplotypes and the reference) in strict
    fp32 and in each candidate precision; the configured one is used, or for `auto`
    the first candidate whose budget holds. Returns the budget table (empty in fp32).
    """
    # imported here: hapexp.engine.predict (rule predict's job) imports this module
    from hapexp.engine.predict import predict_chunk

    if predictor.candidates == ("fp32",):
        predictor.set_precision("fp32")
        return finish([], "fp32", model)
    cfg = with_defaults("precision_audit", audit_cfg)
    agg = predictor.spec["haplotype_aggregation"]
    sample = audit_genes(index.genes["gene_id"], cfg["fraction"], cfg["min_genes"])
    with predictor.strict():
        strict, _ = predict_chunk(index, predictor, genes=sample, progress=False, exons=exons)

    def measure(p):
        reduced, _ = predict_chunk(index, predictor, genes=sample, progress=False, exons=exons)
        return predict_budget(reduced, strict, agg, cfg["max_noise_ratio"])

    trials, used = try_candidates(predictor.candidates, predictor.requested, predictor.set_precision, measure)
    table = finish(trials, used, model)
    log.info(
        "precision: %s (tried %s); %d of %d audited genes flagged in %s",
        used, "/".join(p for p, _ in trials), int(table.loc[table["used"], "flagged"].sum()),
        len(sample), used,
    )  # fmt: skip
    return table


def audit_ism(index, readout, values: Callable, audit_cfg: dict | None, model: str):
    """Precision budget of ISM: the audited genes' variants in strict fp32 and in each
    candidate precision; returns (table, precision used, floor, {gene: raw values in the
    precision used}).

    `readout`: the engine's read-out (hapexp.engine.ism.EngineReadout); `values(gene, fn)`:
    the gene's raw read-outs with `fn` (hapexp.engine.ism.gene_values), or with fn None
    whether the gene has variants to score."""
    cfg = with_defaults("precision_audit", audit_cfg)
    # the error of the path that computes the scores (reference reuse) is in both runs alike:
    # added to the measured floor and to fp32's (hapexp.engine.ism.EngineReadout.path_error)
    path = float(getattr(readout, "path_error", 0.0))
    genes = index.genes.set_index("gene_id", drop=False)
    with_variants = [g for g in genes["gene_id"] if values(genes.loc[g], None) is not None]
    sample = audit_genes(with_variants, cfg["fraction"], cfg["min_genes"])
    if not sample:
        log.warning("ISM precision audit: no gene of this job has variants to score; static floor")
    with readout.strict():
        strict = {g: values(genes.loc[g], readout) for g in sample}
    floors, kept = {}, {}

    def measure(p):
        red = {g: values(genes.loc[g], readout) for g in sample}
        kept[p] = red
        if not sample:
            floors[p] = STATIC_FLOOR[p] + path
            return None
        cat = [np.concatenate([red[g][1] for g in sample]), np.concatenate([np.full(len(red[g][1]), red[g][2]) for g in sample]),
               np.concatenate([strict[g][1] for g in sample]), np.concatenate([np.full(len(strict[g][1]), strict[g][2]) for g in sample])]  # fmt: skip
        floors[p] = measure_floor(*cat, z=cfg["noise_floor_z"]) + path
        rows = [(g, red[g][1], red[g][2], strict[g][1], strict[g][2]) for g in sample]
        return ism_budget(rows, floors[p], cfg["max_noise_ratio"], STATIC_FLOOR["fp32"] + path)

    trials, used = try_candidates(readout.candidates, readout.requested, readout.set_precision, measure)
    floor = floors.get(used, STATIC_FLOOR["fp32"] + path)
    log.info("ISM precision: %s (tried %s), noise floor %.3g × |reference read-out|",
             used, "/".join(p for p, _ in trials), floor)  # fmt: skip
    return finish(trials, used, model), used, floor, (kept.get(used) or (strict if used == "fp32" else {}))
