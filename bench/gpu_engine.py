"""Every GPU measurement of the inference engine (first made for issue 14), side by side in one
run (a few minutes on an H100/H200).

Run through bench/gpu_engine.sh (it also saves nvidia-smi). Stages, in priority
order; each is skipped when the deadline (--deadline seconds) would be passed, and the
results so far are written after every stage to OUT/results.md and OUT/results.json:

 1. attention kernels: sdpa / flex vs enformer-pytorch's reference on one full-size
    layer (n = 1536, dim 1536, 8 heads): fp32 (TF32 off) agreement, bf16 time and memory;
 2. engine, uncompiled, bf16, full-size Enformer (random weights) on nearly unique
    synthetic haplotypes (--founders 1000): the Geuvadis preset's old mode (batch 16,
    reference attention, no prefetch), then each optimization alone (sdpa attention,
    prefetch thread + pinned memory, batch size from free memory), then all three;
    and the anchors' way (batch 1, TF32, every haplotype) for the ratio;
 3. ISM variants/s with and without reference reuse (bf16), and the reuse's exactness
    in fp32 on the GPU;
 4. the precision budget of bf16 and TF32 against strict fp32 (predict and ISM);
 5. compiled (torch.compile, default mode) with everything on — the new CUDA default;
    then compiled alone; then mode reduce-overhead (CUDA graphs) and
    max-autotune-no-cudagraphs, as time allows.
Per engine row: sequences/s, model FLOP utilization (FLOPs from torch's counter ×
sequences/s ÷ the GPU's dense peak), GPU busy fraction (CUDA-event time inside the
forward passes ÷ wall time) and peak GPU memory.

enformer-pytorch and the packages it needs come from the wheels in bench/wheels (`make
gpu-wheels` on a machine with PyPI); `polars`, imported by enformer_pytorch.data but not
used for inference, is replaced by an empty stub when it is not installed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import tempfile
import time
import traceback
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Always taken from the wheels (their versions are the tested ones; transformers checks them).
PRIMARY = {
    "enformer_pytorch",
    "transformers",
    "huggingface_hub",
    "tokenizers",
    "pyfaidx",
    "einops",
    "safetensors",
}
# Only when the machine lacks them.
SECONDARY = {
    "regex": "regex", "pyyaml": "yaml", "requests": "requests", "urllib3": "urllib3", "idna": "idna",
    "certifi": "certifi", "charset_normalizer": "charset_normalizer", "tqdm": "tqdm", "packaging": "packaging",
    "filelock": "filelock", "fsspec": "fsspec",
}  # fmt: skip


def _compatible(wheel: str) -> bool:
    m = re.match(r"^(.+?)-([^-]+)(?:-\d[^-]*)?-([^-]+)-([^-]+)-([^-]+)\.whl$", wheel)
    if not m:
        return False
    py, abi, plat = m.group(3), m.group(4), m.group(5)
    here = f"cp{sys.version_info.major}{sys.version_info.minor}"
    plat_ok = plat == "any" or ("x86_64" in plat and "linux" in plat)
    py_ok = any(t in ("py3", "py2.py3") or t == here for t in py.split(".")) or (
        abi == "abi3" and int(py.split(".")[0][3:] or 0) <= sys.version_info.minor
    )
    return plat_ok and py_ok


def bootstrap(wheels: Path) -> str:
    """Make enformer_pytorch importable from carried wheels (extracted = installed)."""
    site = Path(tempfile.mkdtemp(prefix="hapexp-gpu-site-"))
    used = []
    for w in sorted(wheels.glob("*.whl")) if wheels.is_dir() else []:
        dist = w.name.split("-")[0].lower().replace("-", "_")
        if not _compatible(w.name):
            continue
        if dist not in PRIMARY:
            mod = SECONDARY.get(dist)
            if mod is None or importlib.util.find_spec(mod) is not None:
                continue
        with zipfile.ZipFile(w) as z:
            z.extractall(site)
        used.append(w.name)
    if importlib.util.find_spec("polars") is None:
        (site / "polars").mkdir(exist_ok=True)
        (site / "polars" / "__init__.py").write_text(
            '"""Stub: enformer_pytorch.data imports polars at module level; inference never uses it."""\n'
        )
        used.append("polars stub")
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    importlib.invalidate_caches()
    import enformer_pytorch  # noqa: F401  (fails here, clearly, if something is still missing)

    return f"site {site}: {', '.join(used) or 'nothing needed'}"


def _load(name: str, path: Path):
    """Import a bench script by path (workflow/scripts has rule scripts of the same names)."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


