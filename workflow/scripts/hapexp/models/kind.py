"""What a model kind declares: its defaults, derived values and checks, and where its code is.

Each architecture declares its kinds as `Kind` subclasses in its package's `__init__`
(`hapexp.models.enformer`, `.borzoi`, `.alphagenome`, `.custom`) or, for the demo's
oracle, in `hapexp.models.oracle_kind`; `hapexp.models.spec` resolves a config against
them. Declarations import neither torch nor numpy: `rules/common.smk` resolves every
model's spec while Snakemake parses the workflow, and the rules that validate inputs or
judge predictions run in environments without torch. The load code (`loader`) imports
torch and is imported only when a model is loaded (hapexp.models.registry.load_model).
"""

from __future__ import annotations

from typing import ClassVar

from hapexp.errors import InputError

# Keys in every spec that some kinds give a default (the Enformer: its hub weights, targets
# table, tf_gamma switch) and the others leave None (hapexp.models.spec.model_spec).
PER_KIND = ("weights", "targets", "use_tf_gamma")


def config_error(name: str, problem: str, fix: str) -> InputError:
    """A config error located at `models.<name>`."""
    return InputError("config", problem, fix, where=f"models.{name}")


class Kind:
    """One model kind (the config's `kind`); subclasses override what differs."""

    name: ClassVar[str]
    # Defaults of this kind (window, bin size, weights, ...); the config wins. Only keys
    # whose default depends on the kind: the others are the schema's (models.* in
    # config/schema/config.schema.yaml), which Snakemake fills into the config before the
    # spec is resolved, so a key here that the schema also defaulted would never take this
    # value (tests/test_config.py checks that no kind declares one).
    defaults: ClassVar[dict] = {}
    # "module:function" building the LoadedModel of a resolved spec (imports torch).
    loader: ClassVar[str]
    # Allowed `attention` values. Kinds without their own list accept (and ignore) the
    # kernel names of the switchable attention (hapexp.models.enformer.attention).
    attention: ClassVar[tuple] = ("auto", "reference", "sdpa", "flex")
    # `weights`/`path` always name a local file (never a Hugging Face hub id).
    local_weights: ClassVar[bool] = False
    # A weights directory is one written by `save_pretrained` (it must hold config.json).
    pretrained_dir: ClassVar[bool] = False
    # Without `weights` the model has a seeded random initialisation fine-tuning can start from.
    self_initialised: ClassVar[bool] = False

    @classmethod
    def derive(cls, spec: dict, cfg: dict, name: str) -> None:
        """Fill the values that follow from others (bin size, crop) and check this kind's keys,
        in place; `cfg` is what the user gave (before defaults)."""
