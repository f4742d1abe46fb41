"""Loading your own model: a TorchScript file or a Python nn.Module class, described by `adapter`."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import torch

from hapexp.errors import InputError
from hapexp.models.registry import LoadedModel, probe


def adapted_call(module, adapter: dict):
    """(B, L, 4) in, (B, bins, tracks) out, whatever layout the module uses."""
    key = adapter.get("output_key")

    def call(x):
        out = module(x.transpose(1, 2) if adapter["input"] == "bcl" else x)
        if key is not None:
            out = out[key]
        return out.transpose(1, 2) if adapter["output"] == "btl" else out

    return call


def load_torchscript(spec: dict) -> LoadedModel:
    path = spec.get("path") or spec["weights"]
    if not Path(path).exists():
        raise InputError(path, "TorchScript model file not found", "give the file written by torch.jit.save")
    module = torch.jit.load(str(path), map_location=spec.get("_device", "cpu"))
    return probe(module, spec, adapted_call(module, spec["adapter"]), kind="torchscript")


def import_class(ref: str):
    mod, _, cls = ref.partition(":")
    if mod.endswith(".py"):
        s = importlib.util.spec_from_file_location(Path(mod).stem, mod)
        m = importlib.util.module_from_spec(s)
        s.loader.exec_module(m)
    else:
        m = importlib.import_module(mod)
    return getattr(m, cls)


def load_python(spec: dict) -> LoadedModel:
    torch.manual_seed(int(spec["seed"]))
    module = import_class(spec["class"])(**spec["kwargs"])
    if spec.get("weights"):
        module.load_state_dict(torch.load(spec["weights"], map_location="cpu", weights_only=True))
    return probe(module, spec, adapted_call(module, spec["adapter"]), kind="python")
