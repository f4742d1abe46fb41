"""The config checked before anything runs, with errors in people's words.

`check_config` runs at Snakemake parse time (rules/common.smk) on the config as given,
before Snakemake's `validate` fills the schema's defaults: a schema error names the key
path, what is wrong and a fix (did-you-mean for a misspelt key); then the checks that
span keys (every model's spec, `{chrom}` VCFs, eGenes without permutations, the
eQTL/elastic-net windows).
"""

from __future__ import annotations

import difflib

from hapexp.config.schema import schema, schema_at, with_defaults
from hapexp.config.units import RESERVED
from hapexp.errors import InputError
from hapexp.models.spec import check_weights_dir, model_spec
from hapexp.variants.windows import resolve_window


def check_config(config: dict, configfile: str = "config") -> None:
    """Raise InputError (file `configfile`, the key path, a fix) on the first problem."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        fix = "See config/README.md for the keys and their allowed values."
        if err.validator == "additionalProperties":
            allowed = list(schema_at(err.absolute_path).get("properties", {}))
            extra = [k for k in err.instance if k not in allowed]
            hints = [
                f"{k!r} → did you mean {m[0]!r}?"
                for k in extra
                if (m := difflib.get_close_matches(k, allowed, 1))
            ]
            fix = (" ".join(hints) + " " if hints else "") + f"Allowed keys here: {', '.join(allowed)}."
        elif err.validator == "required":
            fix = f"Add the missing key under {key}. " + fix
        elif err.validator == "enum":
            fix = f"Use one of: {', '.join(map(str, err.validator_value))}."
        raise InputError(configfile, f"config key {key}: {err.message}", fix)

    config = with_defaults("", config)  # as validate() will fill it
    for name, cfg in config["models"].items():
        try:
            spec = model_spec(cfg, name)
        except InputError as e:  # model_spec knows the model, not the config file's name
            raise InputError(configfile, e.problem, e.fix, where=e.where) from None
        check_weights_dir(spec, name)
    for name, c in config["cohorts"].items():
        for tissue, block in (c.get("tissues") or {}).items():
            if tissue in RESERVED:
                raise InputError(
                    configfile,
                    f"cohorts.{name}.tissues.{tissue}: a tissue cannot be named like the per-cohort "
                    f"directory results/{name}/{tissue}/",
                    f"Rename it (reserved: {', '.join(sorted(RESERVED))}).",
                )
            unknown = [m for m in (block.get("tracks") or {}) if m not in config["models"]]
            if unknown:
                raise InputError(
                    configfile,
                    f"cohorts.{name}.tissues.{tissue}.tracks: {unknown[0]!r} is not a model",
                    f"Use model names from `models:` ({', '.join(config['models'])}).",
                )
        if "{chrom}" in c["vcf"] and not c.get("chromosomes"):
            raise InputError(
                configfile,
                f"cohort {name!r}: vcf {c['vcf']!r} has {{chrom}} but no `chromosomes` list",
                f"Add cohorts.{name}.chromosomes: [...] with the names that fill {{chrom}}.",
            )
    if (
        config["concordance"]["eqtl_significance"] == "permutation"
        and int(config["eqtl"]["permutations"]) == 0
    ):
        raise InputError(
            configfile,
            "eqtl.permutations is 0, but eGenes (concordance.eqtl_significance: permutation) come from the "
            "permutation pass",
            "Set eqtl.permutations (e.g. 1000), or concordance.eqtl_significance: bh_all_pairs (legacy).",
        )
    for stage in ("eqtl", "elasticnet"):
        try:
            resolve_window(config[stage]["window"], config["models"])
        except ValueError as e:
            raise InputError(
                configfile, f"{stage}.window: {e}", "See config/README.md, section " + stage
            ) from None
