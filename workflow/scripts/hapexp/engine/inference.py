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
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hapexp.config import CPU_BATCH_SIZE, model_spec
from hapexp.engine.precision import MODES as PRECISION_MODES
from hapexp.engine.precision import candidates as precision_candidates
from hapexp.engine.prefetch import prefetch
from hapexp.engine.readout import (
    REFERENCE_SAMPLE,
    central_bin_start,
    exon_counts,
    exon_weights,
    readout_values,
    resolve_tracks,
    transform,
)
from hapexp.models import enformer_attention
from hapexp.models.enformer_ism import EnformerReuse
from hapexp.models.registry import LoadedModel, load_model
from hapexp.models.tracks import is_tss_assay

log = logging.getLogger(__name__)


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


@contextlib.contextmanager
def precision_mode(precision: str, device_type: str):
    """Autocast and TF32 switches for one precision; the TF32 flags are restored after."""
    cuda = device_type == "cuda"
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) if cuda else None
    try:
        if cuda:  # on CPU TF32 does not exist; never touch the CPU matmul precision
            tf32 = precision == "tf32"
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            yield
    finally:
        if cuda:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


class Predictor:
    """A model with its read-out, run in batches with inference_mode, precision and OOM back-off.

    GPU path (docs/architecture.md, "Inference engine"): compiled on CUDA by default
    (static shapes: the last batch is padded; the compile cache is shared by the jobs of
    a run), batch size from free GPU memory, Enformer's attention through a fused
    kernel in reduced precision, results copied back asynchronously (the GPU is not
    waiting for the host between batches). `strict()` runs the yardstick: fp32 without
    TF32, uncompiled, reference attention. `reusing(reference)` routes Enformer-family
    forwards through hapexp.models.enformer_ism (ISM variants of one gene).
    """

    def __init__(self, spec: dict, model: LoadedModel | None = None, name: str | None = None):
        self.spec = model_spec(spec, name or spec.get("name", "model"))
        s = self.spec
        release_large_buffers()
        self.device = resolve_device(s["device"])
        torch.manual_seed(int(s["seed"]))
        if self.device.type == "cuda":
            # deterministic: fixed kernels, same config + same data → same numbers;
            # false lets cuDNN benchmark its convolution algorithms.
            det = bool(s["deterministic"])
            torch.backends.cudnn.benchmark = not det
            torch.backends.cudnn.deterministic = det
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        self.model = model if model is not None else load_model(s, self.device)
        if self.model.window != int(s["window"]):
            raise ValueError(f"model window {self.model.window} != spec window {s['window']}")
        self.model.module.to(self.device).eval()
        self.candidates = precision_candidates(s["precision"], self.device.type)
        self.precision = self.candidates[0]
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
        self._batch: dict[str, int] = {}  # per effective precision (fp32 needs more memory)
        if s["batch_size"] != "auto":
            self._fixed_batch = int(s["batch_size"])
        else:
            self._fixed_batch = None if self.device.type == "cuda" else CPU_BATCH_SIZE
        self._compile_setting = s["compile"]
        self._compiled = self._compiled_tail = None  # compiled model / ISM reuse tail (lazy)
        self._strict = False
        # Enformer family: switchable attention kernel and reference reuse for ISM.
        self.enformer = _is_enformer(self.model.module)
        self._attn = []  # Enformer attention modules; their kernel is set on every call
        if self.enformer:
            enformer_attention.install(self.model.module, self._kernel())
            self._attn = enformer_attention.attention_modules(self.model.module)
        self._reuse = None
        if EnformerReuse.supports(self.model.module):
            self._reuse = EnformerReuse(self.model.module, head=s.get("head", "human"))
        self._reuse_active = False
        self.n_forward = 0  # sequences run through the model (RC copies counted once)
        self.gpu_busy_s = 0.0  # GPU time inside forward passes (CUDA events)
        log.info(
            "model %s (%s): window %d, %d bins of %d (crop %d), tracks %s, device %s, precision %s%s, batch %s%s%s",
            s["name"], self.model.kind, self.model.window, self.model.n_bins, self.model.bin_size,
            self.model.crop, self.track_idx, self.device, s["precision"],
            f" (trying {'/'.join(self.candidates)})" if s["precision"] == "auto" else "",
            s["batch_size"] if self._fixed_batch is None else self._fixed_batch,
            ", RC-averaged" if self.rc_average else "",
            f", compile {s['compile']} ({s['compile_mode']})",
        )  # fmt: skip

    # -- modes ---------------------------------------------------------------------
    @property
    def effective_precision(self) -> str:
        return "fp32" if self._strict else self.precision

    @property
    def compile(self) -> bool:
        """torch.compile in use: `compile: auto` = on CUDA in tf32/bf16; fp32 stays
        enformer-pytorch's eager forward (the reference numbers), strict() never compiles."""
        if self._compile_setting == "auto":
            return self.device.type == "cuda" and self.effective_precision != "fp32"
        return bool(self._compile_setting) and not self._strict

    def set_precision(self, precision: str) -> None:
        if precision not in PRECISION_MODES:
            raise ValueError(f"precision must be one of {PRECISION_MODES}, not {precision!r}")
        self.precision = precision

    def _kernel(self) -> str:
        k = self.spec["attention"]
        if k != "auto":
            return "reference" if self._strict else k
        return "reference" if self.effective_precision == "fp32" else "sdpa"

    @contextlib.contextmanager
    def strict(self):
        """Strict fp32 for the precision audit: no autocast, no TF32, uncompiled, reference attention."""
        if self._reuse_active:
            raise RuntimeError("strict() inside reusing(): the reference cache has the other precision")
        old = self._strict
        self._strict = True
        try:
            yield self
        finally:
            self._strict = old

    @property
    def batch_size(self) -> int:
        p = self.effective_precision
        if p not in self._batch:
            self._batch[p] = self._fixed_batch or self._auto_batch_size()
        return self._batch[p]

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._batch[self.effective_precision] = int(value)

    def _auto_batch_size(self) -> int:
        from hapexp.engine.gpu_memory import auto_batch_size

        n_codes = np.full((2, self.model.window), ord("N"), np.uint8)

        def run(b):
            with torch.inference_mode():
                self._model_out(torch.from_numpy(n_codes[:1]).to(self.device).expand(b, -1), eager=True)

        return auto_batch_size(run, self.device, max_batch=int(self.spec["max_batch_size"]))

    def _forward_fn(self, eager: bool = False):
        if self._strict or eager or not self.compile:
            return self.model.forward
        if self._compiled is None:
            self._compiled = _compile(self.model.forward, self.spec)
        return self._compiled

    @contextlib.contextmanager
    def reusing(self, reference: np.ndarray):
        """Within: forwards compare each sequence with `reference` (uint8, one window) and,
        for the Enformer family, recompute only what differs (hapexp.models.enformer_ism). Yields
        whether reuse is on (False for other models: plain forwards)."""
        if self._reuse is None or self._reuse_active:
            yield False
            return
        ref = torch.from_numpy(np.array(reference, dtype=np.uint8)).to(self.device)  # a writable copy
        x = self._lut[ref.long()][None]
        if self.rc_average:
            x = torch.cat([x, x.flip(1).flip(2)])
        self._reuse.tail_fn = self._reuse.tail
        if self.compile and not self._strict:
            if self._compiled_tail is None:
                self._compiled_tail = _compile(self._reuse.tail, self.spec)
            self._reuse.tail_fn = self._compiled_tail
        with torch.inference_mode(), precision_mode(self.effective_precision, self.device.type):
            self._reuse.prepare(x)
        self._reuse_active = True
        try:
            yield True
        finally:
            self._reuse_active = False
            self._reuse.release()

    # -- device part ---------------------------------------------------------------
    def _model_out(self, codes: torch.Tensor, eager: bool = False) -> torch.Tensor:
        """uint8 codes (B, L) on device → float32 output (B, bins, T_all), RC-averaged if asked."""
        x = self._lut[codes.long()]
        b = codes.shape[0]
        if self.rc_average:
            # RC of a one-hot A,C,G,T sequence = flip along length and channels (ACGT → TGCA).
            x = torch.cat([x, x.flip(1).flip(2)])
        kernel = self._kernel()
        for m in self._attn:  # several Predictors may share one model (audit, benchmarks)
            m._hapexp_kernel = kernel
        if self.compile and not self._strict and self.spec["compile_mode"] == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()  # CUDA graphs: a new step, outputs read below
        with precision_mode(self.effective_precision, self.device.type):
            if self._reuse_active:
                ids = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
                ids[b:] = 1
                out = self._reuse.forward(x, ids)
            else:
                out = self._forward_fn(eager)(x)
        out = out.float()
        if out.ndim != 3 or out.shape[1:] != (self.model.n_bins, self.model.n_tracks):
            raise RuntimeError(
                f"model output has shape {tuple(out.shape)}, expected (batch, {self.model.n_bins} bins, "
                f"{self.model.n_tracks} tracks); check window/bin_size/crop or the adapter's layout"
            )
        if self.rc_average:
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

    def _run_batches(self, seqs, tss_index, all_tracks: bool = False, bar=None, exons=None, antisense=None):
        """Run (N, L) uint8 sequences (numpy, or a torch tensor, pinned for async copies);
        returns central bins (N, n, T_sel), the exon read-out (N, T_sel) when `exons` (one
        interval array per row) is given, and with `all_tracks` every track aggregated
        over the central bins (N, T_all).

        A CUDA out-of-memory halves the batch size (kept for the rest of the job) and
        retries the same sequences; batch size 1 running out of memory is re-raised.
        On CUDA the results come back through pinned buffers without a sync per batch.
        """
        if not isinstance(seqs, torch.Tensor):
            seqs = torch.from_numpy(np.ascontiguousarray(seqs, dtype=np.uint8))
        n, length = seqs.shape
        if length != self.model.window:
            raise ValueError(f"sequences have length {length}, model window is {self.model.window}")
        starts = torch.from_numpy(
            np.broadcast_to(
                central_bin_start(
                    tss_index, self.model.crop, self.model.bin_size, self.n_bins, self.model.n_bins
                ),
                (n,),
            ).astype(np.int64)  # a writable copy for torch.from_numpy
        )
        cuda = self.device.type == "cuda"
        sel_out = np.empty((n, self.n_bins, len(self.track_idx)), dtype=np.float32)
        all_out = np.empty((n, self.model.n_tracks), dtype=np.float32) if all_tracks else None
        exon_out = np.empty((n, len(self.track_idx)), dtype=np.float32) if exons is not None else None
        anti = None if antisense is None else np.broadcast_to(np.asarray(antisense, bool), (n,))
        pending = []  # CUDA: (i, j, host sel, host exon, host all, start event, end event)
        i = 0
        with torch.inference_mode():
            while i < n:
                bs = self.batch_size
                j = min(n, i + bs)
                codes = seqs[i:j].to(self.device, non_blocking=True)
                start = starts[i:j].to(self.device, non_blocking=True)
                w = a = None
                if exons is not None:
                    m = self.model
                    w = exon_weights(exons[i:j], m.crop, m.bin_size, m.n_bins, self.spec["exon_aggregation"])
                    w = torch.from_numpy(w).to(self.device)
                if anti is not None:
                    a = torch.from_numpy(np.array(anti[i:j])).to(self.device)  # a writable copy
                if self.compile and not self._strict and j - i < bs:
                    # Pad the last batch to a full one so the compiled graph keeps one shape.
                    pad = bs - (j - i)
                    codes = torch.cat([codes, codes[-1:].expand(pad, -1)])
                    start = torch.cat([start, start[-1:].expand(pad)])
                    w = None if w is None else torch.cat([w, w[-1:].expand(pad, -1)])
                    a = None if a is None else torch.cat([a, a[-1:].expand(pad)])
                ev = (
                    (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                    if cuda
                    else None
                )
                try:
                    if cuda:
                        ev[0].record()
                    sel, ex, cen = self._central(codes, start, all_tracks, a, w)
                    if cuda:
                        ev[1].record()
                except Exception as e:
                    if not _is_oom(e) or bs == 1:
                        raise
                    del e
                    if cuda:
                        torch.cuda.empty_cache()
                    self.batch_size = max(1, bs // 2)
                    log.warning(
                        "out of memory at batch size %d: halving to %d and retrying", bs, self.batch_size
                    )
                    continue
                if cuda:
                    pending.append(
                        (
                            i,
                            j,
                            _to_host(sel[: j - i]),
                            None if ex is None else _to_host(ex[: j - i].float()),
                            _to_host(cen[: j - i]) if all_tracks else None,
                            *ev,
                        )
                    )
                else:
                    sel_out[i:j] = sel[: j - i].numpy()
                    if ex is not None:
                        exon_out[i:j] = ex[: j - i].float().numpy()
                    if all_tracks:
                        all_out[i:j] = cen[: j - i].numpy()
                self.n_forward += j - i
                if bar is not None:
                    bar.update(j - i)
                i = j
        for i, j, hs, he, ha, e0, e1 in pending:
            e1.synchronize()
            self.gpu_busy_s += e0.elapsed_time(e1) / 1000
            sel_out[i:j] = hs.numpy()
            if he is not None:
                exon_out[i:j] = he.numpy()
            if all_tracks:
                all_out[i:j] = ha.numpy()
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


def _is_enformer(module) -> bool:
    try:
        from enformer_pytorch import Enformer
    except ImportError:
        return False
    return isinstance(module, Enformer)


def _to_host(t: torch.Tensor) -> torch.Tensor:
    """Start an asynchronous device→host copy into pinned memory (complete after a sync)."""
    out = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    out.copy_(t, non_blocking=True)
    return out


def compile_cache_dir(spec: dict) -> str:
    """Where inductor keeps compiled kernels: $TORCHINDUCTOR_CACHE_DIR if set, else the
    spec's compile_cache, else .snakemake/hapexp/torchinductor in the working directory
    (shared by the jobs of a run, and by later runs)."""
    return (
        os.environ.get("TORCHINDUCTOR_CACHE_DIR")
        or spec.get("compile_cache")
        or str(Path(".snakemake") / "hapexp" / "torchinductor")
    )


def _compile(fn, spec: dict):
    cache = compile_cache_dir(spec)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(cache).resolve())
    Path(cache).mkdir(parents=True, exist_ok=True)
    mode = spec["compile_mode"]
    log.info("torch.compile (mode %s, static shapes), cache %s", mode, cache)
    return torch.compile(fn, mode=None if mode == "default" else mode, dynamic=False)


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
    """(header, hap_rows, iterator of (seqs, exons per row) batches, ref_row getter) for one gene.

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


def _work(index, gene_ids, window, rc_minus, dedup, bs, n_samples, pin, exons, strands, exon_stats_of):
    """The producer: renders each gene's sequences (a batch at a time) and cuts them
    into work blocks.

    Yields ("block", seqs [k, L], tss [k], exons per row | None, antisense [k]) with k a
    multiple of `bs` (the last block: the rest), so that sequences of consecutive genes
    share batches, and ("gene", gene_id, hap_rows, ref_row, n_rows, exon stats | None)
    once a gene's rows are all queued (its rows precede it in the blocks). The same
    items in the same order whether it runs in the calling thread or ahead of it
    (prefetch); `pin`: blocks as pinned torch tensors, ready for asynchronous
    host→device copies.
    """
    use_exons = exons is not None
    pending = {"seqs": [], "tss": [], "exons": [], "anti": []}
    n_pending = 0

    def block(k):
        nonlocal n_pending
        cat = {
            key: (np.concatenate(v) if len(v) > 1 else v[0]) for key, v in pending.items() if key != "exons"
        }
        rows_ex = [iv for part in pending["exons"] for iv in part] if use_exons else None
        rest = k < n_pending
        for key in ("seqs", "tss", "anti"):
            pending[key] = [cat[key][k:]] if rest else []
        pending["exons"] = [rows_ex[k:]] if (rest and use_exons) else []
        n_pending -= k
        out = np.ascontiguousarray(cat["seqs"][:k])
        seqs = torch.from_numpy(out).pin_memory() if pin else out
        return ("block", seqs, cat["tss"][:k], None if rows_ex is None else rows_ex[:k], cat["anti"][:k])

    for gid in gene_ids:
        gene_ex = None
        if use_exons:
            gene_ex = np.asarray(exons.get(gid, np.zeros((0, 2), np.int64)), dtype=np.int64).reshape(-1, 2)
        head, hap_rows, batches, ref_row = _gene_batches(index, gid, window, rc_minus, bs, dedup, gene_ex)
        if hap_rows.shape != (n_samples, 2):
            raise ValueError(f"gene {gid}: hap_map has shape {hap_rows.shape}, expected ({n_samples}, 2)")
        antisense = (not bool(getattr(head, "flipped", True))) and strands.get(gid, "+") == "-"
        stats = exon_stats_of(gid, head) if use_exons else None
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
            if n_pending >= bs:
                yield block((n_pending // bs) * bs)
        yield ("gene", gid, hap_rows, ref_row(), n_rows, stats)
    if n_pending:
        yield block(n_pending)


def predict_chunk(
    index, predictor: Predictor, genes=None, dedup: bool = True, progress: bool = True, exons=None
):
    """Predict every gene of a haplotype index (or the `genes` subset).

    `index` needs `.genes` (DataFrame with gene_id), `.samples` and
    `.gene_haplotypes(gene_id, length, rc_minus=)` → object with sequences,
    hap_map, reference, tss_index (hapexp.sequences.haplotypes.HaplotypeIndex); with
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
    bar = _Progress(len(gene_ids), progress)
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

    items = _work(index, gene_ids, window, rc_minus, dedup, bs, len(samples), cuda,
                  exons if use_exons else None, strands, exon_stats_of)  # fmt: skip
    for item in prefetch(items, depth=int(s["prefetch"])):
        if item[0] == "gene":
            per_gene.append(item[1:5])
            if item[5] is not None:
                predictor.exon_stats.append(item[5])
            n_haplotypes += 2 * len(samples)
            bar.add_gene(item[4])
            continue
        sel, alltr, ex = predictor._run_batches(item[1], item[2], store_all, bar, item[3], item[4])
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


def audit_predict(
    index, predictor: Predictor, audit_cfg: dict | None = None, model: str = "model", exons=None
):
    """Precision budget of `predict` (hapexp.engine.precision) for one job; sets the precision used.

    Re-runs the audited genes (all their unique haplotypes and the reference) in strict
    fp32 and in each candidate precision; the configured one is used, or for `auto`
    the first candidate whose budget holds. Returns the budget table (empty in fp32).
    """
    from hapexp.engine.precision import AUDIT_DEFAULTS, audit_genes, choose, finish, predict_budget

    if predictor.candidates == ("fp32",):
        predictor.set_precision("fp32")
        return finish([], "fp32", model)
    cfg = {**AUDIT_DEFAULTS, **(audit_cfg or {})}
    agg = predictor.spec["haplotype_aggregation"]
    sample = audit_genes(index.genes["gene_id"], cfg["fraction"], cfg["min_genes"])
    with predictor.strict():
        strict, _ = predict_chunk(index, predictor, genes=sample, progress=False, exons=exons)
    trials = []
    for p in predictor.candidates:
        if p == "fp32":
            trials.append((p, None))
            break
        predictor.set_precision(p)
        reduced, _ = predict_chunk(index, predictor, genes=sample, progress=False, exons=exons)
        trials.append((p, predict_budget(reduced, strict, agg, cfg["max_noise_ratio"])))
        if predictor.spec["precision"] != "auto" or not trials[-1][1]["flagged"].any():
            break
    used = choose(trials, predictor.spec["precision"])
    predictor.set_precision(used)
    table = finish(trials, used, model)
    log.info(
        "precision: %s (tried %s); %d of %d audited genes flagged in %s",
        used, "/".join(p for p, _ in trials), int(table.loc[table["used"], "flagged"].sum()),
        len(sample), used,
    )  # fmt: skip
    return table


def run_predict(
    index_path,
    spec: dict,
    audit_cfg: dict | None,
    table_out,
    tracks_out,
    precision_out,
    model: str,
    exons_path=None,
    exons_out=None,
):
    """Rule `predict`: budget, then one chunk of genes; writes the tidy table, the all-tracks
    file, the precision budget and (readout: exons) the per-gene exon counts."""
    from hapexp.inputs.exons import read_exons
    from hapexp.io import write_parquet, write_tsv
    from hapexp.sequences.haplotypes import HaplotypeIndex

    index = HaplotypeIndex.load(index_path)
    predictor = Predictor(spec, name=model)
    exons = read_exons(exons_path) if (exons_path and predictor.uses_exons) else None
    if exons is not None:
        missing = [g for g in index.genes["gene_id"] if g not in exons]
        if missing:
            log.warning(
                "%d genes have no exons (their exon read-out is NaN), e.g. %s", len(missing), missing[:3]
            )
    table = audit_predict(index, predictor, audit_cfg, model, exons=exons)
    tidy, all_tracks = predict_chunk(index, predictor, progress=True, exons=exons)
    write_tsv(table, precision_out)
    write_parquet(tidy, table_out)
    save_all_tracks(all_tracks, tracks_out)
    if exons_out is not None:
        cols = [
            "gene_id",
            "exons",
            "exons_in_window",
            "exons_clipped",
            "exons_dropped",
            "exons_deleted",
            "exon_bins",
        ]
        write_tsv(pd.DataFrame(predictor.exon_stats, columns=cols), exons_out)
    log.info("wrote %d rows to %s", len(tidy), table_out)
    return tidy, table
