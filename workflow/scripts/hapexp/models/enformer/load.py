"""Loading Enformer (enformer-pytorch): the published weights and a small seeded one for tests/demo.

Input 196,608 bp (one-hot (B, L, 4)); output (B, 896, 5,313 human tracks) of 128-bp
bins after cropping 40,960 bp per side. Track names come from the Enformer targets
table (resources/enformer_targets_human.tsv): CAGE, DNase, ChIP; all unstranded.

The loaded model (`EnformerModel`) has every capability the engine and fine-tuning
ask for: switchable attention kernels (`attention`), reference reuse for ISM
(`ism_reuse`) and its trainable parts (`training`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from hapexp.errors import InputError
from hapexp.models.enformer import DOWNSAMPLES, HUB_ID, attention
from hapexp.models.enformer.ism_reuse import EnformerReuse
from hapexp.models.enformer.training import EnformerTraining
from hapexp.models.registry import LoadedModel, from_pretrained, missing_weights
from hapexp.models.tracks import default_table, load_targets, track_table

log = logging.getLogger("hapexp.models")


def set_tf_gamma(module: nn.Module, spec: dict, n_positions: int) -> bool:
    """Turn the TF-precomputed gamma positional features on/off on every attention layer.

    enformer-pytorch only enables them when the name equals the hub id; weights from a
    local copy of the same checkpoint need them too (they were trained in TF).
    The precomputed table exists only for 1536 positions (196,608 bp input).
    """
    from enformer_pytorch.modeling_enformer import Attention

    flag = spec.get("use_tf_gamma")
    use = (n_positions == 1536) if flag is None else bool(flag)
    if use and n_positions != 1536:
        raise InputError(
            "config",
            f"use_tf_gamma needs a 196,608 bp window (1536 positions), not {n_positions} positions",
            "set use_tf_gamma: false or window: 196608",
            where=f"models.{spec.get('name', 'model')}",
        )
    for m in module.modules():
        if isinstance(m, Attention):
            m.use_tf_gamma = use
    return use


def enformer_tracks(spec: dict, n_tracks: int, head: str, bin_size: int = 128):
    """Track table of an Enformer head: the targets table when it has the head's size."""
    targets = spec.get("targets")
    if targets and n_tracks > 1 and head == "human":
        tab = load_targets(targets)
        if len(tab) == n_tracks:
            extra = {c: tab[c].tolist() for c in ("clip", "scale", "sum_stat") if c in tab}
            return track_table(tab["identifier"], tab["description"], bin_size, extra=extra)
    return default_table(n_tracks, bin_size)


@dataclass
class EnformerModel(LoadedModel):
    """A loaded Enformer with its capabilities (hapexp.models.registry.LoadedModel)."""

    head: str = "human"
    _attention: list = field(default=None, init=False, repr=False)

    def set_attention(self, setting: str, exact: bool) -> None:
        """`exact` or `attention: reference`: enformer-pytorch's own forward; `auto`: the fused
        `sdpa` kernel; else the kernel named (hapexp.models.enformer.attention). Installed on
        first use; set on every call (several predictors may share one model)."""
        kernel = "reference" if exact else ("sdpa" if setting == "auto" else setting)
        if self._attention is None:
            attention.install(self.module, kernel)
            self._attention = attention.attention_modules(self.module)
        for m in self._attention:
            m._hapexp_kernel = kernel

    def reference_reuse(self) -> EnformerReuse | None:
        """Reuse of the stem and conv tower (hapexp.models.enformer.ism_reuse), when they are local."""
        return EnformerReuse(self.module, head=self.head) if EnformerReuse.supports(self.module) else None

    def training_parts(self) -> EnformerTraining:
        return EnformerTraining(self.module)


