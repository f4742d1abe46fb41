"""The oracle: a small, fixed sequence-to-expression model with known biology.

The demo cohort (`hapexp.demo.simulate`) draws expression from this model, so the
benchmark has a model whose predictions are right by construction. It is a
`torch.nn.Module` with the same interface as the deep models:

    forward(x: float (B, L, 4), channels A,C,G,T, N = zeros) -> (B, L // 128, n_tracks)

for any `L` that is a multiple of 128 (no crop: bin `j` covers input `[128 j, 128 j + 128)`).

How an output is made (all weights fixed, nothing is trained):
1. *Motif matches.* Each motif (6-10 bp consensus) is scanned on both strands with a
   one-hot filter; the score is the number of matching bases. A steep sigmoid at
   `k - 0.5` turns it into ~1 for an exact match and <= `sigmoid(-steepness/2)`
   (~0.03 % by default) for one mismatch, so a motif instance is essentially on/off
   and a single SNV that creates or breaks one moves the readout by a clear step.
2. *Distance weighting.* A match starting at `s` is centred at `p = s + k // 2` and adds `weight[track, motif]
   * exp(-|p - centre_j| / length_scale)` to bin `j`'s activity (bin centre
   `128 j + 64`); activators have positive, repressors negative weights.
   Contributions farther than `radius` bases are dropped.
3. *Output.* `scale[track] * softplus(baseline[track] + activity)`: positive, smooth and
   monotone in every motif's presence, so the sign of a motif gain/loss effect is the
   sign of the motif's weight.

Tissues (the multi-tissue demo): `Oracle.for_tissues(names)` has one track per tissue,
track k reading only tissue k's motif set (`tissue_motif_sets`; weight 0 on every other
motif), so a variant that creates or breaks a motif of tissue k moves track k alone.

Everything that defines the model is a buffer in `state_dict`; `save` writes only
hyper-parameters + state_dict, and `load` reads it back with `weights_only=True`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hapexp.errors import InputError
from hapexp.models.registry import LoadedModel, probe

# (name, consensus, weight on track 0, weight on track 1). Non-palindromic, so the two
# strands never double-count one instance; 8-10 bp so random instances are rare
# (~0.06 per 2 kb window over all motifs).
DEFAULT_MOTIFS: list[tuple[str, str, float, float]] = [
    ("ACT1", "GGCGGGAAGT", 1.0, 1.0),
    ("ACT2", "TTGACTCATG", 0.8, 0.9),
    ("ACT3", "CACGTGACCA", 0.6, 0.5),
    ("ACT4", "TCAGCCTTAG", 0.7, 0.2),
    ("REP1", "ATCCTTAGCA", -1.0, -0.3),
    ("REP2", "GCAAACAATG", -0.7, -0.2),
]

ALPHABET = "ACGT"
_COMPLEMENT = str.maketrans("ACGT", "TGCA")

TISSUE_MOTIF_SEED = 2021  # the fixed stream later tissues' motifs are drawn from
MIN_MOTIF_MISMATCHES = 3  # between any two motifs (either strand, shifted by up to 2 bp)


def revcomp(seq: str) -> str:
    return seq.translate(_COMPLEMENT)[::-1]


def _far(seq: str, others: list[str], max_shift: int = 2) -> bool:
    """`seq` differs from every one of `others` in >= MIN_MOTIF_MISMATCHES of the overlapping
    bases at every shift up to `max_shift` (and from its own reverse complement: no palindromes)."""
    codes = np.frombuffer(seq.encode(), dtype=np.uint8)
    rest = np.frombuffer("".join([*others, revcomp(seq)]).encode(), dtype=np.uint8).reshape(-1, len(seq))
    for d in range(-max_shift, max_shift + 1):
        a = codes[max(d, 0) : len(seq) + min(d, 0)]
        b = rest[:, max(-d, 0) : len(seq) + min(-d, 0)]
        if ((a != b).sum(axis=1) < MIN_MOTIF_MISMATCHES).any():
            return False
    return True


@functools.cache
def _tissue_motif_sets(n_tissues: int) -> tuple[tuple[tuple[str, str, float], ...], ...]:
    sets = [tuple((m[0], m[1], m[2]) for m in DEFAULT_MOTIFS)]
    taken = [s for m in DEFAULT_MOTIFS for s in (m[1], revcomp(m[1]))]
    rng = np.random.default_rng(TISSUE_MOTIF_SEED)
    for _ in range(1, n_tissues):
        motifs = []
        for name, _consensus, weight, _w1 in DEFAULT_MOTIFS:
            seq = "".join(rng.choice(list(ALPHABET), size=10))
            while len(set(seq)) < 3 or not _far(seq, taken):
                seq = "".join(rng.choice(list(ALPHABET), size=10))
            taken += [seq, revcomp(seq)]
            motifs.append((name, seq, weight))
        sets.append(tuple(motifs))
    return tuple(sets)


def tissue_motif_sets(n_tissues: int) -> list[list[tuple[str, str, float]]]:
    """(name, consensus, weight) per tissue: the first tissue reads DEFAULT_MOTIFS with their
    track-0 weights; each later tissue as many 10-bp motifs of its own with the same names and
    weights, drawn from a fixed stream (so tissue k's set does not depend on how many follow)
    and kept only when `_far` from every motif before it on both strands."""
    return [list(s) for s in _tissue_motif_sets(int(n_tissues))]


class Oracle(nn.Module):
    """Fixed motif model; see the module docstring for the exact computation."""

    def __init__(
        self,
        motifs: list[str] | None = None,
        motif_names: list[str] | None = None,
        weights: list[list[float]] | None = None,
        baseline: list[float] | None = None,
        scale: list[float] | None = None,
        steepness: float = 16.0,
        length_scale: float = 600.0,
        radius: int = 3072,
        bin_size: int = 128,
    ):
        super().__init__()
        if motifs is None:
            motif_names = [m[0] for m in DEFAULT_MOTIFS]
            motifs = [m[1] for m in DEFAULT_MOTIFS]
            weights = [[m[2] for m in DEFAULT_MOTIFS], [m[3] for m in DEFAULT_MOTIFS]]
            baseline = [0.5, 0.0] if baseline is None else baseline
        motif_names = motif_names or [f"M{i + 1}" for i in range(len(motifs))]
        weights = weights if weights is not None else [[1.0] * len(motifs)]
        n_tracks = len(weights)
        baseline = baseline if baseline is not None else [0.0] * n_tracks
        scale = scale if scale is not None else [1.0] * n_tracks
        if any(len(w) != len(motifs) for w in weights):
            raise ValueError("weights must be n_tracks lists of one weight per motif")
        if len(baseline) != n_tracks or len(scale) != n_tracks:
            raise ValueError("baseline and scale need one value per track")
        if any(set(m) - set(ALPHABET) for m in motifs):
            raise ValueError("motifs must be upper-case ACGT strings")
        if radius % bin_size:
            raise ValueError("radius must be a multiple of bin_size")
        self.hparams = {
            "motifs": list(motifs),
            "motif_names": list(motif_names),
            "weights": [list(map(float, w)) for w in weights],
            "baseline": list(map(float, baseline)),
            "scale": list(map(float, scale)),
            "steepness": float(steepness),
            "length_scale": float(length_scale),
            "radius": int(radius),
            "bin_size": int(bin_size),
        }
        self.bin_size = int(bin_size)
        self.n_tracks = n_tracks
        self.motifs = list(motifs)
        self.motif_names = list(motif_names)
        n_motifs = len(motifs)
        kmax = max(len(m) for m in motifs)
        self.kmax = kmax

        # Filters: channel 2m = motif m forward, 2m+1 = its reverse complement, both
        # anchored at the instance's first (leftmost) base; shorter motifs are
        # zero-padded on the right.
        filters = torch.zeros(2 * n_motifs, 4, kmax)
        thresholds = torch.zeros(2 * n_motifs)
        for m, motif in enumerate(motifs):
            for s, seq in enumerate((motif, revcomp(motif))):
                for i, base in enumerate(seq):
                    filters[2 * m + s, ALPHABET.index(base), i] = 1.0
                thresholds[2 * m + s] = len(motif) - 0.5
        self.register_buffer("filters", filters)
        self.register_buffer("thresholds", thresholds)

        # Distance kernel: bin j (centre 128 j + 64) reads motif centres at offsets
        # [-radius - 64, radius - 64) from its centre; an instance starting at p of motif m
        # is centred at p + k_m // 2.
        offsets = torch.arange(2 * radius, dtype=torch.float64) - radius - bin_size // 2
        self.register_buffer("kernel", torch.exp(-offsets.abs() / length_scale).float())
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float32))
        self.centre_shift = [len(m) // 2 for m in motifs]
        self.register_buffer("baseline", torch.tensor(baseline, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))

    def motif_presence(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, 4) one-hot -> (B, n_motifs, L) soft presence of an instance starting at each position."""
        xt = x.transpose(1, 2)  # (B, 4, L)
        xt = F.pad(xt, (0, self.kmax - 1))
        # Scores are small integers for one-hot input: exact in float32 whatever the
        # summation order, and float32 conv1d is much faster than float64 on CPU.
        score = F.conv1d(xt.float(), self.filters.float()).to(x.dtype)
        match = torch.sigmoid(
            self.hparams["steepness"] * (score - self.thresholds.to(x.dtype)[None, :, None])
        )
        return match[:, 0::2] + match[:, 1::2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[-1] != 4:
            raise ValueError(f"Oracle expects one-hot input (B, L, 4); got {tuple(x.shape)}")
        length = x.shape[1]
        if length % self.bin_size:
            raise ValueError(f"Oracle input length must be a multiple of {self.bin_size}; got {length}")
        presence = self.motif_presence(x)
        radius, bs = self.hparams["radius"], self.bin_size
        # Per-track activity density at motif centres: sum_m weight[t, m] * presence_m.
        weights = self.weights.to(x.dtype)
        density = torch.zeros(x.shape[0], self.n_tracks, length, dtype=x.dtype, device=x.device)
        for m, shift in enumerate(self.centre_shift):
            shifted = F.pad(presence[:, m], (shift, 0))[:, :length]
            density = density + weights[:, m][None, :, None] * shifted[:, None, :]
        # Distance weighting = a stride-128 convolution with the 2*radius-wide kernel,
        # written in block space as 2*radius/128 small products: O(L) memory and fast in
        # float64 too (CPU conv1d has no fast float64 path).
        n_bins, n_k = length // bs, 2 * radius // bs
        blocks = F.pad(density, (radius, radius)).reshape(x.shape[0], self.n_tracks, -1, bs)
        kernel = self.kernel.to(x.dtype).reshape(n_k, bs)
        activity = blocks[:, :, 0:n_bins] @ kernel[0]
        for k in range(1, n_k):
            activity = activity + blocks[:, :, k : k + n_bins] @ kernel[k]  # (B, tracks, bins)
        out = self.scale.to(x.dtype)[None, :, None] * F.softplus(
            self.baseline.to(x.dtype)[None, :, None] + activity
        )
        return out.transpose(1, 2).contiguous()

    @classmethod
    def for_tissues(cls, tissues: list[str]) -> Oracle:
        """One track per tissue (in this order): track k = tissue k's motifs
        (`tissue_motif_sets`, named `<tissue>:<motif>`), weight 0 on the others; baseline 0.5."""
        motifs, names, owner, weight = [], [], [], []
        for k, (tissue, mset) in enumerate(zip(tissues, tissue_motif_sets(len(tissues)), strict=True)):
            for name, seq, w in mset:
                motifs.append(seq)
                names.append(f"{tissue}:{name}")
                owner.append(k)
                weight.append(w)
        weights = [
            [w if o == k else 0.0 for o, w in zip(owner, weight, strict=True)] for k in range(len(tissues))
        ]
        return cls(motifs=motifs, motif_names=names, weights=weights, baseline=[0.5] * len(tissues))

    # -- persistence ---------------------------------------------------------------------
    def _payload(self) -> dict:
        state = {k: v.detach().cpu().float().clone() for k, v in self.state_dict().items()}
        return {"format": "hapexp.oracle/1", "hparams": self.hparams, "state_dict": state}

    def to_bytes(self) -> bytes:
        """Serialized hyper-parameters + state_dict; byte-identical for identical models."""
        from hapexp.torch_files import torch_bytes

        return torch_bytes(self._payload())

    def save(self, path) -> None:
        """Write the model atomically (hyper-parameters + state_dict only, no pickled classes)."""
        from hapexp.torch_files import write_torch

        write_torch(self._payload(), path)

    @classmethod
    def load(cls, path, map_location: str | torch.device = "cpu") -> Oracle:
        obj = torch.load(path, map_location=map_location, weights_only=True)
        if not isinstance(obj, dict) or obj.get("format") != "hapexp.oracle/1":
            raise InputError(
                path,
                "not a hapexp oracle file (missing format tag 'hapexp.oracle/1')",
                "Regenerate it with the simulate_demo rule or Oracle.save().",
            )
        model = cls(**obj["hparams"])
        model.load_state_dict(obj["state_dict"])
        return model.eval()


def one_hot(seqs) -> torch.Tensor:
    """uint8 ASCII sequences (n, L) (or one (L,)) -> float64 one-hot (n, L, 4); N/other = zeros."""
    arr = np.atleast_2d(np.asarray(seqs, dtype=np.uint8))
    lut = np.full(256, 4, dtype=np.int64)
    for i, b in enumerate(b"ACGT"):
        lut[b] = i
        lut[b + 32] = i  # lower case
    idx = torch.from_numpy(lut[arr])
    eye = torch.cat([torch.eye(4, dtype=torch.float64), torch.zeros(1, 4, dtype=torch.float64)])
    return eye[idx]


def load_oracle(spec: dict) -> LoadedModel:
    """The demo's oracle from its weights file (written by rule simulate_demo)."""
    path = spec["weights"]
    if not path or not Path(path).exists():
        raise InputError(path or "config", "oracle weights not found", "run the simulate_demo rule first")
    return probe(Oracle.load(path), spec, None, kind="oracle")
