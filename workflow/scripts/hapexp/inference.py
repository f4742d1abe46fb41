"""Chunked inference engine: unique haplotypes only, batched, on the chosen device.

`Predictor` wraps a loaded model with the read-out of its spec:
    Predictor(spec).readout(seqs, tss_index[, exons]) -> np.ndarray [N, n_tracks] float64
    Predictor(spec).central(seqs, tss_index) -> np.ndarray [N, bins, T] float32
`predict_chunk(index, predictor[, exons])` runs every gene of a haplotype index and
returns the tidy table (gene_id, sample, haplotype, track, track_name, value) with the
reference-genome rows (sample "__reference__", haplotype 0). Genes are streamed in
batches (`iter_gene_haplotypes`): at most a batch of windows exists at a time, so
524,288- and 1,048,576-bp windows fit in memory.

Strands: a stranded track (its `strand_pair` differs from itself) predicts coverage
of one DNA strand. The reverse complement of an input predicts, in track t, what the
forward input has in track `strand_pair[t]`; RC averaging therefore flips the bins and
swaps the pairs. Rows read against the gene's orientation (minus-strand genes with
`rc_minus: false`) read each selected track's pair, so a `+` track is always the
gene's sense strand.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import sys
import time

import numpy as np
import pandas as pd
import torch

from hapexp.config import model_spec
from hapexp.models import LoadedModel, load_model
from hapexp.models.tracks import is_tss_assay
from hapexp.readout import (
    central_bin_start,
    exon_counts,
    exon_weights,
    readout_values,
    resolve_tracks,
    transform,
)

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


def release_large_buffers(threshold: int = 4 << 20) -> None:
    """Serve allocations above `threshold` bytes by mmap, returned to the OS when freed.

    glibc raises its mmap threshold each time a large block is freed (up to 32 MB), after
    which the per-batch buffers of long windows (a batch of 524,288-bp one-hots is 16-32
    MB) come from the heap and fragment it: bench/long_windows.py measured 1.4 GB peak RSS
    instead of 0.37 GB. A fixed threshold turns that adjustment off (glibc only; else a no-op).
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(-3, int(threshold))  # -3 = M_MMAP_THRESHOLD


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
        release_large_buffers()
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
            s["tracks"],
            self.model.track_names,
            self.model.identifiers,
            where=f"models.{s['name']}.tracks",
            table=self.model.tracks,
        )
        self.track_names = [self.model.track_names[i] for i in self.track_idx]
        self.store_all = bool(s["store_all_tracks"])
        # readout exons: which selected tracks still read the TSS bins (CAGE, PRO-cap)
        exons = s.get("readout", "tss") == "exons"
        self.tss_track = (
            is_tss_assay(self.model.tracks, self.track_idx) if exons else np.ones(len(self.track_idx), bool)
        )
        self.uses_exons = bool(exons and not self.tss_track.all())
        self.exon_stats: list[dict] = []  # per gene, filled by predict_chunk
        self._lut = _onehot_lut(self.device)
        self._sel = torch.tensor(self.track_idx, device=self.device)
        pair = self.model.strand_pair
        self.stranded = bool((pair != np.arange(len(pair))).any())
        self._pair = torch.tensor(pair, device=self.device)
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
            rc = out[b:].flip(1)
            if self.stranded:  # the RC's + strand track is the forward's − strand track
                rc = rc.index_select(2, self._pair)
            out = (out[:b] + rc) / 2
        return out

    def _central(self, codes, start, all_tracks: bool, antisense=None, weights=None):
        """Gather the n central bins per row (start differs per row when genes are mixed).

        Returns the selected tracks (B, n, T_sel), if `weights` (B, bins) the exon
        read-out (B, T_sel), and, if asked, every track already aggregated over the
        central bins (B, T_all): 5,313 Enformer tracks × n bins per haplotype would
        otherwise fill host memory. `antisense` (B,) bool: rows read the pair tracks.
        """
        out = self._model_out(codes)
        if antisense is not None and self.stranded and bool(antisense.any()):
            tr = torch.where(antisense[:, None], self._pair[self._sel][None, :], self._sel[None, :])
            sel_all = out.gather(2, tr[:, None, :].expand(-1, out.shape[1], -1))
        else:
            sel_all = out.index_select(2, self._sel)
        idx = start[:, None] + torch.arange(self.n_bins, device=out.device)[None, :]
        sel = sel_all.gather(1, idx[:, :, None].expand(-1, -1, sel_all.shape[2]))
        exon = None
        if weights is not None:
            # NaN weights (no exon bin in the output) give NaN; 0 * inf cannot arise (outputs are finite)
            exon = torch.einsum("bn,bnt->bt", weights, sel_all)
        if not all_tracks:
            return sel, exon, None
        cen = out.gather(1, idx[:, :, None].expand(-1, -1, out.shape[2]))
        return sel, exon, (cen.sum(1) if self.spec["bin_aggregation"] == "sum" else cen.mean(1))

    def _run_batches(
        self, seqs: np.ndarray, tss_index, all_tracks: bool = False, bar=None, exons=None, antisense=None
    ):
        """Run (N, L) uint8 sequences; returns central bins (N, n, T_sel), the exon read-out
        (N, T_sel) when `exons` (one interval array per row) is given, and with
        `all_tracks` every track aggregated over the central bins (N, T_all).

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
        exon_out = np.empty((n, len(self.track_idx)), dtype=np.float32) if exons is not None else None
        anti = None if antisense is None else np.broadcast_to(np.asarray(antisense, bool), (n,))
        i = 0
        with torch.inference_mode():
            while i < n:
                j = min(n, i + self.batch_size)
                codes = torch.from_numpy(seqs[i:j]).to(self.device, non_blocking=True)
                start = torch.from_numpy(starts[i:j]).to(self.device)
                w = a = None
                if exons is not None:
                    m = self.model
                    w = exon_weights(exons[i:j], m.crop, m.bin_size, m.n_bins, self.spec["exon_aggregation"])
                    w = torch.from_numpy(w).to(self.device)
                if anti is not None:
                    a = torch.from_numpy(np.array(anti[i:j])).to(self.device)  # a writable copy
                if self.spec["compile"] and j - i < self.batch_size:
                    # Pad the last batch to a full one so the compiled graph keeps one shape.
                    pad = self.batch_size - (j - i)
                    codes = torch.cat([codes, codes[-1:].expand(pad, -1)])
                    start = torch.cat([start, start[-1:].expand(pad)])
                    w = None if w is None else torch.cat([w, w[-1:].expand(pad, -1)])
                    a = None if a is None else torch.cat([a, a[-1:].expand(pad)])
                try:
                    sel, ex, cen = self._central(codes, start, all_tracks, a, w)
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
                if ex is not None:
                    exon_out[i:j] = ex[: j - i].float().cpu().numpy()
                if all_tracks:
                    all_out[i:j] = cen[: j - i].cpu().numpy()
                self.n_forward += j - i
                if bar is not None:
                    bar.update(j - i)
                i = j
        return sel_out, all_out, exon_out

    # -- public API ----------------------------------------------------------------
    def central(self, seqs: np.ndarray, tss_index) -> np.ndarray:
        """(N, L) uint8 ASCII → (N, bins, n_tracks) float32 outputs at the central bins, selected tracks."""
        return self._run_batches(seqs, tss_index)[0]

    def values(self, sel, exon) -> np.ndarray:
        """Central bins (N, n, T) [+ exon read-outs (N, T)] → (N, T) float64 read-out values."""
        s = self.spec
        return readout_values(sel, s["bin_aggregation"], s["log"], exon, self.tss_track)

    def readout(self, seqs: np.ndarray, tss_index, exons=None, antisense=None) -> np.ndarray:
        """(N, L) uint8 ASCII sequences → (N, n_tracks) float64 read-out values.

        `tss_index`: 0-based input index of the TSS, an int or one per sequence.
        `exons` (readout: exons): per sequence, the gene's exons as [start, end) rows in
        that sequence's coordinates. `antisense`: rows read against the gene (pair tracks).
        Bin aggregation and the log transform of the spec are applied; haplotype
        aggregation is not (it needs the pairing of haplotypes).
        """
        if self.uses_exons and exons is None:
            raise ValueError(f"model {self.spec['name']}: readout exons needs the exons of every sequence")
        sel, _, exon = self._run_batches(
            seqs, tss_index, exons=exons if self.uses_exons else None, antisense=antisense
        )
        return self.values(sel, exon)


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
    Returns (seqs [M, L], hap_rows [n_samples, 2], ref_row, exons per row or None).
    """
    seqs, hap_map, ref = np.asarray(gh.sequences), np.asarray(gh.hap_map), np.asarray(gh.reference)
    ex = getattr(gh, "exons", None)
    ref_ex = getattr(gh, "reference_exons", None)
    if dedup:
        same = np.flatnonzero((seqs == ref[None, :]).all(axis=1)) if len(seqs) else np.array([], int)
        if len(same):
            return seqs, hap_map, int(same[0]), ex
        return np.concatenate([seqs, ref[None, :]]), hap_map, len(seqs), None if ex is None else [*ex, ref_ex]
    flat = seqs[hap_map.ravel()]
    rows = np.arange(flat.shape[0]).reshape(hap_map.shape)
    rows_ex = None if ex is None else [ex[h] for h in hap_map.ravel()] + [ref_ex]
    return np.concatenate([flat, ref[None, :]]), rows, flat.shape[0], rows_ex


