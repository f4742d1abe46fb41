"""The Predictor: one model with the read-out of its spec, run in batches on the chosen device.

    Predictor(spec).readout(seqs, tss_index[, exons]) -> np.ndarray [N, n_tracks] float64
    Predictor(spec).central(seqs, tss_index) -> np.ndarray [N, bins, T] float32
    Predictor(spec).central_bins(codes, starts) -> torch tensors on the device (the read-out
        predict and fine-tuning share: with gradients outside inference_mode)

The engine is model-agnostic: what only some architectures can do (switchable attention
kernels, reusing a reference's activations in ISM) it asks of the loaded model
(`LoadedModel.set_attention`, `reference_reuse`; hapexp.models.registry).

Strands: a stranded track (its `strand_pair` differs from itself) predicts coverage
of one DNA strand. The reverse complement of an input predicts, in track t, what the
forward input has in track `strand_pair[t]`; RC averaging therefore flips the bins and
swaps the pairs. Rows read against the gene's orientation (minus-strand genes with
`rc_minus: false`) read each selected track's pair, so a `+` track is always the
gene's sense strand.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import torch

from hapexp.engine.device import (
    compile_fn,
    configure_cuda,
    is_oom,
    onehot_lut,
    precision_mode,
    release_large_buffers,
    resolve_device,
    to_host,
)
from hapexp.engine.precision import MODES as PRECISION_MODES
from hapexp.engine.precision import candidates, requested
from hapexp.engine.readout import central_bin_start, exon_weights, readout_values
from hapexp.models.registry import LoadedModel, load_model
from hapexp.models.spec import model_spec
from hapexp.models.tracks import is_tss_assay, resolve_tracks

log = logging.getLogger(__name__)

# Batch size of `batch_size: auto` on CPU (on CUDA it follows free memory: hapexp.engine.gpu_memory).
CPU_BATCH_SIZE = 8


class Predictor:
    """A model with its read-out, run in batches with inference_mode, precision and OOM back-off.

    GPU path (docs/architecture.md, "Inference engine"): compiled on CUDA by default
    (static shapes: the last batch is padded; the compile cache is shared by the jobs of
    a run), batch size from free GPU memory, a model's fused attention kernel in reduced
    precision, results copied back asynchronously (the GPU is not waiting for the host
    between batches). `strict()` runs the yardstick: fp32 without TF32, uncompiled, the
    model's exact attention. `reusing(reference)` routes the forwards of models that
    support reference reuse through it (ISM variants of one gene).
    """

    def __init__(self, spec: dict, model: LoadedModel | None = None, name: str | None = None):
        self.spec = model_spec(spec, name or spec.get("name", "model"))
        s = self.spec
        release_large_buffers()
        self.device = resolve_device(s["device"])
        torch.manual_seed(int(s["seed"]))
        if self.device.type == "cuda":
            configure_cuda(bool(s["deterministic"]))
        self.model = model if model is not None else load_model(s, self.device)
        if self.model.window != int(s["window"]):
            raise ValueError(f"model window {self.model.window} != spec window {s['window']}")
        self.model.module.to(self.device).eval()
        self.requested = requested(s)  # fp32 | tf32 | bf16 | auto
        self.candidates = candidates(self.requested, self.device.type)
        self.precision = self.candidates[0]
        self.n_bins = int(s["bins"])
        self.rc_average = bool(s["rc_average"])
        self.track_idx, self.track_groups = self._resolve_groups(s)
        self.track_names = [self.model.track_names[i] for i in self.track_idx]
        self.store_all = bool(s["store_all_tracks"])
        # readout exons: which selected tracks still read the TSS bins (CAGE, PRO-cap)
        exons = s["readout"] == "exons"
        self.tss_track = (
            is_tss_assay(self.model.tracks, self.track_idx) if exons else np.ones(len(self.track_idx), bool)
        )
        self.uses_exons = bool(exons and not self.tss_track.all())
        self.exon_stats: list[dict] = []  # per gene, filled by predict_chunk
        self._lut = onehot_lut(self.device)
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
        # Capabilities of the model (no-op / None when it has none): the attention kernel
        # (set again on every forward) and reference reuse for ISM.
        self.model.set_attention(s["attention"], self._exact_attention)
        self.reuse = self.model.reference_reuse()
        self._reuse_active = False
        self.n_forward = 0  # sequences run through the model (RC copies counted once)
        self.gpu_busy_s = 0.0  # GPU time inside forward passes (CUDA events)
        log.info(
            "model %s (%s): window %d, %d bins of %d (crop %d), tracks %s, device %s, precision %s%s, batch %s%s%s",
            s["name"], self.model.kind, self.model.window, self.model.n_bins, self.model.bin_size,
            self.model.crop, self.track_idx, self.device, self.requested,
            f" (trying {'/'.join(self.candidates)})" if self.requested == "auto" else "",
            s["batch_size"] if self._fixed_batch is None else self._fixed_batch,
            ", RC-averaged" if self.rc_average else "",
            f", compile {s['compile']} ({s['compile_mode']})",
        )  # fmt: skip

    def _resolve_groups(self, s: dict) -> tuple[list[int], dict[str, list[int]]]:
        """The tracks to run and, per group, the positions among them of the group's tracks.

        Group "" is the model's own `tracks`. A multi-tissue cohort adds one group per tissue
        (`track_groups`: tissue → selectors, None = the model's tracks; rules/common.smk
        resolved_model): the run then holds every track any tissue selects, once each (the
        model's tracks first, then each tissue's new ones in config order)."""

        def resolve(selectors, where):
            return resolve_tracks(
                selectors,
                self.model.track_names,
                self.model.identifiers,
                where=where,
                table=self.model.tracks,
            )

        own = resolve(s["tracks"], f"models.{s['name']}.tracks")
        groups = s.get("track_groups")
        if not groups:
            return own, {"": list(range(len(own)))}
        chosen = {
            t: own if sel is None else resolve(sel, f"tissues.{t}.tracks.{s['name']}")
            for t, sel in groups.items()
        }
        idx = list(dict.fromkeys([*own, *(i for ids in chosen.values() for i in ids)]))
        pos = {i: k for k, i in enumerate(idx)}
        return idx, {"": [pos[i] for i in own], **{t: [pos[i] for i in ids] for t, ids in chosen.items()}}

    # -- modes ---------------------------------------------------------------------
    @property
    def effective_precision(self) -> str:
        return "fp32" if self._strict else self.precision

    @property
    def compile(self) -> bool:
        """torch.compile in use: `compile: auto` = on CUDA in tf32/bf16; fp32 stays the
        model's eager forward (the reference numbers), strict() never compiles."""
        if self._compile_setting == "auto":
            return self.device.type == "cuda" and self.effective_precision != "fp32"
        return bool(self._compile_setting) and not self._strict

    def set_precision(self, precision: str) -> None:
        if precision not in PRECISION_MODES:
            raise ValueError(f"precision must be one of {PRECISION_MODES}, not {precision!r}")
        self.precision = precision

    @property
    def _exact_attention(self) -> bool:
        """The model's own attention: in strict(), and for `attention: auto` in fp32 (the
        reference numbers); otherwise the configured kernel, or the model's fused one."""
        return self._strict or (self.spec["attention"] == "auto" and self.effective_precision == "fp32")

    @contextlib.contextmanager
    def strict(self):
        """Strict fp32 for the precision audit: no autocast, no TF32, uncompiled, exact attention."""
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
            self._compiled = compile_fn(self.model.forward, self.spec)
        return self._compiled

    @contextlib.contextmanager
    def reusing(self, reference: np.ndarray):
        """Within: forwards compare each sequence with `reference` (uint8, one window) and, for
        models that support reference reuse (`LoadedModel.reference_reuse`), recompute only
        what differs. Yields whether reuse is on (False for other models: plain forwards)."""
        if self.reuse is None or self._reuse_active:
            yield False
            return
        ref = torch.from_numpy(np.array(reference, dtype=np.uint8)).to(self.device)  # a writable copy
        x = self._lut[ref.long()][None]
        if self.rc_average:
            x = torch.cat([x, x.flip(1).flip(2)])
        self.reuse.tail_fn = self.reuse.tail
        if self.compile and not self._strict:
            if self._compiled_tail is None:
                self._compiled_tail = compile_fn(self.reuse.tail, self.spec)
            self.reuse.tail_fn = self._compiled_tail
        with torch.inference_mode(), precision_mode(self.effective_precision, self.device.type):
            self.reuse.prepare(x)
        self._reuse_active = True
        try:
            yield True
        finally:
            self._reuse_active = False
            self.reuse.release()

    # -- device part ---------------------------------------------------------------
    def _model_out(self, codes: torch.Tensor, eager: bool = False) -> torch.Tensor:
        """uint8 codes (B, L) on device → float32 output (B, bins, T_all), RC-averaged if asked."""
        x = self._lut[codes.long()]
        b = codes.shape[0]
        if self.rc_average:
            # RC of a one-hot A,C,G,T sequence = flip along length and channels (ACGT → TGCA).
            x = torch.cat([x, x.flip(1).flip(2)])
        # several Predictors may share one model (audit, benchmarks): set it every time
        self.model.set_attention(self.spec["attention"], self._exact_attention)
        if self.compile and not self._strict and self.spec["compile_mode"] == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()  # CUDA graphs: a new step, outputs read below
        with precision_mode(self.effective_precision, self.device.type):
            if self._reuse_active:
                ids = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
                ids[b:] = 1
                out = self.reuse.forward(x, ids)
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

    def bin_starts(self, tss_index, n: int) -> torch.Tensor:
        """First central bin of each of `n` rows (CPU int64), from the 0-based TSS index (an
        int or one per row); raises when the central bins leave the model's output."""
        m = self.model
        start = central_bin_start(tss_index, m.crop, m.bin_size, self.n_bins, m.n_bins)
        return torch.from_numpy(np.broadcast_to(start, (n,)).astype(np.int64))  # a writable copy

    def central_bins(self, codes, starts, antisense=None, weights=None, all_tracks: bool = False):
        """The read-out on the device, shared by predict (under inference_mode, in batches:
        `run_batches`) and fine-tuning (with gradients): uint8 codes (B, L) and first
        central bins `starts` (B,) on the device → the n central bins of the selected tracks
        (B, n, T_sel); with `weights` (B, bins) the exon read-out (B, T_sel); with
        `all_tracks` every track aggregated over the central bins (B, T_all) (thousands of
        tracks × n bins per haplotype would otherwise fill host memory), else None.
        `antisense` (B,) bool: rows read the pair tracks.
        """
        out = self._model_out(codes)
        if antisense is not None and self.stranded and bool(antisense.any()):
            tr = torch.where(antisense[:, None], self._pair[self._sel][None, :], self._sel[None, :])
            sel_all = out.gather(2, tr[:, None, :].expand(-1, out.shape[1], -1))
        else:
            sel_all = out.index_select(2, self._sel)
        idx = starts[:, None] + torch.arange(self.n_bins, device=out.device)[None, :]
        sel = sel_all.gather(1, idx[:, :, None].expand(-1, -1, sel_all.shape[2]))
        exon = None
        if weights is not None:
            # NaN weights (no exon bin in the output) give NaN; 0 * inf cannot arise (outputs are finite)
            exon = torch.einsum("bn,bnt->bt", weights, sel_all)
        if not all_tracks:
            return sel, exon, None
        cen = out.gather(1, idx[:, :, None].expand(-1, -1, out.shape[2]))
        return sel, exon, (cen.sum(1) if self.spec["bin_aggregation"] == "sum" else cen.mean(1))

    def run_batches(self, seqs, tss_index, all_tracks: bool = False, bar=None, exons=None, antisense=None):
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
        starts = self.bin_starts(tss_index, n)
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
                    sel, ex, cen = self.central_bins(codes, start, a, w, all_tracks)
                    if cuda:
                        ev[1].record()
                except Exception as e:
                    if not is_oom(e) or bs == 1:
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
                            to_host(sel[: j - i]),
                            None if ex is None else to_host(ex[: j - i].float()),
                            to_host(cen[: j - i]) if all_tracks else None,
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
        return self.run_batches(seqs, tss_index)[0]

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
        sel, _, exon = self.run_batches(
            seqs, tss_index, exons=exons if self.uses_exons else None, antisense=antisense
        )
        return self.values(sel, exon)
