"""Loading Borzoi and Flashzoi (borzoi-pytorch): RNA-seq coverage at 32 bp from 524,288 bp.

Weights: `johahi/borzoi-replicate-0..3` (Borzoi, Linder et al. 2025) and
`johahi/flashzoi-replicate-0..3` (Flashzoi: FlashAttention-2 with rotary positions,
Hingerl et al. 2025), or a local directory written by `save_pretrained` /
`huggingface-cli download`; both through `Borzoi.from_pretrained`.

Input (B, 4, L) one-hot, L = 524,288; output (B, 7,611 human tracks, 6,144 bins of
32 bp): the central 196,608 bp, i.e. 163,840 bp cropped per side (`bins_to_return`
in the checkpoint's config; the crop is read from the loaded model). Tracks: the
package's targets table (`borzoi_pytorch/precomputed/targets.txt`): CAGE (stranded
pairs), RNA-seq (ENCODE stranded pairs and unstranded GTEx), DNase, ATAC, ChIP; the
`strand_pair` column pairs each + track with its − track.

Outputs are in Borzoi's squashed scale (coverage^(3/4) for RNA, soft-clipped,
scaled). `unsquash: true` (default) undoes it per bin and track with the table's
`scale`, `clip_soft` and `sum_stat` before any read-out, as borzoi-pytorch's
`AnnotatedBorzoi` does before summing coverage over a gene's exons.

Flashzoi's attention: hapexp.models.borzoi.flash_attention.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import torch

from hapexp.errors import InputError
from hapexp.models.borzoi import BIN, HUB_ID
from hapexp.models.borzoi.flash_attention import flash_attn_available, torch_flash_attention
from hapexp.models.registry import LoadedModel, from_pretrained, optional_package
from hapexp.models.tracks import default_table, load_targets, track_table

log = logging.getLogger("hapexp.models")


# ---------------------------------------------------------------- tracks and scale
def borzoi_tracks(spec: dict, n_tracks: int, is_human: bool):
    """The package's targets table (or `targets:`), with strands from the identifiers."""
    if spec.get("targets"):
        tab = load_targets(spec["targets"])
    elif is_human:
        from borzoi_pytorch.pytorch_borzoi_model import TRACKS_DF

        tab = TRACKS_DF
    else:
        tab = None
    if tab is None or len(tab) != n_tracks:
        return default_table(n_tracks, BIN)
    ident = tab["identifier"].astype(str)
    pair = tab["strand_pair"].to_numpy(np.int64) if "strand_pair" in tab else np.arange(len(tab))
    strand = np.where(pair == np.arange(len(tab)), ".", np.where(ident.str.endswith("-"), "-", "+"))
    extra = {c: tab[c].tolist() for c in ("clip", "clip_soft", "scale", "sum_stat") if c in tab}
    return track_table(ident, tab["description"], BIN, strands=strand, strand_pair=pair, extra=extra)


def unsquash_params(tracks, device):
    """(scale, clip_soft, 1/transform) per track, for `undo_squashed_scale` (Borzoi's old transform)."""
    for c in ("scale", "clip_soft", "sum_stat"):
        if c not in tracks:
            raise InputError(
                "config",
                f"unsquash needs the targets table column {c!r}",
                "give Borzoi's targets table (targets:) or set unsquash: false",
            )
    scale = torch.tensor(tracks["scale"].to_numpy(np.float32), device=device)
    clip = torch.tensor(tracks["clip_soft"].to_numpy(np.float32), device=device)
    inv = torch.tensor(
        np.where(tracks["sum_stat"] == "sum_sqrt", 4 / 3, 1.0).astype(np.float32), device=device
    )
    return scale, clip, inv


def undo_squashed_scale(x: torch.Tensor, scale, clip, inv) -> torch.Tensor:
    """x (B, bins, T) in squashed scale → coverage: /scale, unclip above clip_soft, ^(1/transform)."""
    x = x.float() / scale
    x = torch.where(x > clip, (x - clip) ** 2 + clip, x)
    return x.pow(inv)


# ---------------------------------------------------------------- loader
def load_borzoi(spec: dict) -> LoadedModel:
    bz = optional_package("borzoi_pytorch", "borzoi-pytorch", spec, " (Borzoi and Flashzoi load through it)")
    name = spec.get("name", "model")
    weights = str(spec["weights"])
    if weights == "random":
        raise InputError(
            "config", "borzoi has no random-weights mode", "give a hub id or directory", f"models.{name}"
        )
    attention = spec["attention"]
    use_torch = attention == "torch" or (attention == "auto" and not flash_attn_available())
    if attention == "flash" and not flash_attn_available():
        raise InputError(
            "config",
            "attention: flash needs the flash-attn package (CUDA)",
            "pip install flash-attn on the GPU node, or set attention: auto",
            where=f"models.{name}",
        )
    ctx = torch_flash_attention() if use_torch else contextlib.nullcontext()
    with ctx:
        model = from_pretrained(bz.Borzoi, spec, HUB_ID)
    return wrap_borzoi(model, spec, use_torch)


def wrap_borzoi(model, spec: dict, use_torch: bool = False) -> LoadedModel:
    """A Borzoi/Flashzoi module (loaded, or built with random weights by bench/) as a LoadedModel."""
    name = spec.get("name", "model")
    flashed = bool(getattr(model, "flashed", False))
    if flashed:
        log.info("flashzoi: attention from %s", "torch (TorchFlashAttention)" if use_torch else "flash-attn")
    head_human = spec["head"] == "human"
    if not head_human and not getattr(model, "enable_mouse_head", False):
        raise InputError("config", "this checkpoint has no mouse head", "use head: human", f"models.{name}")
    window = int(spec["window"])
    n_pos = window // BIN
    target = model.crop.target_length
    target = n_pos if target == -1 else target
    if window % 128 or target > n_pos:
        raise InputError(
            "config",
            f"a {window} bp window gives {n_pos} bins of 32 bp but the model returns the central {target}",
            f"use a multiple of 128 bp with at least {target * BIN} bp (published: 524288)",
            where=f"models.{name}",
        )
    crop = (n_pos - target) // 2 * BIN
    if spec.get("_crop_given") is not None and int(spec["_crop_given"]) != crop:
        raise InputError(
            "config",
            f"crop {spec['_crop_given']} differs from the checkpoint's {crop}",
            "drop crop",
            f"models.{name}",
        )
    is_human = head_human
    n_tracks = (model.human_head if is_human else model.mouse_head).out_channels
    tracks = borzoi_tracks(spec, n_tracks, is_human)
    device = spec.get("_device", torch.device("cpu"))
    params = unsquash_params(tracks, device) if spec["unsquash"] else None

    def call(x):
        out = model(x.transpose(1, 2), is_human=is_human).transpose(1, 2)  # (B, bins, tracks)
        return undo_squashed_scale(out, *params) if params is not None else out

    log.info(
        "%s: %d bins of 32 (crop %d), %d tracks, unsquash=%s",
        "flashzoi" if flashed else "borzoi", target, crop, n_tracks, params is not None,
    )  # fmt: skip
    model.to(device).eval()
    return LoadedModel.from_tracks(model, window, BIN, crop, tracks, "borzoi", call)
