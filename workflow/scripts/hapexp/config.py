"""Model configuration: defaults per model kind, resolved without importing torch.

`rules/common.smk` uses `model_spec` to size jobs (device → GPU resource) and
`model_input_files` to wire weights produced by other rules into the DAG, so this
module must stay import-light (no torch, no numpy).
"""

from __future__ import annotations

from pathlib import Path

from hapexp.errors import InputError

ENFORMER_HUB_ID = "EleutherAI/enformer-official-rough"
BORZOI_HUB_ID = "johahi/borzoi-replicate-0"  # Flashzoi: johahi/flashzoi-replicate-0
ALPHAGENOME_HUB_ID = "RylieWeaver/alphagenome-pytorch"  # alphagenome-pt's converted weights
# Shipped with the repository (resources/), found from here so that runs in another
# working directory (snakemake --directory, tests) use it too.
ENFORMER_TARGETS = str(Path(__file__).resolve().parents[3] / "resources" / "enformer_targets_human.tsv")

# Static metadata per kind: output bin size and bases cropped on each side of the
# input before the first output bin (0 = bins tile the whole input). The loader
# re-derives crop from the loaded model where it can (enformer: target_length).
KIND_DEFAULTS: dict[str, dict] = {
    "oracle": {"bin_size": 128, "crop": 0},
    "enformer_tiny": {
        "bin_size": 128,
        "crop": 0,
        "window": 2048,
        # Small enough for the demo (a few thousand 2 kb sequences) in seconds on CPU.
        "hparams": {
            "dim": 48,
            "depth": 1,
            "heads": 2,
            "attn_dim_key": 16,
            "dim_divisible_by": 8,
            "n_tracks": 8,
        },
    },
    "enformer": {
        "bin_size": 128,
        "crop": 40960,
        "window": 196608,
        "weights": ENFORMER_HUB_ID,
        "head": "human",
        "targets": ENFORMER_TARGETS,
        "use_tf_gamma": None,  # None = auto: on when the transformer sees 1536 positions
    },
    # Borzoi/Flashzoi: 524,288 bp in, the central 6,144 bins of 32 bp out (crop read
    # from the checkpoint: bins_to_return).
    "borzoi": {
        "bin_size": 32,
        "window": 524288,
        "weights": BORZOI_HUB_ID,
        "head": "human",
        "unsquash": True,
        "attention": "auto",
    },
    # AlphaGenome (alphagenome-pt): 1,048,576 bp in, bins of `resolution` (1 or 128) out.
    "alphagenome": {
        "crop": 0,
        "window": 1048576,
        "weights": ALPHAGENOME_HUB_ID,
        "fold": "all_folds",
        "organism": "human",
        "outputs": ["rna_seq", "cage"],
        "resolution": 128,
    },
    # A user's TorchScript file / Python class; bin_size and crop come from `adapter`.
    "torchscript": {"adapter": {}},
    "python": {"adapter": {}},
}

COMMON_DEFAULTS: dict = {
    "tracks": [0],
    "readout": "tss",
    "exon_aggregation": "sum",
    "bins": 3,
    "bin_aggregation": "sum",
    "haplotype_aggregation": "mean",
    "log": False,
    "rc_minus": True,
    "rc_average": False,
    "batch_size": "auto",  # CUDA: from free memory (hapexp.engine.gpu_memory); CPU: CPU_BATCH_SIZE
    "max_batch_size": 64,
    "threads": 2,  # CPU threads of the model's predict, ism and finetune jobs
    "device": "auto",
    "precision": "auto",  # hapexp.engine.precision: fp32 on CPU, bf16/tf32/fp32 by the measured budget on CUDA
    "compile": "auto",  # on for CUDA
    "compile_mode": "default",
    "compile_cache": None,  # None: $TORCHINDUCTOR_CACHE_DIR, else .snakemake/hapexp/torchinductor
    "attention": "auto",  # enformer: reference in fp32, sdpa otherwise (hapexp.models.enformer_attention)
    "prefetch": 2,  # batches rendered ahead in a background thread (0: none)
    "deterministic": True,
    "store_all_tracks": False,
    "seed": 0,
    "use_tf_gamma": None,
    "targets": None,
    "weights": None,
}

ADAPTER_DEFAULTS: dict = {
    "input": "blc",  # one-hot layout the model takes: (B, L, 4) "blc" or (B, 4, L) "bcl"
    "output": "blt",  # output layout: (B, bins, tracks) "blt" or (B, tracks, bins) "btl"
    "output_key": None,  # model returns a dict/tuple: the key or index of the track tensor
    "bin_size": None,
    "crop": 0,
}

CPU_BATCH_SIZE = 8

_CHOICES = {
    "bin_aggregation": ("sum", "mean"),
    "haplotype_aggregation": ("mean", "sum"),
    "device": ("auto", "cuda", "cpu"),
    "precision": ("auto", "fp32", "tf32", "bf16"),
    "compile": ("auto", True, False),
    "compile_mode": ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
    "readout": ("tss", "exons"),
    "exon_aggregation": ("sum", "mean"),
}


# `attention` depends on the architecture: Enformer's kernel (hapexp.models.enformer_attention)
# or Flashzoi's flash-attn / torch SDPA (hapexp.models.borzoi).
_ATTENTION = {"borzoi": ("auto", "flash", "torch")}
_ENFORMER_ATTENTION = ("auto", "reference", "sdpa", "flex")


def _bad(name: str, problem: str, fix: str):
    return InputError("config", problem, fix, where=f"models.{name}")


