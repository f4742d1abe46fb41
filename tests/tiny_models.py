"""Small randomly initialised checkpoints of each architecture, written with each package's
own save function (`save_pretrained` for Borzoi/Flashzoi, `AlphaGenome.save` for
AlphaGenome), so that tests load them through hapexp's registry exactly as real weights.

Random weights are He-normal (as hapexp's enformer_tiny): the packages' default inits
give outputs constant to ~1e-5 across sequences, and an equality test on a constant
output could not tell a transposed input from the right one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

BASES = np.frombuffer(b"ACGT", np.uint8)


def he_normal_(model, head_std: float | None = None, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.Conv1d | torch.nn.Linear):
                std = math.sqrt(2.0 / m.weight[0].numel())
                if head_std is not None and "head" in name:
                    std = head_std
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * std)
    return model


def onehot(seqs: np.ndarray) -> torch.Tensor:
    """uint8 ASCII (N, L) → (N, L, 4) float, A C G T, N = zeros."""
    out = np.zeros((*seqs.shape, 4), np.float32)
    for k, b in enumerate(BASES):
        out[seqs == b, k] = 1
    return torch.from_numpy(out)


def random_seqs(n: int, length: int, seed: int = 0, with_n: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    seqs = rng.choice(BASES, size=(n, length))
    if with_n:
        seqs[:, :7] = ord("N")  # an off-chromosome flank
    return seqs


def save_borzoi(path, flashed: bool = False, bins_to_return: int = 32, seed: int = 0) -> Path:
    """A tiny Borzoi (or Flashzoi: rotary GQA attention) with the full 7,611-track human head."""
    from borzoi_pytorch import Borzoi
    from borzoi_pytorch.config_borzoi import BorzoiConfig

    from hapexp.models.borzoi.flash_attention import torch_flash_attention

    torch.manual_seed(seed)
    if flashed:  # head dim 128 = Flashzoi's rotary dim; flash-attn is CUDA-only, hence the shim
        cfg = BorzoiConfig(dim=256, depth=1, heads=2, bins_to_return=bins_to_return, flashed=True)
        with torch_flash_attention():
            model = Borzoi(cfg)
    else:
        cfg = BorzoiConfig(
            dim=32, depth=1, heads=2, attn_dim_key=8, attn_dim_value=16, bins_to_return=bins_to_return
        )
        model = Borzoi(cfg)
    he_normal_(model, head_std=0.02, seed=seed).eval()
    model.save_pretrained(path)
    return Path(path)


# DeepMind-style track metadata records (alphagenome_metadata_raw.json's layout).
AG_RECORDS = {
    "rna_seq": [
        {"name": "EFO:0002784 total RNA-seq", "strand": "+", "Assay title": "total RNA-seq",
         "ontology_curie": "EFO:0002784", "biosample_name": "GM12878", "nonzero_mean": 1.5},
        {"name": "EFO:0002784 total RNA-seq", "strand": "-", "Assay title": "total RNA-seq",
         "ontology_curie": "EFO:0002784", "biosample_name": "GM12878", "nonzero_mean": 0.5},
        {"name": "UBERON:0000178 polyA plus RNA-seq", "strand": ".", "Assay title": "polyA plus RNA-seq",
         "ontology_curie": "UBERON:0000178", "biosample_name": "blood", "nonzero_mean": 2.0},
        {"name": "Padding", "strand": ".", "Assay title": None, "ontology_curie": None,
         "biosample_name": None, "nonzero_mean": None},
    ],
    "cage": [
        {"name": "EFO:0002784 CAGE", "strand": "+", "Assay title": "CAGE", "ontology_curie": "EFO:0002784",
         "biosample_name": "GM12878", "nonzero_mean": 3.0},
        {"name": "EFO:0002784 CAGE", "strand": "-", "Assay title": "CAGE", "ontology_curie": "EFO:0002784",
         "biosample_name": "GM12878", "nonzero_mean": 1.0},
    ],
}  # fmt: skip


def save_alphagenome(path, max_seq_len: int = 4096, seed: int = 0) -> Path:
    """A tiny AlphaGenome (rna_seq + cage heads) via `AlphaGenome.save`, plus its raw metadata."""
    from alphagenome_pt import AlphaGenome, AlphaGenomeConfig

    heads = {}
    for head, recs in AG_RECORDS.items():
        means = [r["nonzero_mean"] or 1.0 for r in recs]
        mask = [r["name"] != "Padding" for r in recs]
        heads[head] = {"num_tracks": [len(recs)], "means": [means], "track_mask": [mask]}
    md = {"organisms": ["human"], "heads": heads}
    torch.manual_seed(seed)
    cfg = AlphaGenomeConfig(
        max_seq_len=max_seq_len,
        num_channels=24,
        transformer_layers=1,
        pair_heads=2,
        pos_channels=8,
        metadata=md,
    )
    model = AlphaGenome(cfg).eval()
    he_normal_(model, head_std=0.05, seed=seed)
    path = Path(path)
    model.save(path)
    raw = {
        "organisms": {
            "human": {
                h: {"num_rows": len(r), "columns": list(r[0]), "records": r} for h, r in AG_RECORDS.items()
            }
        }
    }
    (path / "alphagenome_metadata_raw.json").write_text(json.dumps(raw, indent=1))
    return path
