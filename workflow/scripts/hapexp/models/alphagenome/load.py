"""Loading AlphaGenome through `alphagenome-pt` (a PyTorch port of DeepMind's JAX model).

Weights: the port's converted DeepMind checkpoint, hub id
`RylieWeaver/alphagenome-pytorch` (files `v<version>/alphagenome_<fold>.safetensors`,
`alphagenome_metadata.json`, `alphagenome_metadata_raw.json`; `fold: all_folds` or
`fold_0..3`), or a local directory holding those files, or a directory written by
`AlphaGenome.save(dir)` (`config.json`, `metadata.json`, `model.safetensors`).

Input one-hot (B, L, 4), L up to 1,048,576 (a multiple of 2,048); outputs per head
(`rna_seq`, `cage`, `procap`, `dnase`, `atac`: 1 bp and 128 bp; `chip_tf`,
`chip_histone`: 128 bp), here the experimental-scale `predictions_<res>bp` of the
heads listed in `outputs`, concatenated along the track axis, at `resolution` (1 or
128) with no cropping. Track names, strands and the other DeepMind metadata columns
come from `alphagenome_metadata_raw.json` (records of `name`, `strand`, …); − and +
tracks of the same `name` are strand pairs. Other heads (splicing, contact maps) are
switched off: they are not read out and the junction head is memory-hungry.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from hapexp.errors import InputError
from hapexp.models.alphagenome import HUB_ID
from hapexp.models.registry import LoadedModel, missing_weights, optional_package
from hapexp.models.spec import is_hub_id
from hapexp.models.tracks import pair_by_strand, track_table

log = logging.getLogger("hapexp.models")

RAW_METADATA = "alphagenome_metadata_raw.json"
SEQUENCE_HEADS = ("rna_seq", "cage", "procap", "dnase", "atac", "chip_tf", "chip_histone")
ONE_BP_HEADS = ("rna_seq", "cage", "procap", "dnase", "atac")


def _how(name: str, hub: str) -> str:
    return (
        "download the converted checkpoint on a machine with internet: `huggingface-cli download "
        f"{hub} --include 'v*/alphagenome_all_folds.safetensors' 'v*/alphagenome_metadata*.json' "
        f"--local-dir resources/models/alphagenome`, then set models.{name}.weights to the "
        "v<version> directory inside it (or pre-fill $HF_HOME and run with HF_HUB_OFFLINE=1)"
    )


def _raw_metadata(spec: dict, weights: str, ag) -> dict | None:
    """DeepMind's track metadata (names, strands) from the weights' directory or the hub cache."""
    if not is_hub_id(weights):
        p = Path(weights) / RAW_METADATA
        return json.loads(p.read_text()) if p.exists() else None
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(
            weights, RAW_METADATA, subfolder=spec.get("repo_dir") or f"v{ag.package_version()}"
        )
    except (OSError, ValueError) as e:
        log.warning("alphagenome: no track metadata (%s): tracks are named by index", e)
        return None
    return json.loads(Path(path).read_text())


def load_module(spec: dict, ag):
    """The AlphaGenome module of `weights` (saved directory, published files, or hub id)."""
    name = spec.get("name", "model")
    weights = str(spec["weights"])
    d = Path(weights)
    try:
        if not is_hub_id(weights) and not d.exists():
            raise missing_weights(spec, weights, "no such file or directory", how=_how(name, HUB_ID))
        if (d / "config.json").exists() and (d / "model.safetensors").exists():
            return ag.AlphaGenome.load(d)
        kw = {"repo_id": weights} if is_hub_id(weights) else {"local_dir": d}
        return ag.deepmind_model(load_state=True, fold=spec["fold"], **kw)
    except (OSError, ValueError) as e:  # offline cache miss, hub unreachable, broken files
        raise missing_weights(
            spec, weights, f"{type(e).__name__}: {str(e).splitlines()[0]}", how=_how(name, HUB_ID)
        ) from e


def alphagenome_tracks(model, raw: dict | None, organism: str, outputs: list[str], resolution: int):
    """Track table of the concatenated outputs (identifier `<output>:<name>:<strand>`)."""
    md = model.metadata
    org = md.get_organism_index(organism)
    idents, descs, assays, strands, extra_rows = [], [], [], [], []
    for head in outputs:
        n = md.get_num_tracks(head)  # padded width of the head's output
        recs = (raw or {}).get("organisms", {}).get(organism, {}).get(head, {}).get("records")
        if recs is not None and len(recs) > n:
            raise ValueError(f"{head}: {len(recs)} metadata records for {n} output tracks")
        for i in range(n):
            r = (
                recs[i]
                if recs is not None and i < len(recs)
                else {"name": f"{head}_track_{i}", "strand": "."}
            )
            name, strand = str(r.get("name")), str(r.get("strand") or ".")
            idents.append(f"{head}:{name}:{strand}")
            descs.append(name)
            assays.append(head)
            strands.append(strand if strand in "+-" else ".")
            extra_rows.append({k: v for k, v in r.items() if k not in ("name", "strand")} | {"output": head})
        log.debug("alphagenome %s: %d tracks for %s (organism %d)", head, n, organism, org)
    # Identifiers must be unique to be chosen by name: number repeated ones.
    seen: dict[str, int] = {}
    for i, x in enumerate(idents):
        k = seen.get(x, 0)
        seen[x] = k + 1
        if k:
            idents[i] = f"{x}#{k + 1}"
    cols = sorted({k for r in extra_rows for k in r})
    extra = {
        c: [r.get(c) for r in extra_rows] for c in cols if c not in ("index", "identifier", "description")
    }
    tab = track_table(idents, descs, resolution, assays=assays, strands=strands, extra=extra)
    tab["strand_pair"] = pair_by_strand(tab, ["output", "description"])
    return tab


def load_alphagenome(spec: dict) -> LoadedModel:
    ag = optional_package("alphagenome_pt", "alphagenome-pt", spec)
    model = load_module(spec, ag)
    return wrap_alphagenome(model, spec, _raw_metadata(spec, str(spec["weights"]), ag))


def wrap_alphagenome(model, spec: dict, raw: dict | None) -> LoadedModel:
    """An AlphaGenome module (loaded, or built with random weights by bench/) as a LoadedModel."""
    from alphagenome_pt import get_dtype_policy

    name = spec.get("name", "model")
    resolution = int(spec["resolution"])
    outputs = list(spec["outputs"])
    heads_md = model.metadata.metadata["heads"]
    for h in outputs:
        if h not in SEQUENCE_HEADS or h not in heads_md:
            raise InputError(
                "config",
                f"AlphaGenome output {h!r} is not a track head of this checkpoint",
                f"use some of {[x for x in SEQUENCE_HEADS if x in heads_md]}",
                where=f"models.{name}.outputs",
            )
        if resolution == 1 and h not in ONE_BP_HEADS:
            raise InputError("config", f"{h} has no 1-bp output", "use resolution: 128", f"models.{name}")
    for h in heads_md:  # run only the heads that are read out
        heads_md[h]["enabled"] = h in outputs
    organism = spec["organism"]
    if organism not in model.metadata.get_organisms():
        raise InputError(
            "config",
            f"organism {organism!r} is not in the checkpoint ({model.metadata.get_organisms()})",
            "set organism: to one of them",
            where=f"models.{name}.organism",
        )
    org = model.metadata.get_organism_index(organism)
    # `precision: bf16` runs the port's DeepMind policy (fp32 weights, bf16 compute); fp32,
    # tf32 and auto its float32 policy, so that the engine's precision switches (autocast,
    # TF32; the strict-fp32 audit pass of `auto`) decide, as for every other model.
    model.dtype_policy = get_dtype_policy("deepmind" if spec["precision"] == "bf16" else "float32")
    window = int(spec["window"])
    try:
        model.check_seq_len(window)
    except ValueError as e:
        raise InputError(
            "config",
            f"window {window}: {e}",
            "use a multiple of 2048 up to the model's max_seq_len (published: 1048576)",
            f"models.{name}.window",
        ) from e
    tracks = alphagenome_tracks(model, raw, organism, outputs, resolution)
    key = f"predictions_{resolution}bp"

    def call(x):
        pred = model(x, organism_index=org, mode="predict")
        return torch.cat([pred[h][key].float() for h in outputs], dim=-1)

    device = spec.get("_device", torch.device("cpu"))
    model.to(device).eval()
    log.info("alphagenome: %s at %d bp, %d tracks, organism %s", outputs, resolution, len(tracks), organism)
    return LoadedModel.from_tracks(model, window, resolution, 0, tracks, "alphagenome", call)
