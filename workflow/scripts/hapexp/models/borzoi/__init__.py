"""Borzoi and Flashzoi (borzoi-pytorch): the kind `borzoi`.

This module declares the kind (defaults and derived values; no torch). The code: `load`
(weights, track table, the squashed scale undone), `flash_attention` (Flashzoi's
attention in plain torch where flash-attn is missing).
"""

from __future__ import annotations

from hapexp.models.kind import Kind

HUB_ID = "johahi/borzoi-replicate-0"  # Flashzoi: johahi/flashzoi-replicate-0
BIN = 32
# The published checkpoints return the central 6,144 bins (bins_to_return).
TARGET_BINS = 6144


class Borzoi(Kind):
    """524,288 bp in, the central 6,144 bins of 32 bp out (the crop is read from the checkpoint)."""

    name = "borzoi"
    defaults = {
        "bin_size": BIN,
        "window": 524288,
        "weights": HUB_ID,
        "head": "human",
        "unsquash": True,
    }
    loader = "hapexp.models.borzoi.load:load_borzoi"
    # Flashzoi's flash-attn, or the same computation in torch (hapexp.models.borzoi.flash_attention).
    attention = ("auto", "flash", "torch")
    pretrained_dir = True

    @classmethod
    def derive(cls, spec: dict, cfg: dict, name: str) -> None:
        # The loader reads the checkpoint's own crop and refuses an explicit `crop` that
        # disagrees (a spec resolved before keeps what the user gave).
        spec["_crop_given"] = cfg["_crop_given"] if "_crop_given" in cfg else cfg.get("crop")
        if "crop" not in cfg:
            spec["crop"] = max(0, (int(spec["window"]) // BIN - TARGET_BINS) // 2 * BIN)


KINDS = (Borzoi,)
