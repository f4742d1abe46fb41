"""Your own model: the kinds `torchscript` (a TorchScript file) and `python` (an nn.Module class).

This module declares the kinds and their `adapter` (no torch); `load` holds the code.
"""

from __future__ import annotations

from typing import ClassVar

from hapexp.models.kind import Kind, config_error

ADAPTER_DEFAULTS: dict = {
    "input": "blc",  # one-hot layout the model takes: (B, L, 4) "blc" or (B, 4, L) "bcl"
    "output": "blt",  # output layout: (B, bins, tracks) "blt" or (B, tracks, bins) "btl"
    "output_key": None,  # model returns a dict/tuple: the key or index of the track tensor
    "bin_size": None,
    "crop": 0,
}


class Custom(Kind):
    """bin_size and crop come from `adapter`; the output shape is probed at load."""

    defaults = {"adapter": {}}
    local_weights = True
    # The keys that give the model's file or class (the first one present counts), and the
    # (problem, fix) of a config that gives none.
    source: ClassVar[tuple[str, ...]]
    missing: ClassVar[tuple[str, str]]

    @classmethod
    def derive(cls, spec: dict, cfg: dict, name: str) -> None:
        adapter = {**ADAPTER_DEFAULTS, **cfg.get("adapter", {})}
        if adapter["bin_size"] is None:
            raise config_error(
                name, "adapter.bin_size is missing", "give the model's output bin size in bases"
            )
        if adapter["input"] not in ("blc", "bcl") or adapter["output"] not in ("blt", "btl"):
            raise config_error(
                name, "adapter.input must be blc|bcl and adapter.output blt|btl", "fix the adapter"
            )
        spec["adapter"] = adapter
        spec["bin_size"], spec["crop"] = int(adapter["bin_size"]), int(adapter["crop"])
        if not next((spec[k] for k in cls.source if k in spec), None):
            raise config_error(name, *cls.missing)


class TorchScript(Custom):
    name = "torchscript"
    loader = "hapexp.models.custom.load:load_torchscript"
    source = ("path", "weights")
    missing = ("a torchscript model needs `path`", "give the .pt file written by torch.jit.save")


class Python(Custom):
    name = "python"
    defaults = {**Custom.defaults, "kwargs": {}}  # constructor arguments
    loader = "hapexp.models.custom.load:load_python"
    source = ("class",)
    missing = ("a python model needs `class`", "give 'package.module:Class' or 'file.py:Class'")


KINDS = (TorchScript, Python)
