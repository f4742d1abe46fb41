"""GPU throughput of each architecture at its native window, through hapexp's engine.

Full-size architectures with random weights (speed and memory only; no download):
Enformer (196,608 bp, 5,313 tracks), Borzoi and Flashzoi (524,288 bp, 7,611 tracks;
Flashzoi with flash-attn when installed, else hapexp's torch attention) and AlphaGenome
(1,048,576 bp; rna_seq + cage heads at the published widths, 768 + 640 tracks, 128-bp
and 1-bp outputs). Each runs `Predictor.readout` (one track, 3 central bins; RNA-seq
models also with `readout: exons` over 10 exons) on random sequences in bf16 (and fp32
with --fp32) at increasing batch sizes until out of memory, and reports sequences/s
(after a warm-up batch) and peak GPU memory (`torch.cuda.max_memory_allocated`).

    python bench/architectures_gpu.py                      # all, bf16
    python bench/architectures_gpu.py --models borzoi alphagenome --fp32 --compile

Prints a markdown block for bench/RESULTS.md. Needs a CUDA GPU (H100/H200-class for
AlphaGenome at 1 Mb).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from hapexp.engine.predictor import Predictor  # noqa: E402
from hapexp.models.spec import model_spec  # noqa: E402

# Published padded output widths of the AlphaGenome heads used here (alphagenome-pt README).
AG_TRACKS = {"rna_seq": 768, "cage": 640}


def build(name: str, precision: str):
    """(LoadedModel, spec) of a full-size architecture with random weights, on cuda (the spec
    resolved by model_spec: the loaders read the kind's defaults from it)."""
    dev = torch.device("cuda")
    spec = {"name": name, "device": "cuda", "precision": precision, "_device": dev, "tracks": [0], "bins": 3}
    if name == "enformer":
        from enformer_pytorch import Enformer

        from hapexp.models.enformer import TARGETS as ENFORMER_TARGETS
        from hapexp.models.enformer.load import wrap_enformer

        spec = model_spec({**spec, "kind": "enformer", "window": 196_608, "targets": ENFORMER_TARGETS}, name)
        return wrap_enformer(Enformer.from_hparams(use_tf_gamma=False).to(dev), spec, "enformer"), spec
    if name in ("borzoi", "flashzoi"):
        from borzoi_pytorch import Borzoi
        from borzoi_pytorch.config_borzoi import BorzoiConfig

        from hapexp.models.borzoi.flash_attention import flash_attn_available, torch_flash_attention
        from hapexp.models.borzoi.load import wrap_borzoi

        spec = model_spec({**spec, "kind": "borzoi", "window": 524_288, "unsquash": True}, name)
        flashed = name == "flashzoi"
        use_torch = flashed and not flash_attn_available()
        cfg = BorzoiConfig(flashed=flashed)
        if use_torch:
            with torch_flash_attention():
                model = Borzoi(cfg)
        else:
            model = Borzoi(cfg)
        return wrap_borzoi(model.to(dev), spec, use_torch), spec
    if name.startswith("alphagenome"):
        from alphagenome_pt import AlphaGenome, deepmind_config

        from hapexp.models.alphagenome.load import wrap_alphagenome

        res = 1 if name.endswith("1bp") else 128
        heads = {
            h: {"num_tracks": [n], "means": [[1.0] * n], "track_mask": [[True] * n]}
            for h, n in AG_TRACKS.items()
        }
        model = AlphaGenome(deepmind_config(metadata={"organisms": ["human"], "heads": heads}))
        spec = model_spec(
            {
                **spec,
                "kind": "alphagenome",
                "window": 1_048_576,
                "resolution": res,
                "outputs": list(AG_TRACKS),
            },
            name,
        )
        return wrap_alphagenome(model.to(dev), spec, None), spec
    raise ValueError(name)


def run(name: str, precision: str, batches, exons: bool, compile_: bool, n_batches: int):
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    loaded, spec = build(name, precision)
    rows = []
    for bs in batches:
        full = {k: v for k, v in spec.items() if k != "_device"}
        full.update(batch_size=bs, compile=compile_, readout="exons" if exons else "tss")
        p = Predictor(model_spec(full, name), model=loaded)
        L = loaded.window
        rng = np.random.default_rng(0)
        seqs = rng.choice(np.frombuffer(b"ACGT", np.uint8), size=(bs, L))
        ex = (
            [np.array([[L // 2 + 2000 * k, L // 2 + 2000 * k + 150] for k in range(10)])] * bs
            if exons
            else None
        )
        try:
            torch.cuda.reset_peak_memory_stats()
            p.readout(seqs, L // 2, exons=ex)  # warm-up (and compile)
            torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(n_batches):
                p.readout(seqs, L // 2, exons=ex)
            torch.cuda.synchronize()
            dt = time.perf_counter() - t
        except torch.OutOfMemoryError:
            rows.append((bs, None, None))
            break
        if p.batch_size != bs:  # the engine halved the batch after an OOM
            rows.append((bs, None, None))
            break
        rows.append((bs, n_batches * bs / dt, torch.cuda.max_memory_allocated() / 2**30))
    del loaded
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--models", nargs="+", default=["enformer", "borzoi", "flashzoi", "alphagenome", "alphagenome_1bp"]
    )
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    ap.add_argument("--batches", type=int, default=5, help="timed batches per batch size")
    ap.add_argument("--fp32", action="store_true", help="also fp32")
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("needs a CUDA GPU")
    from hapexp.models.borzoi.flash_attention import flash_attn_available

    print(f"\n### Architectures on {torch.cuda.get_device_name()} ({time.strftime('%Y-%m-%d')})\n")
    print(f"torch {torch.__version__}, flash-attn {'yes' if flash_attn_available() else 'no (torch attention)'}; "
          f"random weights, {args.batches} timed batches after a warm-up; compile={args.compile}.\n")  # fmt: skip
    print("| model | window | precision | read-out | batch | sequences/s | peak GPU memory (GiB) |")
    print("| --- | ---: | --- | --- | ---: | ---: | ---: |")
    for name in args.models:
        for precision in ["bf16"] + (["fp32"] if args.fp32 else []):
            for exons in [False, True] if name != "enformer" else [False]:
                for bs, rate, mem in run(
                    name, precision, args.batch_sizes, exons, args.compile, args.batches
                ):
                    window = {"enformer": 196_608, "borzoi": 524_288, "flashzoi": 524_288}.get(
                        name, 1_048_576
                    )
                    ro = "exons" if exons else "tss"
                    cell = "OOM" if rate is None else f"{rate:.2f} | {mem:.1f}"
                    print(f"| {name} | {window:,} | {precision} | {ro} | {bs} | {cell} |")
                    sys.stdout.flush()


if __name__ == "__main__":
    main()
