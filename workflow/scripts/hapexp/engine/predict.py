"""Predict: every gene of a haplotype index through one Predictor, as a tidy table; the
genes × samples matrix; the files of rules `predict` and `gather_predictions`.

`predict_chunk(index, predictor[, exons])` returns the tidy table (gene_id, sample,
haplotype, track, track_name, value) with the reference-genome rows (sample
"__reference__", haplotype 0), running unique haplotypes only. Genes are rendered a
batch at a time (hapexp.engine.batches) in a background thread (hapexp.engine.prefetch).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import torch

from hapexp.engine.audit import audit_predict
from hapexp.engine.batches import Progress, work_items
from hapexp.engine.predictor import Predictor
from hapexp.engine.prefetch import prefetch
from hapexp.engine.readout import EXON_STAT_COLUMNS, REFERENCE_SAMPLE, exon_counts, transform

log = logging.getLogger(__name__)


def predict_chunk(
    index, predictor: Predictor, genes=None, dedup: bool = True, progress: bool = True, exons=None
):
    """Predict every gene of a haplotype index (or the `genes` subset).

    `index` needs `.genes` (DataFrame with gene_id), `.samples` and
    `.gene_haplotypes(gene_id, length, rc_minus=)` → object with sequences,
    hap_map, reference, tss_index (hapexp.sequences.index.HaplotypeIndex); with
    `.iter_gene_haplotypes` genes are rendered a batch at a time.
    `exons`: gene_id → reference exons [start0, end0) rows (readout: exons).
    Sequences of consecutive genes share batches (a gene with 3 unique haplotypes
    does not waste a batch of 64). Haplotypes are rendered `prefetch` blocks ahead in
    a background thread (hapexp.engine.prefetch). Returns (tidy DataFrame, all_tracks dict | None);
    per-gene exon counts are left in `predictor.exon_stats`.
    """
    s = predictor.spec
    window, rc_minus = int(s["window"]), bool(s["rc_minus"])
    gene_ids = list(index.genes["gene_id"]) if genes is None else list(genes)
    strands = (
        dict(zip(index.genes["gene_id"], index.genes["strand"], strict=True))
        if "strand" in index.genes
        else {}
    )
    samples = [str(x) for x in index.samples]
    bs = predictor.batch_size
    bar = Progress(len(gene_ids), progress)
    store_all = predictor.store_all
    use_exons = predictor.uses_exons
    if use_exons and exons is None:
        raise ValueError(f"model {s['name']}: readout exons needs the genes' exons (exons=...)")
    predictor.exon_stats = []
    per_gene = []  # (gene_id, hap_rows, ref_row, n_rows)
    results_sel, results_all, results_exon = [], [], []
    n_haplotypes, t0, busy0 = 0, time.perf_counter(), predictor.gpu_busy_s
    cuda = predictor.device.type == "cuda"
    m = predictor.model

    def exon_stats_of(gid, head):
        return {"gene_id": gid, **exon_counts(head.reference_exons, m.crop, m.bin_size, m.n_bins)}

    items = work_items(index, gene_ids, window, rc_minus, dedup, bs, len(samples), cuda,
                  exons if use_exons else None, strands, exon_stats_of)  # fmt: skip
    for item in prefetch(items, depth=int(s["prefetch"])):
        if item[0] == "gene":
            per_gene.append(item[1:5])
            if item[5] is not None:
                predictor.exon_stats.append(item[5])
            n_haplotypes += 2 * len(samples)
            bar.add_gene(item[4])
            continue
        sel, alltr, ex = predictor.run_batches(item[1], item[2], store_all, bar, item[3], item[4])
        results_sel.append(sel)
        if store_all:
            results_all.append(alltr)
        if ex is not None:
            results_exon.append(ex)
    bar.close()

    sel = np.concatenate(results_sel) if results_sel else np.zeros((0, s["bins"], len(predictor.track_idx)))
    exon_v = np.concatenate(results_exon) if results_exon else None
    values = predictor.values(sel, exon_v)  # [rows, T]
    n_rows = values.shape[0]
    elapsed = time.perf_counter() - t0
    gpu = ""
    if cuda:
        busy = predictor.gpu_busy_s - busy0
        gpu = (f", GPU busy {100 * busy / max(elapsed, 1e-9):.0f} % of wall, "
               f"peak GPU memory {torch.cuda.max_memory_allocated(predictor.device) / 2**30:.1f} GiB")  # fmt: skip
    log.info(
        "%d genes: %d haplotypes + references, %d sequences run (%.1f%% unique), %.1f s, %.1f seq/s, %s, batch %d%s",
        len(gene_ids), n_haplotypes, n_rows, 100 * n_rows / max(1, n_haplotypes + len(gene_ids)),
        elapsed, n_rows / max(elapsed, 1e-9), predictor.effective_precision, predictor.batch_size, gpu,
    )  # fmt: skip
    if predictor.exon_stats:
        st = pd.DataFrame(predictor.exon_stats)
        log.info(
            "exons (reference windows): %d in the output span, %d clipped at its edge, %d outside it "
            "(dropped) over %d genes; %d genes without any exon bin read NaN",
            st["exons_in_window"].sum(), st["exons_clipped"].sum(), st["exons_dropped"].sum(), len(st),
            int((st["exon_bins"] == 0).sum()),
        )  # fmt: skip

    tracks = np.asarray(predictor.track_idx, dtype=np.int32)
    names = np.asarray(predictor.track_names, dtype=object)
    n_t = len(tracks)
    frames, off = [], 0
    samp = np.asarray(samples, dtype=object)
    for gid, hap_rows, ref_row, m in per_gene:
        v = values[off:][hap_rows]  # [n_samples, 2, T]
        ref = values[off + ref_row]  # [T]
        ns = len(samples)
        frames.append(
            pd.DataFrame(
                {
                    "gene_id": gid,
                    "sample": np.concatenate([np.repeat(samp, 2 * n_t), np.repeat([REFERENCE_SAMPLE], n_t)]),
                    "haplotype": np.concatenate(
                        [np.tile(np.repeat(np.array([1, 2], np.int8), n_t), ns), np.zeros(n_t, np.int8)]
                    ),
                    "track": np.concatenate([np.tile(tracks, 2 * ns), tracks]),
                    "track_name": np.concatenate([np.tile(names, 2 * ns), names]),
                    "value": np.concatenate([v.reshape(-1), ref]),
                }
            )
        )
        off += m
    cols = ["gene_id", "sample", "haplotype", "track", "track_name", "value"]
    tidy = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    tidy["gene_id"] = tidy["gene_id"].astype(str)
    tidy["sample"] = tidy["sample"].astype(str)
    tidy["track_name"] = tidy["track_name"].astype(str)

    all_tracks = None
    if store_all:
        allv = transform(np.concatenate(results_all), s["log"]).astype(np.float32)
        offsets = np.cumsum([0] + [m for *_, m in per_gene])
        all_tracks = {
            "gene_ids": np.asarray([g for g, *_ in per_gene]),
            "samples": np.asarray(samples),
            "values": allv,  # [rows, all tracks], rows of gene k: offsets[k]:offsets[k+1]
            "offsets": offsets.astype(np.int64),
            "hap_rows": np.stack([h for _, h, _, _ in per_gene]).astype(np.int32)
            if per_gene
            else np.zeros((0, len(samples), 2), np.int32),
            "ref_rows": np.asarray([r for _, _, r, _ in per_gene], dtype=np.int32),
            "track_names": np.asarray(predictor.model.track_names),
        }
    return tidy, all_tracks


def aggregate_predictions(tidy: pd.DataFrame, haplotype_aggregation: str):
    """Tidy predictions → (genes × samples matrix, reference Series).

    Value per gene × sample = mean over tracks of each haplotype, then the haplotype
    aggregation (mean|sum) over haplotypes 1 and 2.
    """
    ref_mask = tidy["sample"] == REFERENCE_SAMPLE
    per_hap = tidy[~ref_mask].groupby(["gene_id", "sample", "haplotype"], sort=False)["value"].mean()
    agg = per_hap.groupby(level=["gene_id", "sample"], sort=False)
    if haplotype_aggregation == "mean":
        per_sample = agg.mean()
    elif haplotype_aggregation == "sum":
        per_sample = agg.sum()
    else:
        raise ValueError(f"haplotype aggregation must be mean|sum, not {haplotype_aggregation!r}")
    matrix = per_sample.unstack("sample")
    genes = pd.unique(tidy.loc[~ref_mask, "gene_id"])
    samples = pd.unique(tidy.loc[~ref_mask, "sample"])
    matrix = matrix.reindex(index=genes, columns=samples)
    matrix.index.name = "gene_id"
    matrix.columns.name = None
    reference = tidy[ref_mask].groupby("gene_id", sort=False)["value"].mean().reindex(genes)
    reference.name = "value"
    return matrix, reference


def save_all_tracks(all_tracks: dict, path) -> None:
    """Write the all-tracks-at-TSS arrays (or an empty marker file) atomically as npz."""
    from hapexp.io import atomic_output

    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        if all_tracks is None:
            np.savez(fh, enabled=np.array(False))
        else:
            np.savez_compressed(fh, enabled=np.array(True), **all_tracks)


def track_groups_table(predictor: Predictor) -> pd.DataFrame:
    """group ("" = the model's own tracks; else a tissue), track (0-based model output),
    track_name: which of a predict job's tracks each group averages."""
    rows = [
        (g, int(predictor.track_idx[k]), predictor.track_names[k])
        for g, positions in predictor.track_groups.items()
        for k in positions
    ]
    return pd.DataFrame(rows, columns=["group", "track", "track_name"])


def group_tracks(groups, group: str) -> list[int]:
    """The model tracks of one group of a predict job's groups table (`groups`: its path)."""
    tab = pd.read_csv(groups, sep="\t", dtype={"group": str}, keep_default_na=False)
    tracks = tab.loc[tab["group"] == group, "track"].astype(int).tolist()
    if not tracks:
        raise ValueError(f"{groups}: no tracks for group {group!r} (was predict run for this tissue?)")
    return tracks


def write_group(tidy: pd.DataFrame, tracks: list[int], matrix, reference, spec: dict) -> tuple[int, int]:
    """The genes × samples `matrix` and `reference` values of the tidy rows of `tracks`."""
    from hapexp.io import write_matrix, write_tsv

    values, ref = aggregate_predictions(tidy[tidy["track"].isin(tracks)], spec["haplotype_aggregation"])
    write_matrix(values, matrix)
    write_tsv(ref.reset_index(), reference)
    return values.shape


def run_gather_predictions(chunks, groups, table, matrix, reference, spec: dict):
    """Rule `gather_predictions`: concatenate a model's per-chunk tables (`chunks`); write the
    tidy `table` (every track run), and the genes × samples `matrix` (the spec's haplotype
    aggregation) and `reference`-genome values of the model's own tracks (group "" of the
    chunks' `groups` tables, the same in every chunk)."""
    from hapexp.io import write_parquet

    frames = [pd.read_parquet(p) for p in chunks]
    tidy = pd.concat(frames, ignore_index=True)
    dup = tidy.duplicated(["gene_id", "sample", "haplotype", "track"])
    if dup.any():
        raise ValueError(f"gene {tidy.loc[dup, 'gene_id'].iloc[0]} appears in more than one chunk")
    write_parquet(tidy, table)
    shape = write_group(tidy, group_tracks(groups[0], ""), matrix, reference, spec)
    log.info("gathered %d chunks: %d genes × %d samples", len(chunks), *shape)


def run_tissue_predictions(table, groups, matrix, reference, spec: dict, tissue: str):
    """Rule `tissue_predictions`: one tissue's genes × samples `matrix` and `reference` values
    from the cohort's gathered predictions (`table`), averaging the tracks the tissue selects
    (its group in `groups`)."""
    tidy = pd.read_parquet(table)
    tracks = group_tracks(groups, tissue)
    shape = write_group(tidy, tracks, matrix, reference, spec)
    log.info("tissue %s: tracks %s, %d genes × %d samples", tissue, tracks, *shape)


def run_predict(index, exons, table, tracks, precision, exon_stats, groups, spec: dict,
                audit_cfg: dict | None, model: str, threads: int | None = None):  # fmt: skip
    """Rule `predict`: the precision budget, then one chunk's haplotype `index` through the
    model; writes the tidy `table`, the all-`tracks` file, the `precision` budget, (for
    readout: exons, from the cohort's `exons`) the per-gene `exon_stats`, and the track
    `groups` (the model's tracks and each tissue's: `track_groups_table`). `threads`: the
    job's CPU threads (None: torch's setting as it is)."""
    from hapexp.inputs.exons import read_exons
    from hapexp.io import write_parquet, write_tsv
    from hapexp.sequences.index import HaplotypeIndex

    if threads is not None:
        torch.set_num_threads(int(threads))
    haplotypes = HaplotypeIndex.load(index)
    predictor = Predictor({**spec, "name": model}, name=model)
    gene_exons = read_exons(exons) if (exons and predictor.uses_exons) else None
    if gene_exons is not None:
        missing = [g for g in haplotypes.genes["gene_id"] if g not in gene_exons]
        if missing:
            log.warning(
                "%d genes have no exons (their exon read-out is NaN), e.g. %s", len(missing), missing[:3]
            )
    budget = audit_predict(haplotypes, predictor, audit_cfg, model, exons=gene_exons)
    tidy, all_tracks = predict_chunk(haplotypes, predictor, progress=True, exons=gene_exons)
    write_tsv(budget, precision)
    write_parquet(tidy, table)
    save_all_tracks(all_tracks, tracks)
    write_tsv(pd.DataFrame(predictor.exon_stats, columns=EXON_STAT_COLUMNS), exon_stats)
    write_tsv(track_groups_table(predictor), groups)
    log.info("wrote %d rows to %s", len(tidy), table)
    return tidy, budget
