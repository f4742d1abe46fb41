"""Enformer (enformer-pytorch): the kinds `enformer` (published weights) and `enformer_tiny`.

This module declares the kinds (defaults and derived values; no torch). The code:
`load` (weights, track table, the loaded model's capabilities), `attention` (fused
relative-position attention kernels), `ism_reuse` (ISM that reuses the reference's
conv-tower activations), `training` (what fine-tuning trains).
"""

from __future__ import annotations

from pathlib import Path

from hapexp.models.kind import Kind

HUB_ID = "EleutherAI/enformer-official-rough"
# Shipped with the repository (resources/), found from here so that runs in another
# working directory (snakemake --directory, tests) use it too.
TARGETS = str(Path(__file__).resolve().parents[5] / "resources" / "enformer_targets_human.tsv")
# enformer-pytorch's pooling: output bins of 2^num_downsamples bp.
DOWNSAMPLES = 7
# enformer-pytorch crops the trunk output to this many bins (target_length).
TARGET_BINS = 896


class Enformer(Kind):
    """The published model: 196,608 bp in, 896 bins of 128 bp out (40,960 bp cropped per side)."""

    name = "enformer"
    loader = "hapexp.models.enformer.load:load_enformer"
    pretrained_dir = True
    defaults = {
        "bin_size": 128,
        "crop": 40960,
        "window": 196608,
        "weights": HUB_ID,
        "head": "human",
        "targets": TARGETS,
        "use_tf_gamma": None,  # None = auto: on when the transformer sees 1536 positions
    }

    @classmethod
    def derive(cls, spec: dict, cfg: dict, name: str) -> None:
        if "crop" not in cfg:
            # The trunk is cropped to TARGET_BINS bins; smaller windows crop less.
            spec["crop"] = max(0, (int(spec["window"]) // 128 - TARGET_BINS) // 2 * 128)


class EnformerTiny(Kind):
    """A small Enformer with seeded random weights (or a state dict from rule finetune)."""

    name = "enformer_tiny"
    defaults = {
        "bin_size": 128,
        "crop": 0,
        "window": 2048,
        # Small enough for the demo (a few thousand 2 kb sequences) in seconds on CPU.
        "hparams": {
            "dim": 48,
            "depth": 1,
            "heads": 2,
            "attn_dim_key": 16,
            "dim_divisible_by": 8,
            "n_tracks": 8,
        },
    }
    loader = "hapexp.models.enformer.load:load_enformer_tiny"
    self_initialised = True

    @classmethod
    def derive(cls, spec: dict, cfg: dict, name: str) -> None:
        spec["hparams"] = {**cls.defaults["hparams"], **cfg.get("hparams", {})}
        spec["bin_size"] = 2 ** int(spec["hparams"].get("num_downsamples", DOWNSAMPLES))


KINDS = (Enformer, EnformerTiny)
