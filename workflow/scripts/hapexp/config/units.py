"""Cohorts and their tissues: the units per-tissue stages run on.

A cohort has either one `expression` (one implicit tissue: its unit is the cohort's name,
and its per-tissue outputs stay at results/<cohort>/…) or `tissues` (one unit per tissue,
`<cohort>/<tissue>`, outputs at results/<cohort>/<tissue>/…). Genotype-level work
(validation, normalization, haplotypes, predict, ISM) runs once per cohort for the union
of its tissues' people and genes; per-tissue stages (expression, eQTL, elastic net,
performance, concordance, heads, split verdict, null check, summary) run once per unit.
"""

from __future__ import annotations

# The cohort keys a tissue block may set (its expression and what goes with it); the
# others (vcf, chromosomes) are the cohort's. `tracks` is a tissue's per-model selection.
# `credible_sets` is not among them: a tissue block may set its own, and a tissue without
# one inherits the cohort's (a GTEx table of every tissue: each keeps its own rows).
TISSUE_KEYS = (
    "expression",
    "expression_format",
    "covariates",
    "samples",
    "predictdb",
    "expression_level",
    "expression_level_format",
    "expression_corrected_upstream",
    "tracks",
)

# Directory names of per-cohort outputs under results/<cohort>/: a tissue cannot be named
# like one (its results/<cohort>/<tissue>/ would mix with them).
RESERVED = frozenset(
    {"chunks", "haplotypes", "predict", "ism", "variants", "splits", "export", "figures",
     "expression", "eqtl", "elasticnet", "heads", "finetune", "concordance", "null_check"}
)  # fmt: skip


def tissues(cohort_cfg: dict) -> list[str]:
    """The cohort's tissue names in config order; [] for a one-expression cohort."""
    return list(cohort_cfg.get("tissues") or {})


def units(cohorts: dict) -> list[str]:
    """Every unit: `<cohort>` for a one-expression cohort, `<cohort>/<tissue>` per tissue."""
    out = []
    for name, c in cohorts.items():
        out += [f"{name}/{t}" for t in tissues(c)] or [name]
    return out


def split_unit(unit: str) -> tuple[str, str | None]:
    """`cohort/tissue` → (cohort, tissue); `cohort` → (cohort, None)."""
    cohort, _, tissue = unit.partition("/")
    return cohort, tissue or None


def cohort_units(cohorts: dict, cohort: str) -> list[str]:
    """The units of one cohort."""
    return [u for u in units(cohorts) if split_unit(u)[0] == cohort]


def unit_config(cohorts: dict, unit: str) -> dict:
    """What a per-tissue stage reads as its cohort's config: the cohort's keys with the
    tissue's block over them (a one-expression cohort's config as it is)."""
    cohort, tissue = split_unit(unit)
    c = cohorts[cohort]
    if tissue is None:
        return c
    from hapexp.config.schema import with_defaults

    base = {k: v for k, v in c.items() if k not in TISSUE_KEYS and k != "tissues"}
    # the schema's defaults of a tissue block, for configs whose nested blocks Snakemake's
    # validate did not fill
    return {**base, **with_defaults("cohorts.*.tissues.*", c["tissues"][tissue]), "tissue": tissue}


def expression_files(cohort_cfg: dict) -> dict[str, tuple[str, str]]:
    """tissue (None for the implicit one) → (expression file, its format)."""
    if not tissues(cohort_cfg):
        return {None: (cohort_cfg["expression"], cohort_cfg.get("expression_format", "auto"))}
    return {
        t: (b["expression"], b.get("expression_format", "auto")) for t, b in cohort_cfg["tissues"].items()
    }


def track_groups(cohort_cfg: dict, model: str) -> dict[str, list] | None:
    """A multi-tissue cohort's track selection of `model` per tissue (tissue → selectors; a
    tissue without one reads the model's own `tracks`, given as None); None for a
    one-expression cohort (the model's tracks, as before tissues existed)."""
    if not tissues(cohort_cfg):
        return None
    return {t: (b.get("tracks") or {}).get(model) for t, b in cohort_cfg["tissues"].items()}
