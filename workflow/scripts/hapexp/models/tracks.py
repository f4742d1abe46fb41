"""Track metadata of a model: one row per output track, so that tracks are chosen by name.

Columns (every model): ``index`` (0-based output track), ``identifier``, ``description``,
``assay`` (``cage``, ``rna_seq``, ``dnase``, ``atac``, ``chip``, ``procap``, … or ``""``),
``strand`` (``+``, ``-`` or ``.`` for unstranded), ``strand_pair`` (the index of the
same experiment on the other strand; the track itself when unstranded) and
``resolution`` (bases per output bin). Models add their own columns (Borzoi's
``scale``/``clip_soft``/``sum_stat``, AlphaGenome's ``output``, ``ontology_curie``, …),
which `hapexp.engine.readout.resolve_tracks` can filter on.

Why strand pairs: a model reads both DNA strands, so the reverse complement of an
input predicts the − strand track of the forward input in its + strand track (and
vice versa). Averaging a prediction with that of the reverse complement must
therefore flip the bins *and* swap each stranded track with its pair.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TRACK_COLUMNS = ["index", "identifier", "description", "assay", "strand", "strand_pair", "resolution"]

# Assays whose expression read-out is the TSS signal (the read-out `exons` keeps the
# TSS bins for them): CAGE and PRO-cap measure transcription starts, not coverage.
TSS_ASSAYS = frozenset({"cage", "procap"})

# Description prefixes of the Basenji/Enformer/Borzoi targets tables → assay.
_PREFIX_ASSAY = {"CAGE": "cage", "RNA": "rna_seq", "DNASE": "dnase", "ATAC": "atac", "CHIP": "chip"}


def assay_of(description: str) -> str:
    """Assay from a Basenji-style description (``CAGE:…``, ``RNA:…``); ``""`` if unknown."""
    return _PREFIX_ASSAY.get(str(description).split(":", 1)[0].strip().upper(), "")


def track_table(
    identifiers,
    descriptions,
    resolution: int,
    assays=None,
    strands=None,
    strand_pair=None,
    extra: dict | None = None,
) -> pd.DataFrame:
    """Build a track table; assays default to the description prefix, strands to ``.``."""
    n = len(identifiers)
    tab = pd.DataFrame(
        {
            "index": np.arange(n, dtype=np.int64),
            "identifier": [str(x) for x in identifiers],
            "description": [str(x) for x in descriptions],
            "assay": [assay_of(d) for d in descriptions] if assays is None else [str(a) for a in assays],
            "strand": ["."] * n if strands is None else [str(s) for s in strands],
            "strand_pair": np.arange(n) if strand_pair is None else np.asarray(strand_pair, dtype=np.int64),
            "resolution": int(resolution),
        }
    )
    for k, v in (extra or {}).items():
        tab[k] = list(v)
    check_strand_pairs(tab)
    return tab


def default_table(n_tracks: int, resolution: int) -> pd.DataFrame:
    """Anonymous tracks ``track_0`` … (models without metadata)."""
    names = [f"track_{i}" for i in range(n_tracks)]
    return track_table(names, names, resolution, assays=[""] * n_tracks)


def pair_by_strand(tab: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """Strand pairs of tracks sharing `keys` (e.g. the experiment name) on opposite strands.

    A stranded track without a partner keeps itself (it is then averaged with its own
    reverse-complement prediction, as an unstranded track would be).
    """
    pair = np.arange(len(tab), dtype=np.int64)
    groups = tab.groupby([tab[k].astype(str) for k in keys], sort=False).indices
    for rows in groups.values():
        plus = [i for i in rows if tab["strand"].iloc[i] == "+"]
        minus = [i for i in rows if tab["strand"].iloc[i] == "-"]
        for p, m in zip(plus, minus, strict=False):
            pair[p], pair[m] = m, p
    return pair


def check_strand_pairs(tab: pd.DataFrame) -> None:
    """strand_pair must be an involution (pairs point at each other) within range."""
    pair = tab["strand_pair"].to_numpy()
    n = len(pair)
    if n and (pair.min() < 0 or pair.max() >= n or not np.array_equal(pair[pair], np.arange(n))):
        bad = int(
            np.flatnonzero((pair < 0) | (pair >= n) | (pair[np.clip(pair, 0, n - 1)] != np.arange(n)))[0]
        )
        raise ValueError(f"track {bad}: strand_pair {pair[bad]} does not point back to it")


def is_tss_assay(tab: pd.DataFrame, idx) -> np.ndarray:
    """bool per selected track: read at the TSS even under ``readout: exons``."""
    return tab["assay"].iloc[list(idx)].isin(TSS_ASSAYS).to_numpy()
