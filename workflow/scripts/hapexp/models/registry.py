"""Model registry: load a model from its spec (hapexp.config.model_spec) with its metadata.

Every model is wrapped as a `LoadedModel` whose `forward` takes one-hot
(batch, L, 4) float (A, C, G, T; N = zeros) and returns (batch, bins, tracks),
whatever the underlying layout. Kinds: enformer, enformer_tiny, oracle, borzoi,
torchscript, python (see config/README.md).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from hapexp.config import is_hub_id
from hapexp.errors import InputError
from hapexp.readout import default_track_names, load_targets

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

    @property
    def n_bins(self) -> int:
        return (self.window - 2 * self.crop) // self.bin_size

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        return self.call(onehot) if self.call is not None else self.module(onehot)


def _missing_weights(spec: dict, weights, why: str) -> InputError:
    name = spec.get("name", "model")
    offline = os.environ.get("HF_HUB_OFFLINE", "0")
    hub = weights if is_hub_id(str(weights)) else KIND_HUB.get(spec["kind"], "<hub id>")
    return InputError(
        weights,
        f"cannot load the weights of model {name!r} ({spec['kind']}): {why} (HF_HUB_OFFLINE={offline})",
        f"download them on a machine with internet: `huggingface-cli download {hub} "
        f"--local-dir resources/models/{hub.split('/')[-1]}`, then set models.{name}.weights to that "
        "directory (or pre-fill the Hugging Face cache in $HF_HOME and run with HF_HUB_OFFLINE=1)",
        where=f"models.{name}.weights",
    )


KIND_HUB = {"enformer": "EleutherAI/enformer-official-rough", "borzoi": "johahi/borzoi-replicate-0"}


def _from_pretrained(cls, spec: dict):
    """Load a Hugging Face-style model from a local directory or a hub id (same call for both)."""
    weights = spec["weights"]
    if not is_hub_id(str(weights)) and not Path(weights).exists():
        raise _missing_weights(spec, weights, "no such file or directory")
    try:
        return cls.from_pretrained(str(weights))
    except (OSError, ValueError) as e:  # hub unreachable/offline cache miss, or a broken directory
        raise _missing_weights(spec, weights, f"{type(e).__name__}: {str(e).splitlines()[0]}") from e


def _set_tf_gamma(module: nn.Module, spec: dict, n_positions: int) -> bool:
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


def _enformer_wrap(model, spec: dict, kind: str) -> LoadedModel:
    window = int(spec["window"])
    n_positions = window // 128
    target = model.crop_final.target_length
    target = n_positions if target == -1 else target
    if target > n_positions:
        raise InputError(
            "config",
            f"the model crops to {target} bins but a {window} bp window has only {n_positions}",
            "use a larger window",
            where=f"models.{spec.get('name', 'model')}",
        )
    crop = (n_positions - target) // 2 * 128
    use_gamma = _set_tf_gamma(model, spec, n_positions)
    head = spec.get("head", "human")
    n_tracks = model.output_heads[head]
    targets = spec.get("targets")
    names, ids = default_track_names(n_tracks), None
    if targets and n_tracks > 1 and head == "human":
        tab = load_targets(targets)
        if len(tab) == n_tracks:
            names, ids = tab["description"].astype(str).tolist(), tab["identifier"].astype(str).tolist()
    log.info("enformer: %d bins of 128 (crop %d), %d tracks, tf_gamma=%s", target, crop, n_tracks, use_gamma)
    return LoadedModel(
        module=model,
        window=window,
        bin_size=128,
        crop=crop,
        n_tracks=n_tracks,
        track_names=names,
        identifiers=ids,
        kind=kind,
        call=lambda x: model(x, head=head),
    )


def build_enformer_tiny(spec: dict):
    """A small Enformer with seeded random weights (smoke tests, demo, CPU)."""
    from enformer_pytorch import Enformer

    hp = dict(spec["hparams"])
    n_tracks = int(hp.pop("n_tracks", 8))
    torch.manual_seed(int(spec["seed"]))
    model = Enformer.from_hparams(
        output_heads={"human": n_tracks},
        target_length=int(spec["window"]) // 128,
        use_tf_gamma=False,
        **hp,
    )
    # PyTorch's default init (kaiming-uniform, a=√5) shrinks the signal through the
    # conv tower and attention pools until the output is constant to 1e-7: every
    # person would get the same prediction and r would be undefined. He-normal
    # weights keep it sequence-sensitive (single-SNV effects of a few %), which is
    # what a *random* model should be: responsive, but not to the right things.
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.Conv1d | torch.nn.Conv2d | torch.nn.Linear):
                torch.nn.init.normal_(mod.weight, std=math.sqrt(2.0 / mod.weight[0].numel()))
    return model


def _load_enformer(spec: dict) -> LoadedModel:
    from enformer_pytorch import Enformer

    if spec["weights"] == "random":
        # Full-size architecture with seeded random weights: speed benchmarks only.
        log.warning("enformer: random weights (weights: random) - predictions are meaningless")
        torch.manual_seed(int(spec["seed"]))
        model = Enformer.from_hparams(use_tf_gamma=False)
    else:
        model = _from_pretrained(Enformer, spec)
    return _enformer_wrap(model, spec, "enformer")


def _load_borzoi(spec: dict) -> LoadedModel:
    try:
        from borzoi_pytorch import Borzoi
    except ImportError as e:
        raise InputError(
            "config",
            "model kind borzoi needs the optional package borzoi-pytorch (flashzoi weights load through it too)",
            "pip install borzoi-pytorch into the torch environment",
            where=f"models.{spec.get('name', 'model')}",
        ) from e
    model = _from_pretrained(Borzoi, spec)
    # borzoi-pytorch takes (B, 4, L) and returns (B, tracks, bins).
    return _probe(model, spec, lambda x: model(x.transpose(1, 2)).transpose(1, 2), kind="borzoi")


def _load_oracle(spec: dict) -> LoadedModel:
    from hapexp.oracle import Oracle

    path = spec["weights"]
    if not path or not Path(path).exists():
        raise InputError(path or "config", "oracle weights not found", "run the simulate_demo rule first")
    model = Oracle.load(path)
    return _probe(model, spec, None, kind="oracle")


def _adapted_call(module, adapter: dict):
    key = adapter.get("output_key")

    def call(x):
        out = module(x.transpose(1, 2) if adapter["input"] == "bcl" else x)
        if key is not None:
            out = out[key]
        return out.transpose(1, 2) if adapter["output"] == "btl" else out

    return call


def _load_torchscript(spec: dict) -> LoadedModel:
    path = spec.get("path") or spec["weights"]
    if not Path(path).exists():
        raise InputError(path, "TorchScript model file not found", "give the file written by torch.jit.save")
    module = torch.jit.load(str(path), map_location=spec.get("_device", "cpu"))
    return _probe(module, spec, _adapted_call(module, spec["adapter"]), kind="torchscript")


def _import_class(ref: str):
    mod, _, cls = ref.partition(":")
    if mod.endswith(".py"):
        s = importlib.util.spec_from_file_location(Path(mod).stem, mod)
        m = importlib.util.module_from_spec(s)
        s.loader.exec_module(m)
    else:
        m = importlib.import_module(mod)
    return getattr(m, cls)


def _load_python(spec: dict) -> LoadedModel:
    torch.manual_seed(int(spec["seed"]))
    module = _import_class(spec["class"])(**spec.get("kwargs", {}))
    if spec.get("weights"):
        module.load_state_dict(torch.load(spec["weights"], map_location="cpu", weights_only=True))
    return _probe(module, spec, _adapted_call(module, spec["adapter"]), kind="python")


def _probe(module: nn.Module, spec: dict, call, kind: str) -> LoadedModel:
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
    names, ids = default_track_names(n_tracks), None
    if spec.get("targets"):
        tab = load_targets(spec["targets"])
        if len(tab) == n_tracks:
            names, ids = tab["description"].astype(str).tolist(), tab["identifier"].astype(str).tolist()
    return LoadedModel(module, window, bin_size, crop, n_tracks, names, ids, kind, call)


def load_model(spec: dict, device="cpu") -> LoadedModel:
    """Load the model of a resolved spec (hapexp.config.model_spec) on `device`, in eval mode.

    Models of unknown output shape are probed with one all-N sequence on that device
    (a 524 kb Borzoi forward pass is slow on CPU).
    """
    kind = spec["kind"]
    spec = {**spec, "_device": torch.device(device)}
    if kind == "enformer_tiny":
        loaded = _enformer_wrap(build_enformer_tiny(spec), spec, "enformer_tiny")
    elif kind == "enformer":
        loaded = _load_enformer(spec)
    elif kind == "borzoi":
        loaded = _load_borzoi(spec)
    elif kind == "oracle":
        loaded = _load_oracle(spec)
    elif kind == "torchscript":
        loaded = _load_torchscript(spec)
    elif kind == "python":
        loaded = _load_python(spec)
    else:
        raise ValueError(f"unknown model kind {kind!r}")
    loaded.module.eval()
    return loaded
