"""The demo's oracle (hapexp.oracle): the sequence model the simulated expression came from."""

from __future__ import annotations

from pathlib import Path

from hapexp.errors import InputError
from hapexp.models.registry import LoadedModel, probe


def load_oracle(spec: dict) -> LoadedModel:
    from hapexp.oracle import Oracle

    path = spec["weights"]
    if not path or not Path(path).exists():
        raise InputError(path or "config", "oracle weights not found", "run the simulate_demo rule first")
    return probe(Oracle.load(path), spec, None, kind="oracle")