def _gene_batches(index, gid, window, rc_minus, batch_size, dedup, exons):
    """(header, iterator of (seqs, exons per row) batches, ref_row getter) for one gene.

    With the real index and dedup, rows are rendered a batch at a time
    (`iter_gene_haplotypes`); the reference is appended unless a unique haplotype
    equals it. Other indexes (and dedup=False) render the gene at once.
    """
    kw = {} if exons is None else {"exons": exons}
    if dedup and hasattr(index, "iter_gene_haplotypes"):
        it = index.iter_gene_haplotypes(gid, window, batch_size=batch_size, rc_minus=rc_minus, **kw)
        head = next(it)
        state = {"ref_row": None, "n": len(head.tss_deleted)}

        def batches():
            for rows, seqs in it:
                if state["ref_row"] is None:
                    same = np.flatnonzero((seqs == head.reference[None, :]).all(axis=1))
                    if len(same):
                        state["ref_row"] = int(rows[same[0]])
                yield seqs, None if exons is None else [head.exons[r] for r in rows]
            if state["ref_row"] is None:  # the reference is not a cohort haplotype: run it too
                state["ref_row"] = state["n"]
                yield head.reference[None, :], None if exons is None else [head.reference_exons]

        return head, np.asarray(head.hap_map), batches(), lambda: state["ref_row"]
    gh = index.gene_haplotypes(gid, window, rc_minus=rc_minus, **kw)
    seqs, hap_rows, ref_row, rows_ex = _gene_rows(gh, dedup)
    return gh, hap_rows, iter([(seqs, rows_ex)]), lambda: ref_row


