"""Chunked inference engine: unique haplotypes only, batched, on the chosen device.

`Predictor` wraps a loaded model with the read-out of its spec:
    Predictor(spec).readout(seqs, tss_index) -> np.ndarray [N, n_tracks] float64
    Predictor(spec).central(seqs, tss_index) -> np.ndarray [N, bins, T] float32
`predict_chunk(index, predictor)` runs every gene of a haplotype index and returns
the tidy table (gene_id, sample, haplotype, track, track_name, value) with the
reference-genome rows (sample "__reference__", haplotype 0).
"""

from __future__ import annotations

import logging
import math
import sys
import time

import numpy as np
import pandas as pd
import torch

from hapexp.config import model_spec
from hapexp.models import LoadedModel, load_model
from hapexp.readout import central_bin_start, readout_values, resolve_tracks, transform

log = logging.getLogger("hapexp.inference")

REFERENCE_SAMPLE = "__reference__"


def resolve_device(device: str) -> torch.device:
    """auto → cuda when available, else cpu; cuda without a GPU is an error, never a silent fallback."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "the model config asks for device: cuda but torch sees no CUDA GPU "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda}); run on a GPU node "
            "(e.g. snakemake --resources gpu=1 on a GPU machine) or set device: cpu/auto"
        )
    return torch.device(device)


def _onehot_lut(device) -> torch.Tensor:
    """(256, 4) table: ASCII code → one-hot A, C, G, T; anything else (N) → zeros."""
    lut = torch.zeros(256, 4)
    for i, b in enumerate(b"ACGT"):
        lut[b, i] = 1
        lut[b + 32, i] = 1  # lower case
    return lut.to(device)


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and "out of memory" in str(e).lower()
    )


class Predictor:
    """A model with its read-out, run in batches with inference_mode, precision and OOM back-off."""

    def __init__(self, spec: dict, model: LoadedModel | None = None, name: str | None = None):
        self.spec = model_spec(spec, name or spec.get("name", "model"))
        s = self.spec
        self.device = resolve_device(s["device"])
        torch.manual_seed(int(s["seed"]))
        if self.device.type == "cuda":
            # Fixed kernels: same config + same data → same numbers.
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        self.model = model if model is not None else load_model(s, self.device)
        if self.model.window != int(s["window"]):
            raise ValueError(f"model window {self.model.window} != spec window {s['window']}")
        self.model.module.to(self.device).eval()
        self.batch_size = int(s["batch_size"])
        self.n_bins = int(s["bins"])
        self.rc_average = bool(s["rc_average"])
        self.track_idx = resolve_tracks(
            s["tracks"], self.model.track_names, self.model.identifiers, where=f"models.{s['name']}.tracks"
        )
        self.track_names = [self.model.track_names[i] for i in self.track_idx]
        self.store_all = bool(s["store_all_tracks"])
        self._lut = _onehot_lut(self.device)
        self._sel = torch.tensor(self.track_idx, device=self.device)
        self._forward = self.model.forward
        if s["compile"]:
            self._forward = torch.compile(self.model.forward)
        self.n_forward = 0  # sequences run through the model (RC copies counted once)
        log.info(
            "model %s (%s): window %d, %d bins of %d (crop %d), tracks %s, device %s, %s, batch %d%s",
            s["name"], self.model.kind, self.model.window, self.model.n_bins, self.model.bin_size,
            self.model.crop, self.track_idx, self.device, s["precision"], self.batch_size,
            ", RC-averaged" if self.rc_average else "",
        )  # fmt: skip

    # -- device part ---------------------------------------------------------------
    def _autocast(self):
        if self.spec["precision"] == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return torch.autocast(self.device.type, enabled=False)

    def _model_out(self, codes: torch.Tensor) -> torch.Tensor:
        """uint8 codes (B, L) on device → float32 output (B, bins, T_all), RC-averaged if asked."""
        x = self._lut[codes.long()]
        if self.rc_average:
            # RC of a one-hot A,C,G,T sequence = flip along length and channels (ACGT → TGCA).
            x = torch.cat([x, x.flip(1).flip(2)])
        with self._autocast():
            out = self._forward(x)
        out = out.float()
        if out.ndim != 3 or out.shape[1:] != (self.model.n_bins, self.model.n_tracks):
            raise RuntimeError(
                f"model output has shape {tuple(out.shape)}, expected (batch, {self.model.n_bins} bins, "
                f"{self.model.n_tracks} tracks); check window/bin_size/crop or the adapter's layout"
            )
        if self.rc_average:
            b = codes.shape[0]
            out = (out[:b] + out[b:].flip(1)) / 2
        return out

    def _central(self, codes: torch.Tensor, start: torch.Tensor, all_tracks: bool):
        """Gather the n central bins per row (start differs per row when genes are mixed).

        Returns the selected tracks (B, n, T_sel) and, if asked, every track already
        aggregated over the central bins (B, T_all): 5,313 Enformer tracks × n bins per
        haplotype would otherwise fill host memory.
        """
        out = self._model_out(codes)
        idx = start[:, None] + torch.arange(self.n_bins, device=out.device)[None, :]
        cen = out.gather(1, idx[:, :, None].expand(-1, -1, out.shape[2]))
        sel = cen.index_select(2, self._sel)
        if not all_tracks:
            return sel, None
        return sel, (cen.sum(1) if self.spec["bin_aggregation"] == "sum" else cen.mean(1))

    def _run_batches(self, seqs: np.ndarray, tss_index, all_tracks: bool = False, bar=None):
        """Run (N, L) uint8 sequences; returns central bins (N, n, T_sel) [and bin-aggregated (N, T_all)].

        A CUDA out-of-memory halves the batch size (kept for the rest of the job) and
        retries the same sequences; batch size 1 running out of memory is re-raised.
        """
        seqs = np.ascontiguousarray(seqs, dtype=np.uint8)
        n, length = seqs.shape
        if length != self.model.window:
            raise ValueError(f"sequences have length {length}, model window is {self.model.window}")
        starts = np.broadcast_to(
            central_bin_start(
                tss_index, self.model.crop, self.model.bin_size, self.n_bins, self.model.n_bins
            ),
            (n,),
        ).astype(np.int64)  # a writable copy for torch.from_numpy
        sel_out = np.empty((n, self.n_bins, len(self.track_idx)), dtype=np.float32)
        all_out = np.empty((n, self.model.n_tracks), dtype=np.float32) if all_tracks else None
        i = 0
        with torch.inference_mode():
            while i < n:
                j = min(n, i + self.batch_size)
                codes = torch.from_numpy(seqs[i:j]).to(self.device, non_blocking=True)
                start = torch.from_numpy(starts[i:j]).to(self.device)
                if self.spec["compile"] and j - i < self.batch_size:
                    # Pad the last batch to a full one so the compiled graph keeps one shape.
                    pad = self.batch_size - (j - i)
                    codes = torch.cat([codes, codes[-1:].expand(pad, -1)])
                    start = torch.cat([start, start[-1:].expand(pad)])
                try:
                    sel, cen = self._central(codes, start, all_tracks)
                except Exception as e:
                    if not _is_oom(e) or self.batch_size == 1:
                        raise
                    del e
                    if self.device.type == "cuda":
                        torch.cuda.empty_cache()
                    self.batch_size = max(1, self.batch_size // 2)
                    log.warning(
                        "out of memory at batch size %d: halving to %d and retrying", j - i, self.batch_size
                    )
                    continue
                sel_out[i:j] = sel[: j - i].cpu().numpy()
                if all_tracks:
                    all_out[i:j] = cen[: j - i].cpu().numpy()
                self.n_forward += j - i
                if bar is not None:
                    bar.update(j - i)
                i = j
        return sel_out, all_out

    # -- public API ----------------------------------------------------------------
    def central(self, seqs: np.ndarray, tss_index) -> np.ndarray:
        """(N, L) uint8 ASCII → (N, bins, n_tracks) float32 outputs at the central bins, selected tracks."""
        return self._run_batches(seqs, tss_index)[0]

    def readout(self, seqs: np.ndarray, tss_index) -> np.ndarray:
        """(N, L) uint8 ASCII sequences → (N, n_tracks) float64 read-out values.

        `tss_index`: 0-based input index of the TSS, an int or one per sequence.
        Bin aggregation and the log transform of the spec are applied; haplotype
        aggregation is not (it needs the pairing of haplotypes).
        """
        s = self.spec
        return readout_values(self.central(seqs, tss_index), s["bin_aggregation"], s["log"])


class _Progress:
    """tqdm over sequences (seq/s, ETA) whose total is re-estimated as genes are read."""

    def __init__(self, n_genes: int, enabled: bool):
        self.n_genes, self.seen_genes, self.queued = n_genes, 0, 0
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            tty = sys.stderr.isatty()
            self.bar = tqdm(total=0, unit="seq", desc="predict", file=sys.stderr,
                            mininterval=0.5 if tty else 30, dynamic_ncols=tty)  # fmt: skip

    def add_gene(self, n_seqs: int):
        self.seen_genes += 1
        self.queued += n_seqs
        if self.bar is not None:
            left = self.n_genes - self.seen_genes
            self.bar.total = self.queued + math.ceil(left * self.queued / self.seen_genes)
            self.bar.refresh()

    def update(self, n):
        if self.bar is not None:
            self.bar.update(n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _gene_rows(gh, dedup: bool):
    """Sequences to run for one gene, and where each haplotype / the reference reads its value.

    dedup=True: the index's unique haplotypes plus the reference when it is not one
    of them. dedup=False: every haplotype of every sample (the anchors' way).
    Returns (seqs [M, L], hap_rows [n_samples, 2], ref_row).
    """
    seqs, hap_map, ref = np.asarray(gh.sequences), np.asarray(gh.hap_map), np.asarray(gh.reference)
    if dedup:
        same = np.flatnonzero((seqs == ref[None, :]).all(axis=1)) if len(seqs) else np.array([], int)
        if len(same):
            return seqs, hap_map, int(same[0])
        return np.concatenate([seqs, ref[None, :]]), hap_map, len(seqs)
    flat = seqs[hap_map.ravel()]
    rows = np.arange(flat.shape[0]).reshape(hap_map.shape)
    return np.concatenate([flat, ref[None, :]]), rows, flat.shape[0]


def predict_chunk(index, predictor: Predictor, genes=None, dedup: bool = True, progress: bool = True):
    """Predict every gene of a haplotype index (or the `genes` subset).

    `index` needs `.genes` (DataFrame with gene_id), `.samples` and
    `.gene_haplotypes(gene_id, length, rc_minus=)` → object with sequences,
    hap_map, reference, tss_index (hapexp.haplotypes.HaplotypeIndex).
    Sequences of consecutive genes share batches (a gene with 3 unique haplotypes
    does not waste a batch of 64). Returns (tidy DataFrame, all_tracks dict | None).
    """
    s = predictor.spec
    window, rc_minus = int(s["window"]), bool(s["rc_minus"])
    gene_ids = list(index.genes["gene_id"]) if genes is None else list(genes)
    samples = [str(x) for x in index.samples]
    bs = predictor.batch_size
    bar = _Progress(len(gene_ids), progress)
    store_all = predictor.store_all
    per_gene = []  # (gene_id, hap_rows, ref_row, n_rows)
    results_sel, results_all = [], []
    pending_seqs, pending_tss = [], []
    n_pending, n_haplotypes, t0 = 0, 0, time.perf_counter()

    def run(force: bool):
        nonlocal pending_seqs, pending_tss, n_pending
        if n_pending == 0 or (not force and n_pending < bs):
            return
        seqs = np.concatenate(pending_seqs) if len(pending_seqs) > 1 else pending_seqs[0]
        tss = np.concatenate(pending_tss) if len(pending_tss) > 1 else pending_tss[0]
        k = n_pending if force else (n_pending // bs) * bs
        sel, alltr = predictor._run_batches(seqs[:k], tss[:k], store_all, bar)
        results_sel.append(sel)
        if store_all:
            results_all.append(alltr)
        pending_seqs, pending_tss = ([seqs[k:]], [tss[k:]]) if k < n_pending else ([], [])
        n_pending -= k

    for gid in gene_ids:
        gh = index.gene_haplotypes(gid, window, rc_minus=rc_minus)
        seqs, hap_rows, ref_row = _gene_rows(gh, dedup)
        if hap_rows.shape != (len(samples), 2):
            raise ValueError(f"gene {gid}: hap_map has shape {hap_rows.shape}, expected ({len(samples)}, 2)")
        per_gene.append((gid, hap_rows, ref_row, seqs.shape[0]))
        n_haplotypes += 2 * len(samples)
        pending_seqs.append(seqs)
        pending_tss.append(np.full(seqs.shape[0], int(gh.tss_index), dtype=np.int64))
        n_pending += seqs.shape[0]
        bar.add_gene(seqs.shape[0])
        run(force=False)
    run(force=True)
    bar.close()

    sel = np.concatenate(results_sel) if results_sel else np.zeros((0, s["bins"], len(predictor.track_idx)))
    values = readout_values(sel, s["bin_aggregation"], s["log"])  # [rows, T]
    n_rows = values.shape[0]
    elapsed = time.perf_counter() - t0
    log.info(
        "%d genes: %d haplotypes + references, %d sequences run (%.1f%% unique), %.1f s, %.1f seq/s",
        len(gene_ids), n_haplotypes, n_rows, 100 * n_rows / max(1, n_haplotypes + len(gene_ids)),
        elapsed, n_rows / max(elapsed, 1e-9),
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


def gather_predictions(chunk_paths, haplotype_aggregation: str, table_out, matrix_out, reference_out):
    """Concatenate per-chunk parquet files; write the tidy table, the matrix and the reference values."""
    from hapexp.io import write_matrix, write_parquet, write_tsv

    frames = [pd.read_parquet(p) for p in chunk_paths]
    tidy = pd.concat(frames, ignore_index=True)
    dup = tidy.duplicated(["gene_id", "sample", "haplotype", "track"])
    if dup.any():
        raise ValueError(f"gene {tidy.loc[dup, 'gene_id'].iloc[0]} appears in more than one chunk")
    matrix, reference = aggregate_predictions(tidy, haplotype_aggregation)
    write_parquet(tidy, table_out)
    write_matrix(matrix, matrix_out)
    write_tsv(reference.reset_index(), reference_out)
    log.info("gathered %d chunks: %d genes × %d samples", len(chunk_paths), *matrix.shape)
