"""Model configuration: defaults per model kind, resolved without importing torch.

`rules/common.smk` uses `model_spec` to size jobs (device → GPU resource), so this
module must stay import-light.
"""

from __future__ import annotations

# Static metadata per kind: output bin size and bases cropped on each side of the
# input before the first output bin (0 = bins tile the whole input).
KIND_DEFAULTS: dict[str, dict] = {
    "oracle": {"bin_size": 128, "crop": 0},
    "enformer_tiny": {"bin_size": 128, "crop": 0},
    "enformer": {"bin_size": 128, "crop": 40960, "window": 196608},
    "borzoi": {"bin_size": 32, "crop": 163840, "window": 524288},
    "torchscript": {},
}

COMMON_DEFAULTS: dict = {
    "tracks": [0],
    "bins": 3,
    "bin_aggregation": "sum",
    "haplotype_aggregation": "mean",
    "log": False,
    "rc_minus": True,
    "rc_average": False,
    "batch_size": 8,
    "device": "auto",
    "precision": "fp32",
    "compile": False,
    "store_all_tracks": False,
    "seed": 0,
}


def model_spec(cfg: dict) -> dict:
    """Return the model's config with every default filled in (config wins)."""
    kind = cfg["kind"]
    if kind not in KIND_DEFAULTS:
        raise ValueError(f"unknown model kind {kind!r}; known kinds: {', '.join(sorted(KIND_DEFAULTS))}")
    spec = {**COMMON_DEFAULTS, **KIND_DEFAULTS[kind], **cfg}
    return spec