def model_spec(cfg: dict, name: str = "model") -> dict:
    """Return the model's config with every default filled in (config wins), validated.

    Raises InputError naming `models.<name>` for an unknown kind, a bad choice or a
    window that is not a whole number of output bins.
    """
    kind = cfg.get("kind")
    if kind not in KIND_DEFAULTS:
        raise _bad(name, f"unknown model kind {kind!r}", f"use one of: {', '.join(sorted(KIND_DEFAULTS))}")
    spec = {**COMMON_DEFAULTS, **KIND_DEFAULTS[kind], **cfg}
    spec["name"] = cfg.get("name", name)
    if kind == "enformer_tiny":
        spec["hparams"] = {**KIND_DEFAULTS[kind]["hparams"], **cfg.get("hparams", {})}
        # Output bins are 2^num_downsamples bp (enformer-pytorch's pooling; 128 by default).
        spec["bin_size"] = 2 ** int(spec["hparams"].get("num_downsamples", 7))
    if kind in ("torchscript", "python"):
        adapter = {**ADAPTER_DEFAULTS, **cfg.get("adapter", {})}
        if adapter["bin_size"] is None:
            raise _bad(name, "adapter.bin_size is missing", "give the model's output bin size in bases")
        if adapter["input"] not in ("blc", "bcl") or adapter["output"] not in ("blt", "btl"):
            raise _bad(name, "adapter.input must be blc|bcl and adapter.output blt|btl", "fix the adapter")
        spec["adapter"] = adapter
        spec["bin_size"], spec["crop"] = int(adapter["bin_size"]), int(adapter["crop"])
        if kind == "torchscript" and not spec.get("path", spec["weights"]):
            raise _bad(
                name, "a torchscript model needs `path`", "give the .pt file written by torch.jit.save"
            )
        if kind == "python" and not spec.get("class"):
            raise _bad(name, "a python model needs `class`", "give 'package.module:Class' or 'file.py:Class'")
    if kind == "enformer" and "crop" not in cfg:
        # enformer-pytorch crops the trunk to 896 bins (target_length); smaller windows crop less.
        spec["crop"] = max(0, (int(spec["window"]) // 128 - 896) // 2 * 128)
    if kind == "borzoi":
        # The published checkpoints return the central 6,144 bins; the loader reads the
        # checkpoint's own crop and refuses an explicit `crop` that disagrees.
        # (a spec resolved before keeps what the user gave)
        spec["_crop_given"] = cfg["_crop_given"] if "_crop_given" in cfg else cfg.get("crop")
        if "crop" not in cfg:
            spec["crop"] = max(0, (int(spec["window"]) // 32 - 6144) // 2 * 32)
    if kind == "alphagenome":
        if int(spec["resolution"]) not in (1, 128):
            raise _bad(name, f"resolution {spec['resolution']} is not 1 or 128", "set resolution: 1 or 128")
        spec["bin_size"] = int(spec["resolution"])
    for key, choices in {**_CHOICES, "attention": _ATTENTION.get(kind, _ENFORMER_ATTENTION)}.items():
        if spec[key] not in choices:
            raise _bad(name, f"{key}={spec[key]!r} is not one of {choices}", f"set {key} to one of {choices}")
    if "window" not in spec:
        raise _bad(name, "window is missing", "give the model's input length in bases")
    window, bin_size, crop = int(spec["window"]), int(spec["bin_size"]), int(spec["crop"])
    if window % 2:
        raise _bad(
            name, f"window {window} is odd", "use an even input length (the TSS sits at index window//2)"
        )
    if window % bin_size:
        raise _bad(
            name,
            f"window {window} is not a multiple of the output bin size {bin_size}",
            f"use a window that is a multiple of {bin_size}, e.g. {(window // bin_size + 1) * bin_size}",
        )
    if window - 2 * crop < bin_size:
        raise _bad(name, f"crop {crop} leaves no output bin in a {window} bp window", "check window/crop")
    if int(spec["bins"]) > (window - 2 * crop) // bin_size:
        raise _bad(name, f"bins={spec['bins']} exceeds the model's output bins", "use fewer central bins")
    bs = spec["batch_size"]
    if bs != "auto" and (isinstance(bs, bool) or not isinstance(bs, int) or bs < 1):
        raise _bad(
            name,
            f"batch_size must be auto or an integer ≥ 1, not {bs!r}",
            "set batch_size: auto or 1 or more",
        )
    if int(spec["max_batch_size"]) < 1 or int(spec["prefetch"]) < 0:
        raise _bad(name, "max_batch_size must be ≥ 1 and prefetch ≥ 0", "fix max_batch_size / prefetch")
    return spec


def is_hub_id(weights: str) -> bool:
    """`org/name` that is not a path on disk: a Hugging Face hub id."""
    parts = str(weights).split("/")
    return len(parts) == 2 and all(parts) and not Path(weights).exists() and not str(weights).startswith(".")


def model_input_files(spec: dict) -> list[str]:
    """Local files a model needs (weights, targets table), as rule inputs.

    Files produced by other rules (the demo oracle) must be listed so that the DAG
    orders them; hub ids are not files.
    """
    out = []
    always_file = spec.get("kind") in ("oracle", "torchscript", "python")
    for key in ("weights", "path"):
        w = spec.get(key)
        if w and w != "random" and (always_file or not is_hub_id(w)):
            out.append(str(w))
    if spec.get("targets"):
        out.append(str(spec["targets"]))
    return sorted(set(out))