def wrap_enformer(model, spec: dict, kind: str) -> EnformerModel:
    window = int(spec["window"])
    bin_size = 2 ** int(getattr(model.config, "num_downsamples", DOWNSAMPLES))  # 128 for Enformer
    n_positions = window // bin_size
    target = model.crop_final.target_length
    target = n_positions if target == -1 else target
    if target > n_positions:
        raise InputError(
            "config",
            f"the model crops to {target} bins but a {window} bp window has only {n_positions}",
            "use a larger window",
            where=f"models.{spec.get('name', 'model')}",
        )
    crop = (n_positions - target) // 2 * bin_size
    use_gamma = set_tf_gamma(model, spec, n_positions)
    # enformer_tiny declares no head: its model has one (build_enformer_tiny)
    head = spec["head"] if "head" in spec else next(iter(model.output_heads))
    n_tracks = model.output_heads[head]
    tracks = enformer_tracks(spec, n_tracks, head, bin_size)
    log.info(
        "enformer: %d bins of %d (crop %d), %d tracks, tf_gamma=%s",
        target,
        bin_size,
        crop,
        n_tracks,
        use_gamma,
    )
    return EnformerModel.from_tracks(model, window, bin_size, crop, tracks, kind, lambda x: model(x, head=head),
                                     head=head)  # fmt: skip


def build_enformer_tiny(spec: dict):
    """A small Enformer with seeded random weights (smoke tests, demo, CPU)."""
    from enformer_pytorch import Enformer

    hp = dict(spec["hparams"])
    n_tracks = int(hp.pop("n_tracks", 8))
    torch.manual_seed(int(spec["seed"]))
    model = Enformer.from_hparams(
        output_heads={"human": n_tracks},
        target_length=int(spec["window"]) // 2 ** int(hp.get("num_downsamples", DOWNSAMPLES)),
        use_tf_gamma=False,
        **hp,
    )
    return he_init(model)


def he_init(model):
    """He-normal weights for every convolution and linear layer (seeded by the caller).

    PyTorch's default init (kaiming-uniform, a=√5) shrinks the signal through the
    conv tower and attention pools until the output is constant to 1e-7: every
    person would get the same prediction and r would be undefined. He-normal
    weights keep it sequence-sensitive (single-SNV effects of a few %), which is
    what a *random* model should be: responsive, but not to the right things.
    """
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.Conv1d | torch.nn.Conv2d | torch.nn.Linear):
                torch.nn.init.normal_(mod.weight, std=math.sqrt(2.0 / mod.weight[0].numel()))
    return model


def load_state_dict_file(model, spec: dict):
    """Weights saved as a state dict (rule finetune writes these): a local .pt file."""
    path = Path(spec["weights"])
    if not path.is_file():
        raise missing_weights(
            spec, spec["weights"], "no such file", how="run rule finetune (or give the state-dict .pt file)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, OSError, ValueError) as e:  # another architecture, or not a state dict
        raise missing_weights(
            spec,
            spec["weights"],
            f"not a state dict of this architecture ({type(e).__name__}: {str(e).splitlines()[0]})",
            how="check hparams/window against the model the weights were trained as",
        ) from e
    return model


def load_enformer_tiny(spec: dict) -> EnformerModel:
    """Seeded random weights, or (`weights:` a .pt state dict, e.g. from rule finetune) trained ones."""
    model = build_enformer_tiny(spec)
    if spec.get("weights"):
        load_state_dict_file(model, spec)
    return wrap_enformer(model, spec, "enformer_tiny")


def load_enformer(spec: dict) -> EnformerModel:
    from enformer_pytorch import Enformer

    if spec["weights"] == "random":
        # Full-size architecture with seeded random weights (He-normal, so outputs depend
        # on the sequence, as for enformer_tiny): speed and precision benchmarks only.
        log.warning("enformer: random weights (weights: random) - predictions are meaningless")
        torch.manual_seed(int(spec["seed"]))
        model = he_init(Enformer.from_hparams(use_tf_gamma=False))
    elif str(spec["weights"]).endswith(".pt"):
        # A state dict of the published architecture (rule finetune's output).
        model = load_state_dict_file(Enformer.from_hparams(use_tf_gamma=False), spec)
    else:
        model = from_pretrained(Enformer, spec, HUB_ID)
    return wrap_enformer(model, spec, "enformer")