class Run:
    def __init__(self, out: Path, deadline: float):
        self.out, self.t0, self.deadline = out, time.time(), deadline
        self.res: dict = {"stages": {}, "notes": []}
        self.only: set | None = None
        self.md: list[str] = []

    def left(self) -> float:
        return self.deadline - (time.time() - self.t0)

    def stage(self, name: str, cost: float, fn):
        if self.only and name.split("-")[0][0] not in self.only:
            return None
        if self.left() < cost:
            self.res["stages"][name] = {"skipped": f"needs ~{cost:.0f} s, {self.left():.0f} s left"}
            self.md.append(f"\n(stage {name} skipped: needs ~{cost:.0f} s, {self.left():.0f} s left)\n")
            self.flush()
            return None
        t = time.time()
        try:
            r = fn()
            self.res["stages"][name] = {"seconds": time.time() - t, **(r or {})}
        except Exception as e:  # record and go on: the other stages still count
            self.res["stages"][name] = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}
            self.md.append(f"\n**stage {name} failed**: `{type(e).__name__}: {str(e)[:300]}`\n")
        self.flush()
        return self.res["stages"][name]

    def flush(self):
        (self.out / "results.md").write_text("\n".join(self.md) + "\n")
        (self.out / "results.json").write_text(json.dumps(self.res, indent=1, default=str))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/gpu_out")
    ap.add_argument("--deadline", type=float, default=480, help="seconds for the whole run")
    ap.add_argument("--wheels", default=str(ROOT / "bench" / "wheels"))
    ap.add_argument("--genes", type=int, default=4)
    ap.add_argument("--samples", type=int, default=48)
    ap.add_argument("--founders", type=int, default=1000)
    ap.add_argument("--only", help="comma-separated stage numbers to run, e.g. 3,4 (default: all)")
    ap.add_argument("--cpu-smoke", action="store_true",
                    help="check this script on CPU with enformer_tiny (2 kb) instead of full Enformer on CUDA")  # fmt: skip
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run = Run(out, args.deadline)
    run.only = set(args.only.split(",")) if args.only else None
    boot = bootstrap(Path(args.wheels))
    sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
    # Outside OUT: only a few files come back from the device machine.
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(tempfile.gettempdir()) / "hapexp-inductor"))
    import logging

    import numpy as np
    import torch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    binf = _load("bench_inference", ROOT / "bench" / "inference.py")
    bism = _load("bench_ism", ROOT / "bench" / "ism.py")

    from hapexp.engine.predictor import Predictor

    smoke = args.cpu_smoke
    dev = "cpu" if smoke else "cuda"
    if smoke:
        torch.set_num_threads(1)
        env = f"CPU smoke test (enformer_tiny); torch {torch.__version__}, Python {sys.version.split()[0]}; {boot}"
    else:
        assert torch.cuda.is_available(), "no CUDA GPU visible"
        name = torch.cuda.get_device_name()
        free, total = torch.cuda.mem_get_info()
        env = (f"{name}, {total / 2**30:.0f} GiB ({free / 2**30:.0f} free); torch {torch.__version__}, CUDA "
               f"{torch.version.cuda}, Python {sys.version.split()[0]}; {boot}")  # fmt: skip
    run.res["env"] = env
    run.md += [
        f"# GPU engine measurements (issue 14) ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"Machine: {env}",
        "",
    ]
    run.flush()

    base = {"kind": "enformer", "weights": "random", "window": 196608, "tracks": [5110], "bins": 3,
            "device": "cuda", "seed": 0}  # fmt: skip
    if smoke:
        base = {"kind": "enformer_tiny", "window": 2048, "tracks": [0], "bins": 2, "device": "cpu", "seed": 0}
    index = binf.SyntheticIndex(args.genes, args.samples, base["window"], 200, args.founders)
    shared = {}

    def model():
        if "model" not in shared:  # one set of random weights for every engine row
            p = Predictor({**base, "precision": "fp32", "compile": False, "batch_size": 1, "prefetch": 0})
            shared["model"] = p.model
            shared["flops"] = binf.flops_per_sequence(p)
        return shared["model"]

    # ---------------------------------------------------------------- 1. attention
    def attention():
        from enformer_pytorch.modeling_enformer import Attention

        from hapexp.models.enformer import attention as ea

        torch.manual_seed(0)
        d, n = (48, 64) if smoke else (1536, 1536)
        a = Attention(d, num_rel_pos_features=d // 8, heads=8, dim_key=64, dim_value=d // 8).to(dev).eval()
        torch.nn.init.normal_(a.to_out.weight, std=0.02)
        x = torch.randn(4, n, d, device=dev)
        sync = torch.cuda.synchronize if not smoke else (lambda: None)
        rows = []
        with torch.inference_mode():
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
            want = Attention.forward(a, x)
            ea.install(a, "reference")
            for k in ("reference", "sdpa", "flex"):
                ea.set_kernel(a, k)
                f = torch.compile(a) if (k == "flex" and not smoke) else a
                got = f(x)
                err = float(((got - want).abs() / (want.abs() + 1e-6 * want.abs().max())).max())
                with torch.autocast(dev, dtype=torch.bfloat16):
                    f(x)
                    sync()
                    if not smoke:
                        torch.cuda.reset_peak_memory_stats()
                    m0 = 0 if smoke else torch.cuda.memory_allocated()
                    t = time.perf_counter()
                    for _ in range(5):
                        f(x)
                    sync()
                    ms = (time.perf_counter() - t) / 5 * 1000
                peak = 0 if smoke else torch.cuda.max_memory_allocated()
                rows.append((k, err, ms, (peak - m0) / 2**20))
        run.md += ["## 1. Attention kernels (one full-size layer, batch 4, n = 1536)", "",
                   "| kernel | fp32 max rel. diff vs reference | bf16 ms / call | bf16 peak extra MiB |",
                   "| --- | ---: | ---: | ---: |"]  # fmt: skip
        run.md += [f"| {k} | {e:.2e} | {ms:.2f} | {mib:.0f} |" for k, e, ms, mib in rows] + [""]
        return {"rows": rows}

    # ---------------------------------------------------------------- engine rows
    rows = []

    def engine_row(label, spec, genes=None, dedup=True, kind="bf16"):
        pred = Predictor({**base, **spec}, model=model(), name="bench")
        r = binf.measure(
            pred, index, genes=genes, dedup=dedup, flops=shared["flops"], peak=binf.peak_tflops(kind)
        )
        r.pop("table")
        r["label"] = label
        rows.append(r)
        write_engine()
        return r

    def write_engine():
        run.md = [line for line in run.md if not line.startswith("|E|")]
        base_rate = next((r["seq_per_s"] for r in rows if r["label"].startswith("uncompiled baseline")), None)
        anch = next((r["seq_per_s"] for r in rows if r["label"].startswith("anchors")), None)
        table = ["|E|| way | batch | precision | sequences/s | MFU | GPU busy | peak GiB | × baseline | × anchors |",
                 "|E|| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for r in rows:
            x1 = f"{r['seq_per_s'] / base_rate:.2f}×" if base_rate else "–"
            x2 = f"{r['seq_per_s'] / anch:.2f}×" if anch else "–"
            table.append(f"|E|| {r['label']} | {r['batch']} | {r['precision']} | {r['seq_per_s']:.1f} | "
                         f"{100 * r.get('mfu', float('nan')):.1f} % | {100 * r['gpu_busy']:.0f} % | "
                         f"{r.get('peak_gib', float('nan')):.1f} | {x1} | {x2} |")  # fmt: skip
        (out / "engine.md").write_text("\n".join(t[3:] for t in table) + "\n")
        run.res["engine"] = rows

    old = {"precision": "bf16", "compile": False, "attention": "reference", "prefetch": 0, "batch_size": 16}

    def uncompiled():
        model()
        engine_row("uncompiled baseline: batch 16, reference attention, no prefetch", old)
        engine_row("+ sdpa attention alone", {**old, "attention": "sdpa"})
        engine_row("+ prefetch alone", {**old, "prefetch": 2})
        engine_row("+ batch from free memory alone", {**old, "batch_size": "auto"})
        engine_row("uncompiled, all three", {**old, "attention": "sdpa", "prefetch": 2, "batch_size": "auto"})
        engine_row("uncompiled, all three, cuDNN benchmark (deterministic: false)",
                   {**old, "attention": "sdpa", "prefetch": 2, "batch_size": "auto", "deterministic": False})  # fmt: skip
        g0 = [index.genes["gene_id"].iloc[0]]
        engine_row("anchors: batch 1, TF32, every haplotype", {"precision": "tf32", "compile": False,
                   "attention": "reference", "prefetch": 0, "batch_size": 1}, genes=g0, dedup=False, kind="tf32")  # fmt: skip
        return {}

    def compiled(label, spec, cost_note=""):
        def fn():
            t = time.time()
            r = engine_row(label, spec)
            r["wall_incl_compile_s"] = time.time() - t
            return {}

        return fn

    # ---------------------------------------------------------------- 3. ISM reuse
    def ism_reuse():
        from hapexp.engine import ism

        pred = Predictor({**base, **old, "batch_size": 16}, model=model(), name="ism")
        nv, spread = (12, 500) if smoke else (96, 50_000)
        var = bism.SyntheticVariants(1, nv, base["window"], spread=spread)
        spec, cfg = pred.spec, {"maf": 0.0, "indels": False}
        out_rows = []
        for way in ("full", "reuse"):
            rd = ism.EngineReadout(spec, reuse=way == "reuse", predictor=pred)
            bism.raw_scores(var, rd, spec, cfg)  # warm-up
            (df, t) = binf.timed(lambda rd=rd: bism.raw_scores(var, rd, spec, cfg))
            out_rows.append((way, len(df) / t, df))
        ratio = out_rows[1][1] / out_rows[0][1]
        # Exactness in strict fp32 (TF32 off) on the GPU, 8 variants.
        p32 = Predictor({**base, **old, "precision": "fp32", "batch_size": 8}, model=model(), name="ism32")
        small = bism.SyntheticVariants(1, 8, base["window"], spread=spread, seed=1)
        a = bism.raw_scores(small, ism.EngineReadout(p32.spec, reuse=False, predictor=p32), p32.spec, cfg)
        b = bism.raw_scores(small, ism.EngineReadout(p32.spec, reuse=True, predictor=p32), p32.spec, cfg)
        err = float((np.abs(a["score"] - b["score"]) / np.abs(a["ref"])).max())
        rel = float((np.abs(a["alt"] - b["alt"]) / np.abs(a["alt"])).max())
        run.md += ["## 3. ISM with and without reference reuse (bf16, uncompiled, batch 16)", "",
                   "| way | variants/s | speed-up |", "| --- | ---: | ---: |",
                   f"| full forward per variant | {out_rows[0][1]:.1f} | 1.00× |",
                   f"| reference reuse | {out_rows[1][1]:.1f} | **{ratio:.2f}×** |", "",
                   f"fp32 (TF32 off), {len(a)} SNVs: max relative difference of read-outs {rel:.2e}; max "
                   f"|score(full) − score(reuse)| / |reference read-out| {err:.2e}.", ""]  # fmt: skip
        return {"full_vps": out_rows[0][1], "reuse_vps": out_rows[1][1], "ratio": ratio, "fp32_err": err,
                "fp32_rel": rel}  # fmt: skip

    # ---------------------------------------------------------------- 4. precision
    def budget():
        from hapexp.engine import ism, precision
        from hapexp.engine.audit import audit_predict

        small = binf.SyntheticIndex(2, 24, base["window"], 200, args.founders, seed=3)
        var = bism.SyntheticVariants(
            1, 12 if smoke else 48, base["window"], spread=500 if smoke else 50_000, seed=2
        )
        tables = []
        for p in ("bf16", "tf32"):
            pred = Predictor({**base, "precision": p, "compile": False, "batch_size": 8, "prefetch": 0},
                             model=model(), name="budget")  # fmt: skip
            tables.append(audit_predict(small, pred, {"fraction": 1.0}, model=f"enformer-random-{p}"))
            _, t = ism.score_chunk(var, ism.EngineReadout(pred.spec, predictor=pred), pred.spec, {"maf": 0.0},
                                   {"fraction": 1.0}, model=f"enformer-random-{p}", return_audit=True)  # fmt: skip
            tables.append(t)
        import pandas as pd

        tab = pd.concat(tables, ignore_index=True)
        tab.to_csv(out / "precision.tsv", sep="\t", index=False)
        s = precision.summarize(tab)
        run.md += ["## 4. Precision budget vs strict fp32 (random weights, synthetic people)", "",
                   s.to_markdown(index=False) if hasattr(s, "to_markdown") else s.to_string(index=False), "",
                   "Per gene: precision.tsv. max_rel_diff of read-outs: "
                   + ", ".join(f"{p} {tab.loc[(tab.precision == p) & (tab.stage == 'predict'), 'max_rel_diff'].max():.1e}"
                               for p in ("bf16", "tf32")), ""]  # fmt: skip
        return {"summary": s.to_dict("records")}

    allon = {"precision": "bf16", "attention": "sdpa", "prefetch": 2, "batch_size": "auto"}
    if smoke:
        index = binf.SyntheticIndex(2, 6, base["window"], 20, args.founders)
    run.stage("1-attention", 60, attention)
    run.md += ["## 2/5. Engine, full-size Enformer (random weights), bf16 unless stated",
               f"{args.genes} genes × {args.samples} people, {args.founders} founders (nearly every haplotype unique); "
               "MFU vs the dense peak of the row's precision; GPU busy = CUDA-event time in forwards / wall.", ""]  # fmt: skip
    run.stage("2-uncompiled", 150, uncompiled)
    run.stage("3-ism-reuse", 60, ism_reuse)
    run.stage("4-precision", 90, budget)
    run.stage("5a-compiled-all-on", 150, compiled("compiled (default mode), sdpa, prefetch, auto batch — new default",
                                                  {**allon, "compile": True}))  # fmt: skip
    run.stage("5b-compiled-alone", 150, compiled("compiled alone (batch 16, reference attention, no prefetch)",
                                                 {**old, "compile": True}))  # fmt: skip
    run.stage("5c-reduce-overhead", 180, compiled("compiled reduce-overhead (CUDA graphs), all on",
                                                  {**allon, "compile": True, "compile_mode": "reduce-overhead"}))  # fmt: skip
    run.stage("5d-max-autotune", 240, compiled("compiled max-autotune-no-cudagraphs, all on",
                                               {**allon, "compile": True, "compile_mode": "max-autotune-no-cudagraphs"}))  # fmt: skip
    engine = (out / "engine.md").read_text() if (out / "engine.md").exists() else "(no engine rows)\n"
    run.md.append("## Engine table\n\n" + engine)
    run.md.append(f"Total {time.time() - run.t0:.0f} s.")
    run.flush()
    print("\n".join(run.md))


if __name__ == "__main__":
    main()
