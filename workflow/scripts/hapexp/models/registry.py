"""Model registry: load a model from its spec (hapexp.models.spec.model_spec) with its metadata.

Every model is wrapped as a `LoadedModel` whose `forward` takes one-hot
(batch, L, 4) float (A, C, G, T; N = zeros) and returns (batch, bins, tracks),
whatever the underlying layout, plus a track table (`hapexp.models.tracks`) that
names each track, its assay, strand and strand pair. One package per architecture
(enformer, borzoi, alphagenome, custom; the demo's oracle); kinds in config/README.md.

What only some architectures can do, the engine and fine-tuning ask the loaded model
for (`LoadedModel` capabilities: `set_attention`, `reference_reuse`,
`training_parts`); the base class has none of them, an architecture's subclass
implements its own (hapexp.models.enformer.load.EnformerModel).
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn

from hapexp.errors import InputError
from hapexp.models.spec import KINDS, is_hub_id
from hapexp.models.tracks import default_table, load_targets

log = logging.getLogger("hapexp.models")


@dataclass
class LoadedModel:
    """A model ready for inference, with what the read-out needs to know about it."""

    module: nn.Module
    window: int
    bin_size: int
    crop: int
    n_tracks: int
    track_names: list[str]
    identifiers: list[str] | None = None
    kind: str = "custom"
    # Maps the module's raw output to (B, bins, tracks); identity by default.
    call: Callable | None = field(default=None, repr=False)
    # Track metadata (hapexp.models.tracks); anonymous unstranded tracks when None.
    tracks: pd.DataFrame | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.tracks is None:
            tab = default_table(self.n_tracks, self.bin_size)
            tab["description"] = list(self.track_names)
            if self.identifiers is not None:
                tab["identifier"] = list(self.identifiers)
            self.tracks = tab
        if len(self.tracks) != self.n_tracks:
            raise ValueError(f"track table has {len(self.tracks)} rows for {self.n_tracks} tracks")

    @classmethod
    def from_tracks(cls, module, window: int, bin_size: int, crop: int, tracks: pd.DataFrame, kind: str,
                    call: Callable | None, **extra):  # fmt: skip
        """A loaded model whose track table names its tracks (`extra`: a subclass's fields)."""
        names, ids = tracks["description"].tolist(), tracks["identifier"].tolist()
        return cls(module, window, bin_size, crop, len(tracks), names, ids, kind, call, tracks, **extra)

    @property
    def n_bins(self) -> int:
        return (self.window - 2 * self.crop) // self.bin_size

    @property
    def strand_pair(self) -> np.ndarray:
        """Index of each track's other-strand track (itself when unstranded)."""
        return self.tracks["strand_pair"].to_numpy(np.int64)

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        return self.call(onehot) if self.call is not None else self.module(onehot)

    # -- capabilities (none here; an architecture's subclass overrides what it has) --------
    def set_attention(self, setting: str, exact: bool) -> None:
        """Choose the attention kernel of the following forwards: `setting` is the spec's
        `attention`; `exact` asks for the model's own computation (the reference numbers
        of strict fp32). A model with one way to attend ignores it."""

    def reference_reuse(self) -> ReferenceReuse | None:
        """A `ReferenceReuse` for forwards of sequences that differ a little from one
        reference (ISM); None: every forward runs in full."""
        return None

    def training_parts(self) -> TrainingParts | None:
        """What fine-tuning may train (`TrainingParts`); None: the model cannot be fine-tuned."""
        return None


class ReferenceReuse(Protocol):
    """Forwards that reuse a reference's activations (hapexp.engine.predictor.Predictor.reusing).

    `prepare(ref_onehot (R, L, 4))` caches what the references compute;
    `forward(x (B, L, 4), ref_ids (B,))` returns the model output (B, bins, tracks) of each
    row, compared with reference `ref_ids[b]`, up to float rounding equal to a full forward;
    `release()` drops the cache. `tail` is the part that runs in full after the reused
    part, `tail_fn` what `forward` calls for it (the engine sets a compiled `tail`).
    `stats` counts rows `reused` and run `full`, and `prepare_s` seconds. `score_error`: the
    bound of a score's (alt − ref read-out) error from full forwards, relative to the
    reference read-out (the model's tests enforce it); ISM's unresolved floor includes it.
    """

    tail: Callable
    tail_fn: Callable
    stats: dict
    score_error: float

    def prepare(self, ref_onehot: torch.Tensor) -> None: ...

    def forward(self, x: torch.Tensor, ref_ids: torch.Tensor) -> torch.Tensor: ...

    def release(self) -> None: ...


class TrainingParts(Protocol):
    """What fine-tuning (hapexp.training) may train in a model.

    `blocks()`: the attention blocks in order (gradient checkpointing; `last_blocks`).
    `trained(how, last_blocks)`: the modules whose parameters train for `trainable:`
    head | last_blocks | lora (the output head always; `all` trains everything).
    `lora_targets(names)`: regular expressions (full match) of the module names whose
    Linear layers named `names` get LoRA adapters.
    """

    def blocks(self) -> list[nn.Module]: ...

    def trained(self, how: str, last_blocks: int) -> list[nn.Module]: ...

    def lora_targets(self, names: list[str]) -> list[str]: ...


def missing_weights(
    spec: dict, weights, why: str, hub: str | None = None, how: str | None = None
) -> InputError:
    """The error for weights that cannot be loaded: what to download and where to put it."""
    name = spec.get("name", "model")
    offline = os.environ.get("HF_HUB_OFFLINE", "0")
    hub = weights if is_hub_id(str(weights)) else (hub or "<hub id>")
    how = how or (
        f"download them on a machine with internet: `huggingface-cli download {hub} "
        f"--local-dir resources/models/{hub.split('/')[-1]}`, then set models.{name}.weights to that "
        "directory (or pre-fill the Hugging Face cache in $HF_HOME and run with HF_HUB_OFFLINE=1)"
    )
    return InputError(
        weights,
        f"cannot load the weights of model {name!r} ({spec['kind']}): {why} (HF_HUB_OFFLINE={offline})",
        how,
        where=f"models.{name}.weights",
    )


def from_pretrained(cls, spec: dict, hub: str, **kwargs):
    """Load a Hugging Face-style model from a local directory or a hub id (same call for both)."""
    weights = spec["weights"]
    if not is_hub_id(str(weights)) and not Path(weights).exists():
        raise missing_weights(spec, weights, "no such file or directory", hub)
    try:
        return cls.from_pretrained(str(weights), **kwargs)
    except (OSError, ValueError) as e:  # hub unreachable/offline cache miss, or a broken directory
        raise missing_weights(spec, weights, f"{type(e).__name__}: {str(e).splitlines()[0]}", hub) from e


def optional_package(module: str, pip_name: str, spec: dict, why: str = ""):
    """Import an optional model package, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise InputError(
            "config",
            f"model kind {spec['kind']} needs the package {pip_name}{why} ({type(e).__name__}: {e})",
            f"pip install {pip_name} into the torch environment (make setup and envs/torch.yaml install it)",
            where=f"models.{spec.get('name', 'model')}",
        ) from e


def probe(module: nn.Module, spec: dict, call, kind: str) -> LoadedModel:
    """Run one all-N sequence to learn the output shape and check it against window/bin/crop."""
    window, bin_size, crop = int(spec["window"]), int(spec["bin_size"]), int(spec["crop"])
    device = spec.get("_device", torch.device("cpu"))
    module.to(device).eval()
    with torch.inference_mode():
        x = torch.zeros(1, window, 4, device=device)
        out = call(x) if call is not None else module(x)
    if out.ndim != 3:
        raise InputError(
            "config",
            f"model output has shape {tuple(out.shape)}, expected (batch, bins, tracks)",
            "fix adapter.output / adapter.output_key",
            where=f"models.{spec.get('name')}",
        )
    n_bins, n_tracks = out.shape[1], out.shape[2]
    if n_bins * bin_size + 2 * crop != window:
        raise InputError(
            "config",
            f"model returns {n_bins} bins; with bin_size {bin_size} and crop {crop} a {window} bp window "
            f"should give {(window - 2 * crop) // bin_size}",
            "fix window, bin_size or crop (or adapter.output if tracks and bins are swapped)",
            where=f"models.{spec.get('name')}",
        )
    names, ids = [f"track_{i}" for i in range(n_tracks)], None
    if spec.get("targets"):
        tab = load_targets(spec["targets"])
        if len(tab) == n_tracks:
            names, ids = tab["description"].astype(str).tolist(), tab["identifier"].astype(str).tolist()
    return LoadedModel(module, window, bin_size, crop, n_tracks, names, ids, kind, call)


def load_model(spec: dict, device="cpu") -> LoadedModel:
    """Load the model of a resolved spec (hapexp.models.spec.model_spec), in eval mode, with
    its kind's loader (imported here: optional packages load only when used); the loader
    builds its device tensors on `device` (the Predictor moves the whole model there).

    Models of unknown output shape are probed with one all-N sequence on that device.
    """
    kind = KINDS.get(spec["kind"])
    if kind is None:
        raise ValueError(f"unknown model kind {spec['kind']!r}")
    mod, _, fn = kind.loader.partition(":")
    loader = getattr(importlib.import_module(mod), fn)
    loaded = loader({**spec, "_device": torch.device(device)})
    loaded.module.eval()
    return loaded
