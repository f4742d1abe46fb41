"""Model registry: spec validation, loading paths (local = hub code path), adapters."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from hapexp.engine.predictor import Predictor
from hapexp.errors import InputError
from hapexp.models.enformer import TARGETS as ENFORMER_TARGETS
from hapexp.models.enformer.load import build_enformer_tiny
from hapexp.models.enformer.load import set_tf_gamma as _set_tf_gamma
from hapexp.models.registry import load_model
from hapexp.models.spec import model_input_files, model_spec

TINY = {"kind": "enformer_tiny", "window": 2048, "tracks": [0, 5], "bins": 2, "device": "cpu"}


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _seqs(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.choice(np.frombuffer(b"ACGT", np.uint8), size=(n, 2048))


def test_spec_defaults_and_validation():
    s = model_spec(TINY, "tiny")
    assert s["bin_size"] == 128 and s["crop"] == 0 and s["batch_size"] == "auto" and s["name"] == "tiny"
    with pytest.raises(InputError, match="not a multiple of the output bin size 128"):
        model_spec({**TINY, "window": 2000}, "tiny")
    with pytest.raises(InputError, match="models.x"):
        model_spec({"kind": "nope", "window": 2048}, "x")
    with pytest.raises(InputError, match="precision"):
        model_spec({**TINY, "precision": "fp16"})
    with pytest.raises(InputError, match="exceeds"):
        model_spec({**TINY, "bins": 17})
    e = model_spec({"kind": "enformer"})
    assert (
        e["window"] == 196608 and e["crop"] == 40960 and e["weights"] == "EleutherAI/enformer-official-rough"
    )
    assert model_input_files(e) == [ENFORMER_TARGETS]  # hub id: not a file
    assert model_input_files(model_spec({"kind": "oracle", "window": 2048, "weights": "a/b.pt"})) == [
        "a/b.pt"
    ]


def test_spec_resolution_imports_neither_torch_nor_numpy():
    """rules/common.smk resolves every model's spec at parse time, and rules in environments
    without torch read specs: the kind declarations must not pull in the load code."""
    import subprocess
    import sys

    code = (
        "import sys; from hapexp.models.spec import KINDS, model_spec\n"
        "for k in KINDS: model_spec({'kind': k, 'window': 2048, 'weights': 'w.pt', 'path': 'p.pt',"
        " 'class': 'm:C', 'adapter': {'bin_size': 128}}, k)\n"
        "print(sorted(m for m in ('torch', 'numpy', 'pandas') if m in sys.modules))"
    )
    scripts = str(Path(__file__).resolve().parents[1] / "workflow" / "scripts")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": scripts})  # fmt: skip
    assert out.stdout.strip() == "[]"


def test_enformer_tiny_shape_and_seed():
    a = load_model(model_spec(TINY))
    assert (a.n_bins, a.n_tracks, a.crop, a.bin_size) == (16, 8, 0, 128)
    x = torch.nn.functional.one_hot(torch.from_numpy(_seqs(2) % 4).long(), 4).float()
    b = load_model(model_spec(TINY))
    with torch.inference_mode():
        ya, yb = a.forward(x), b.forward(x)
    assert ya.shape == (2, 16, 8)
    assert torch.equal(ya, yb)


def test_save_pretrained_loads_through_real_weights_path(tmp_path):
    # Save a tiny Enformer as a Hugging Face directory; load it as kind `enformer` (the
    # code path of real weights: Enformer.from_pretrained on a local dir).
    torch.manual_seed(0)
    model = build_enformer_tiny(model_spec({**TINY, "seed": 11}))
    model.save_pretrained(tmp_path / "w", safe_serialization=False)
    tiny = Predictor({**TINY, "seed": 11})
    real = Predictor({**TINY, "kind": "enformer", "weights": str(tmp_path / "w"), "targets": None})
    assert real.model.kind == "enformer" and real.model.crop == 0 and real.model.n_bins == 16
    seqs = _seqs(5)
    a, b = tiny.readout(seqs, 1024), real.readout(seqs, 1024)
    assert a.shape == (5, 2)
    np.testing.assert_array_equal(a, b)
    assert np.ptp(a[:, 0]) > 0  # outputs depend on the sequence


def test_missing_weights_error_names_what_to_download(tmp_path):
    with pytest.raises(InputError) as e:
        load_model(model_spec({"kind": "enformer", "weights": str(tmp_path / "nope")}, "enf"))
    msg = str(e.value)
    assert "huggingface-cli download EleutherAI/enformer-official-rough" in msg
    assert "models.enf.weights" in msg and "HF_HUB_OFFLINE" in msg
    with pytest.raises(InputError, match="simulate_demo"):
        load_model(model_spec({"kind": "oracle", "window": 2048, "weights": str(tmp_path / "o.pt")}))


def test_tf_gamma_flag_for_local_weights():
    from enformer_pytorch.modeling_enformer import Attention

    m = build_enformer_tiny(model_spec(TINY))
    # auto: on for 1536 positions (the official 196,608 bp window), whatever the weights' name
    assert _set_tf_gamma(m, {"use_tf_gamma": None}, 1536) is True
    assert all(a.use_tf_gamma for a in m.modules() if isinstance(a, Attention))
    assert _set_tf_gamma(m, {"use_tf_gamma": None}, 16) is False
    assert not any(a.use_tf_gamma for a in m.modules() if isinstance(a, Attention))
    with pytest.raises(InputError, match="use_tf_gamma"):
        _set_tf_gamma(m, {"use_tf_gamma": True}, 16)


class _Bcl(torch.nn.Module):
    """Channels-first model returning (B, tracks, bins): per-bin G count and GC count."""

    def forward(self, x):
        b, c, n = x.shape
        binned = x.reshape(b, c, n // 64, 64).sum(-1)
        return torch.stack([binned[:, 2], binned[:, 1] + binned[:, 2]], dim=1)


def test_torchscript_adapter(tmp_path):
    path = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(_Bcl()), str(path))
    spec = {
        "kind": "torchscript",
        "path": str(path),
        "window": 2048,
        "tracks": [1],
        "bins": 1,
        "device": "cpu",
        "adapter": {"input": "bcl", "output": "btl", "bin_size": 64},
    }
    p = Predictor(spec)
    assert (p.model.n_bins, p.model.n_tracks) == (32, 2)
    seqs = _seqs(3)
    gc = ((seqs[:, 1024:1088] == ord("C")) | (seqs[:, 1024:1088] == ord("G"))).sum(1)
    np.testing.assert_array_equal(p.readout(seqs, 1024)[:, 0], gc)
    with pytest.raises(InputError, match="bins"):
        Predictor({**spec, "adapter": {**spec["adapter"], "bin_size": 128}})


def test_python_class_kind(tmp_path):
    mod = tmp_path / "mymodel.py"
    mod.write_text(
        textwrap.dedent(
            """
            import torch
            class Counter(torch.nn.Module):
                def __init__(self, base=0):
                    super().__init__()
                    self.base = base
                def forward(self, x):
                    return x[..., self.base].reshape(x.shape[0], -1, 128, 1).sum(2)
            """
        )
    )
    spec = {"kind": "python", "class": f"{mod}:Counter", "kwargs": {"base": 3}, "window": 2048,
            "bins": 1, "device": "cpu", "adapter": {"bin_size": 128}}  # fmt: skip
    p = Predictor(spec)
    seqs = _seqs(2)
    want = (seqs[:, 1024:1152] == ord("T")).sum(1)
    np.testing.assert_array_equal(p.readout(seqs, 1024)[:, 0], want)
