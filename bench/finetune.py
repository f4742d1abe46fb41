"""Benchmark: fine-tuning throughput (examples/s = haplotype windows per second, forward +
backward + optimizer step) and peak memory for the options of hapexp.training.finetune, side by side.

Synthetic haplotypes (random sequences; one step = one gene × `--people` people, both
haplotypes, all distinct), the Trainer's own read-out and losses:
    nice .venv/bin/python bench/finetune.py                       # enformer_tiny on CPU
    python bench/finetune.py --full --device cuda --people 8      # full-size Enformer (random weights)
Prints a markdown block for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from hapexp.models.spec import model_spec  # noqa: E402
from hapexp.training.finetune import Trainer, resolve, start_model  # noqa: E402
from hapexp.training.readout import person_values  # noqa: E402

OPTIONS = [
    ("all, fp32", {}),
    ("all, fp32, checkpointing", {"gradient_checkpointing": True}),
    ("all, bf16", {"precision": "bf16"}),
    ("all, bf16, checkpointing", {"precision": "bf16", "gradient_checkpointing": True}),
    ("last_blocks (1), bf16", {"precision": "bf16", "trainable": "last_blocks"}),
    ("lora (rank 8, q/k/v/out), bf16", {"precision": "bf16", "trainable": "lora"}),
    ("head, bf16", {"precision": "bf16", "trainable": "head"}),
]


def gene(window: int, people: int, rng) -> SimpleNamespace:
    seqs = np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, (2 * people, window))]
    return SimpleNamespace(sequences=seqs, hap_map=np.arange(2 * people).reshape(people, 2),
                           tss_index=window // 2, flipped=True)  # fmt: skip


def measure(spec, cfg, people: int, steps: int, warmup: int = 2) -> tuple[float, float]:
    tr = Trainer(spec, resolve({**cfg, "progress": False, "device": spec["device"]}), start_model(spec, None))
    dev = tr.predictor.device
    rng = np.random.default_rng(0)
    z = torch.tensor(np.linspace(-1, 1, people), dtype=torch.float32, device=dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = None
    for i in range(warmup + steps):
        if i == warmup:
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
        tr.opt.zero_grad(set_to_none=True)
        loss = tr.loss(person_values(tr.predictor, gene(spec["window"], people, rng), "+").float(), z)
        loss.backward()
        tr.opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    rate = steps * 2 * people / (time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else float("nan")
    return rate, peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true", help="full-size Enformer (196,608 bp, random weights)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--people", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    if a.full:
        cfg = {"kind": "enformer", "weights": "random", "tracks": [5110], "bins": 3}
    else:
        cfg = {"kind": "enformer_tiny", "window": 2048, "tracks": [0], "bins": 2}
    spec = model_spec({**cfg, "device": a.device, "precision": "fp32"}, "bench")
    name = torch.cuda.get_device_name() if a.device == "cuda" else platform.processor() or platform.machine()
    print(f"fine-tuning {spec['kind']} ({spec['window']} bp), {a.people} people/step, {a.steps} steps, "
          f"{name}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads\n")  # fmt: skip
    print("| option | examples/s | peak GPU memory (GiB) |\n| --- | ---: | ---: |")
    for label, opt in OPTIONS:
        if a.device == "cpu" and "bf16" in label:  # CPU: fp32 only (bf16 autocast there is no speed-up)
            if "all" in label:
                continue
            label, opt = label.replace("bf16", "fp32"), {k: v for k, v in opt.items() if k != "precision"}
        rate, peak = measure(spec, opt, a.people, a.steps)
        print(f"| {label} | {rate:.1f} | {peak:.1f} |", flush=True)


if __name__ == "__main__":
    main()
