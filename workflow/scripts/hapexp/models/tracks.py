"""Track metadata of a model: one row per output track, so that tracks are chosen by name.

Columns (every model): ``index`` (0-based output track), ``identifier``, ``description``,
``assay`` (``cage``, ``rna_seq``, ``dnase``, ``atac``, ``chip``, ``procap``, … or ``""``),
``strand`` (``+``, ``-`` or ``.`` for unstranded), ``strand_pair`` (the index of the
same experiment on the other strand; the track itself when unstranded) and
``resolution`` (bases per output bin). Models add their own columns (Borzoi's
``scale``/``clip_soft``/``sum_stat``, AlphaGenome's ``output``, ``ontology_curie``, …),
which `resolve_tracks` can filter on. Tracks are chosen by index, name or such a filter
(`resolve_tracks`); targets tables (`load_targets`) name the tracks of a checkpoint.

Why strand pairs: a model reads both DNA strands, so the reverse complement of an
input predicts the − strand track of the forward input in its + strand track (and
vice versa). Averaging a prediction with that of the reverse complement must
therefore flip the bins *and* swap each stranded track with its pair.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from hapexp.errors import InputError

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


def load_targets(path) -> pd.DataFrame:
    """A Basenji-style targets table: columns index, identifier, description (tab-separated)."""
    path = Path(path)
    if not path.exists():
        raise InputError(
            path, "targets table not found", "copy it from the model's release next to the config"
        )
    df = pd.read_csv(path, sep="\t")
    missing = {"index", "identifier", "description"} - set(df.columns)
    if missing:
        raise InputError(
            path, f"targets table lacks column(s) {sorted(missing)}", "use index/identifier/description"
        )
    return df


def _regex_mask(column: pd.Series, want: dict, key: str, where: str) -> np.ndarray:
    """``{regex: pattern}``: the tracks whose value matches by ``re.search`` (anchor with ^ and
    $ for a whole-value match); a tissue → track table needs patterns, not exact values."""
    if set(want) != {"regex"} or not isinstance(want["regex"], str):
        raise InputError(
            "config", f"track filter {key}: {want!r} is not {{regex: <pattern>}}", "give {regex: '...'}", where
        )
    try:
        pattern = re.compile(want["regex"])
    except re.error as e:
        raise InputError(
            "config", f"track filter {key}: invalid regular expression {want['regex']!r} ({e})",
            "fix the pattern (Python re syntax)", where,
        ) from None  # fmt: skip
    return np.fromiter((bool(pattern.search(v)) for v in column.astype(str)), bool, len(column))


def _filter_tracks(flt: dict, table: pd.DataFrame | None, where: str) -> list[int]:
    """Every track whose metadata columns equal the filter's values (a list = any of them;
    ``{regex: pattern}`` = every value the pattern matches, `_regex_mask`)."""
    if table is None:
        raise InputError("config", "this model has no track metadata to filter on", "give indices", where)
    mask = np.ones(len(table), bool)
    for key, want in flt.items():
        col = "description" if key == "name" and "name" not in table else key
        if col not in table:
            raise InputError(
                "config",
                f"track filter key {key!r} is not a metadata column",
                f"use some of {[c for c in table.columns if c != 'index']}",
                where,
            )
        if isinstance(want, dict):
            mask &= _regex_mask(table[col], want, key, where)
            continue
        wants = {str(w) for w in (want if isinstance(want, list) else [want])}
        mask &= table[col].astype(str).isin(wants).to_numpy()
    hits = np.flatnonzero(mask).tolist()
    if not hits:
        raise InputError(
            "config", f"no track matches {flt}", "check the values against the track table", where
        )
    return hits


def resolve_tracks(
    tracks,
    names: list[str],
    identifiers: list[str] | None = None,
    where: str = "model",
    table: pd.DataFrame | None = None,
) -> list[int]:
    """Tracks given by 0-based index, by name (description or identifier) or by a
    metadata filter (a mapping column → value(s), e.g. ``{assay: rna_seq, strand: "+"}``,
    which selects every matching track) → indices.

    A name must match exactly one track; an ambiguous description asks for the
    index or identifier instead.
    """
    n = len(names)
    out = []
    for t in tracks:
        if isinstance(t, dict):
            out += _filter_tracks(t, table, where)
            continue
        if isinstance(t, (int, np.integer)) and not isinstance(t, bool):
            if not 0 <= t < n:
                raise InputError(
                    "config", f"track index {t} out of range (model has {n})", "use 0 … n-1", where
                )
            out.append(int(t))
            continue
        hits = [i for i, s in enumerate(names) if s == t]
        if identifiers is not None:
            hits += [i for i, s in enumerate(identifiers) if s == t and i not in hits]
        if not hits:
            close = [s for s in names if str(t).lower() in s.lower()][:5]
            raise InputError(
                "config",
                f"no track named {t!r}",
                "give a track index or an exact description/identifier from the targets table"
                + (f"; similar: {close}" if close else ""),
                where,
            )
        if len(hits) > 1:
            raise InputError(
                "config", f"track name {t!r} matches indices {hits}", "give the index instead", where
            )
        out.append(hits[0])
    return out