def predict_chunk(
    index, predictor: Predictor, genes=None, dedup: bool = True, progress: bool = True, exons=None
):
    """Predict every gene of a haplotype index (or the `genes` subset).

    `index` needs `.genes` (DataFrame with gene_id), `.samples` and
    `.gene_haplotypes(gene_id, length, rc_minus=)` → object with sequences,
    hap_map, reference, tss_index (hapexp.haplotypes.HaplotypeIndex); with
    `.iter_gene_haplotypes` genes are rendered a batch at a time.
    `exons`: gene_id → reference exons [start0, end0) rows (readout: exons).
    Sequences of consecutive genes share batches (a gene with 3 unique haplotypes
    does not waste a batch of 64). Returns (tidy DataFrame, all_tracks dict | None);
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
    bar = _Progress(len(gene_ids), progress)
    store_all = predictor.store_all
    use_exons = predictor.uses_exons
    if use_exons and exons is None:
        raise ValueError(f"model {s['name']}: readout exons needs the genes' exons (exons=...)")
    predictor.exon_stats = []
    per_gene = []  # (gene_id, hap_rows, ref_row, n_rows)
    results_sel, results_all, results_exon = [], [], []
    pending = {"seqs": [], "tss": [], "exons": [], "anti": []}
    n_pending, n_haplotypes, t0 = 0, 0, time.perf_counter()

    def run(force: bool):
        nonlocal n_pending
        if n_pending == 0 or (not force and n_pending < bs):
            return
        cat = {k: (np.concatenate(v) if len(v) > 1 else v[0]) for k, v in pending.items() if k != "exons"}
        rows_ex = [iv for part in pending["exons"] for iv in part] if use_exons else None
        k = n_pending if force else (n_pending // bs) * bs
        sel, alltr, ex = predictor._run_batches(
            cat["seqs"][:k],
            cat["tss"][:k],
            store_all,
            bar,
            None if rows_ex is None else rows_ex[:k],
            cat["anti"][:k],
        )
        results_sel.append(sel)
        if store_all:
            results_all.append(alltr)
        if ex is not None:
            results_exon.append(ex)
        rest = k < n_pending
        for key in ("seqs", "tss", "anti"):
            pending[key] = [cat[key][k:]] if rest else []
        pending["exons"] = [rows_ex[k:]] if (rest and use_exons) else []
        n_pending -= k

    for gid in gene_ids:
        gene_ex = None
        if use_exons:
            gene_ex = np.asarray(exons.get(gid, np.zeros((0, 2), np.int64)), dtype=np.int64).reshape(-1, 2)
        head, hap_rows, batches, ref_row = _gene_batches(index, gid, window, rc_minus, bs, dedup, gene_ex)
        if hap_rows.shape != (len(samples), 2):
            raise ValueError(f"gene {gid}: hap_map has shape {hap_rows.shape}, expected ({len(samples)}, 2)")
        antisense = (not bool(head.flipped)) and strands.get(gid, "+") == "-"
        if use_exons:
            m = predictor.model
            predictor.exon_stats.append(
                {"gene_id": gid, **exon_counts(head.reference_exons, m.crop, m.bin_size, m.n_bins)}
            )
        n_rows = 0
        for seqs, rows_ex in batches:
            m_rows = seqs.shape[0]
            pending["seqs"].append(seqs)
            pending["tss"].append(np.full(m_rows, int(head.tss_index), dtype=np.int64))
            pending["anti"].append(np.full(m_rows, antisense, dtype=bool))
            if use_exons:
                pending["exons"].append(rows_ex)
            n_pending += m_rows
            n_rows += m_rows
            run(force=False)
        per_gene.append((gid, hap_rows, ref_row(), n_rows))
        n_haplotypes += 2 * len(samples)
        bar.add_gene(n_rows)
    run(force=True)
    bar.close()

    sel = np.concatenate(results_sel) if results_sel else np.zeros((0, s["bins"], len(predictor.track_idx)))
    exon_v = np.concatenate(results_exon) if results_exon else None
    values = predictor.values(sel, exon_v)  # [rows, T]
    n_rows = values.shape[0]
    elapsed = time.perf_counter() - t0
    log.info(
        "%d genes: %d haplotypes + references, %d sequences run (%.1f%% unique), %.1f s, %.1f seq/s",
        len(gene_ids), n_haplotypes, n_rows, 100 * n_rows / max(1, n_haplotypes + len(gene_ids)),
        elapsed, n_rows / max(elapsed, 1e-9),
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
