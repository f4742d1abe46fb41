"""A model's spec: its config with every default filled in, resolved without importing torch.

`rules/common.smk` uses `model_spec` at parse time to size jobs (device → GPU resource)
and `model_input_files` to wire weights produced by other rules into the DAG, so this
module and the kind declarations it reads (`hapexp.models.kind`: each architecture's
package `__init__`, `oracle_kind`) stay import-light: no torch, no numpy.

Resolution: the kind's defaults (`Kind.defaults`; None for the `PER_KIND` keys it
leaves unset), then the config with the schema's defaults (`models.*` in
config/schema/config.schema.yaml: what does not depend on the kind, filled in as
Snakemake's validate fills them, so a raw config and a validated one give the same spec);
then the kind derives what follows from the rest (`Kind.derive`: bin size, crop,
adapter); then the checks every kind shares.
"""

from __future__ import annotations

from pathlib import Path

from hapexp.config.schema import with_defaults
from hapexp.errors import InputError
from hapexp.models import alphagenome, borzoi, custom, enformer, oracle_kind
from hapexp.models.kind import PER_KIND, Kind, config_error

# kind name -> declaration
KINDS: dict[str, type[Kind]] = {
    k.name: k for m in (oracle_kind, enformer, borzoi, alphagenome, custom) for k in m.KINDS
}

_CHOICES = {
    "bin_aggregation": ("sum", "mean"),
    "haplotype_aggregation": ("mean", "sum"),
    "device": ("auto", "cuda", "cpu"),
    "precision": ("auto", "fp32", "tf32", "bf16"),
    "compile": ("auto", True, False),
    "compile_mode": ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
    "readout": ("tss", "exons"),
    "exon_aggregation": ("sum", "mean"),
}


def model_spec(cfg: dict, name: str = "model") -> dict:
    """Return the model's config with every default filled in (config wins), validated.

    Raises InputError naming `models.<name>` for an unknown kind, a bad choice or a
    window that is not a whole number of output bins.
    """
    kind = KINDS.get(cfg.get("kind"))
    if kind is None:
        raise config_error(
            name, f"unknown model kind {cfg.get('kind')!r}", f"use one of: {', '.join(sorted(KINDS))}"
        )
    spec = {**dict.fromkeys(PER_KIND), **kind.defaults, **with_defaults("models.*", cfg)}
    spec["name"] = cfg.get("name", name)
    kind.derive(spec, cfg, name)
    for key, choices in {**_CHOICES, "attention": kind.attention}.items():
        if spec[key] not in choices:
            raise config_error(
                name, f"{key}={spec[key]!r} is not one of {choices}", f"set {key} to one of {choices}"
            )
    if "window" not in spec:
        raise config_error(name, "window is missing", "give the model's input length in bases")
    window, bin_size, crop = int(spec["window"]), int(spec["bin_size"]), int(spec["crop"])
    if window % 2:
        raise config_error(
            name, f"window {window} is odd", "use an even input length (the TSS sits at index window//2)"
        )
    if window % bin_size:
        raise config_error(
            name,
            f"window {window} is not a multiple of the output bin size {bin_size}",
            f"use a window that is a multiple of {bin_size}, e.g. {(window // bin_size + 1) * bin_size}",
        )
    if window - 2 * crop < bin_size:
        raise config_error(
            name, f"crop {crop} leaves no output bin in a {window} bp window", "check window/crop"
        )
    if int(spec["bins"]) > (window - 2 * crop) // bin_size:
        raise config_error(
            name, f"bins={spec['bins']} exceeds the model's output bins", "use fewer central bins"
        )
    bs = spec["batch_size"]
    if bs != "auto" and (isinstance(bs, bool) or not isinstance(bs, int) or bs < 1):
        raise config_error(
            name,
            f"batch_size must be auto or an integer ≥ 1, not {bs!r}",
            "set batch_size: auto or 1 or more",
        )
    if int(spec["max_batch_size"]) < 1 or int(spec["prefetch"]) < 0:
        raise config_error(
            name, "max_batch_size must be ≥ 1 and prefetch ≥ 0", "fix max_batch_size / prefetch"
        )
    return spec


def is_hub_id(weights: str) -> bool:
    """`org/name` that is not a path on disk: a Hugging Face hub id."""
    parts = str(weights).split("/")
    return len(parts) == 2 and all(parts) and not Path(weights).exists() and not str(weights).startswith(".")


def model_input_files(spec: dict) -> list[str]:
    """Local files a model needs (weights, targets table), as rule inputs.

    Files produced by other rules (the demo oracle) must be listed so that the DAG
    orders them; hub ids are not files.
    """
    out = []
    always_file = spec.get("kind") in KINDS and KINDS[spec["kind"]].local_weights
    for key in ("weights", "path"):
        w = spec.get(key)
        if w and w != "random" and (always_file or not is_hub_id(w)):
            out.append(str(w))
    if spec.get("targets"):
        out.append(str(spec["targets"]))
    return sorted(set(out))


def check_weights_dir(spec: dict, name: str) -> None:
    """A weights directory of a kind loaded by `from_pretrained` must hold config.json."""
    kind = KINDS[spec["kind"]]
    weights = spec.get("weights")
    if (
        kind.pretrained_dir
        and weights
        and Path(weights).is_dir()
        and not (Path(weights) / "config.json").exists()
    ):
        raise InputError(
            weights,
            f"model {name!r}: the weights directory has no config.json",
            "Save the model with `save_pretrained(dir)` (it writes config.json + weights), "
            f"or give a hub id such as {kind.defaults['weights']}.",
        )
