"""Engine: dedup equals running every haplotype, OOM back-off, device rules, determinism, outputs."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from hapexp.engine.device import resolve_device
from hapexp.engine.predict import aggregate_predictions, predict_chunk
from hapexp.engine.predictor import Predictor
from hapexp.engine.readout import REFERENCE_SAMPLE
from hapexp.models.registry import LoadedModel

TINY = {
    "kind": "enformer_tiny",
    "window": 2048,
    "tracks": [0, 3],
    "bins": 2,
    "device": "cpu",
    "batch_size": 8,
}


pytestmark = pytest.mark.usefixtures("torch_one_thread")


class FakeIndex:
    """The hapexp.sequences.index.HaplotypeIndex interface, built from random SNVs."""

    def __init__(self, n_genes=3, n_samples=12, length=2048, n_snvs=4, seed=0):
        rng = np.random.default_rng(seed)
        self.samples = [f"S{i:02d}" for i in range(n_samples)]
        self.genes = pd.DataFrame(
            {
                "gene_id": [f"G{g}" for g in range(n_genes)],
                "name": [f"g{g}" for g in range(n_genes)],
                "chrom": "1",
                "tss": 10_000 * (np.arange(n_genes) + 1),
                "strand": ["+", "-"] * (n_genes // 2) + ["+"] * (n_genes % 2),
            }
        )
        self._data = {}
        for gid in self.genes["gene_id"]:
            ref = np.frombuffer(bytes(rng.choice(list(b"ACGT"), length).astype(np.uint8)), np.uint8).copy()
            # SNVs near the TSS so that they move the central bins.
            pos = rng.choice(np.arange(length // 2 - 300, length // 2 + 300), n_snvs, replace=False)
            alt = np.array([{65: 67, 67: 71, 71: 84, 84: 65}[ref[p]] for p in pos], np.uint8)
            gt = rng.random((n_samples, 2, n_snvs)) < 0.3
            haps = np.repeat(ref[None, None, :], n_samples * 2, 0).reshape(n_samples, 2, length)
            for k, p in enumerate(pos):
                haps[:, :, p] = np.where(gt[:, :, k], alt[k], ref[p])
            flat = haps.reshape(-1, length)
            uniq, inv = np.unique(flat, axis=0, return_inverse=True)
            self._data[gid] = (uniq, inv.reshape(n_samples, 2).astype(np.int32), ref)

    def gene_haplotypes(self, gene_id, length, rc_minus=True):
        uniq, hap_map, ref = self._data[gene_id]
        assert length == ref.shape[0]
        return SimpleNamespace(
            sequences=uniq, hap_map=hap_map, reference=ref, tss_index=length // 2, flipped=False
        )


@pytest.fixture(scope="module")
def index():
    return FakeIndex()


def test_dedup_equals_every_haplotype(index):
    # Same batch size 1 for both paths: identical kernels, so identical bytes.
    p = Predictor({**TINY, "batch_size": 1})
    dedup, _ = predict_chunk(index, p, progress=False)
    n_dedup = p.n_forward
    every, _ = predict_chunk(index, p, dedup=False, progress=False)
    assert n_dedup < p.n_forward - n_dedup  # dedup really ran fewer sequences
    pd.testing.assert_frame_equal(dedup, every)
    # Different batch size (sequences of several genes share a batch): equal to float tolerance.
    q = Predictor({**TINY, "batch_size": 5})
    batched, _ = predict_chunk(index, q, progress=False)
    np.testing.assert_allclose(batched["value"], dedup["value"], rtol=1e-5, atol=1e-6)
    # Per-haplotype values vary across samples (SNVs near the TSS matter).
    assert dedup.groupby("gene_id")["value"].std().min() > 0


def test_tidy_layout_and_reference(index):
    p = Predictor(TINY)
    tidy, _ = predict_chunk(index, p, progress=False)
    n_s, n_g, n_t = len(index.samples), len(index.genes), 2
    assert len(tidy) == n_g * (2 * n_s + 1) * n_t
    assert list(tidy.columns) == ["gene_id", "sample", "haplotype", "track", "track_name", "value"]
    ref = tidy[tidy["sample"] == REFERENCE_SAMPLE]
    assert set(ref["haplotype"]) == {0} and len(ref) == n_g * n_t
    # The reference row equals a direct read-out of the reference sequence.
    gh = index.gene_haplotypes("G1", 2048)
    direct = p.readout(gh.reference[None, :], gh.tss_index)[0]
    got = ref[ref["gene_id"] == "G1"].sort_values("track")["value"].to_numpy()
    np.testing.assert_allclose(got, direct, rtol=1e-5)
    # A sample's haplotype equals the read-out of its own sequence.
    row = gh.sequences[gh.hap_map[3, 1]]
    want = p.readout(row[None, :], gh.tss_index)[0]
    got = tidy.query("gene_id == 'G1' and sample == 'S03' and haplotype == 2").sort_values("track")["value"]
    np.testing.assert_allclose(got.to_numpy(), want, rtol=1e-5)


def test_aggregate_matrix(index):
    p = Predictor({**TINY, "haplotype_aggregation": "sum"})
    tidy, _ = predict_chunk(index, p, progress=False)
    matrix, reference = aggregate_predictions(tidy, "sum")
    assert matrix.shape == (len(index.genes), len(index.samples))
    sub = tidy.query("gene_id == 'G2' and sample == 'S05'")
    want = sub.groupby("haplotype")["value"].mean().sum()
    assert matrix.loc["G2", "S05"] == pytest.approx(want)
    mean_matrix, _ = aggregate_predictions(tidy, "mean")
    np.testing.assert_allclose(mean_matrix.to_numpy() * 2, matrix.to_numpy())
    r = tidy.query(f"gene_id == 'G0' and sample == '{REFERENCE_SAMPLE}'")["value"].mean()
    assert reference.loc["G0"] == pytest.approx(r)


def test_deterministic_for_fixed_config(index):
    a, _ = predict_chunk(index, Predictor(TINY), progress=False)
    b, _ = predict_chunk(index, Predictor(TINY), progress=False)
    assert a["value"].to_numpy().tobytes() == b["value"].to_numpy().tobytes()
    c, _ = predict_chunk(index, Predictor({**TINY, "seed": 1}), progress=False)
    assert not np.allclose(a["value"], c["value"])


def test_store_all_tracks(index):
    p = Predictor({**TINY, "store_all_tracks": True})
    tidy, allt = predict_chunk(index, p, progress=False)
    assert allt["values"].shape[1] == p.model.n_tracks == 8
    k = 2
    rows = allt["values"][allt["offsets"][k] : allt["offsets"][k + 1]]
    hap = rows[allt["hap_rows"][k]]  # [samples, 2, all tracks]
    got = tidy.query("gene_id == 'G2' and track == 3 and haplotype > 0")["value"].to_numpy()
    np.testing.assert_allclose(hap[:, :, 3].reshape(-1), got, rtol=1e-5)


class _OomModel(torch.nn.Module):
    """Sums A's per bin; raises CUDA-style OOM above a batch size, like a GPU would."""

    def __init__(self, max_batch):
        super().__init__()
        self.max_batch, self.calls = max_batch, []

    def forward(self, x):
        self.calls.append(x.shape[0])
        if x.shape[0] > self.max_batch:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return x.reshape(x.shape[0], -1, 128, 4).sum(2)


def test_oom_halves_batch_and_retries(index, caplog):
    spec = {**TINY, "kind": "oracle", "batch_size": 16, "tracks": [0, 1, 2, 3]}
    fake = _OomModel(max_batch=5)
    loaded = LoadedModel(fake, 2048, 128, 0, 4, ["A", "C", "G", "T"], kind="fake")
    p = Predictor(spec, model=loaded)
    with caplog.at_level(logging.WARNING, logger="hapexp.engine.predictor"):
        tidy, _ = predict_chunk(index, p, progress=False)
    assert p.batch_size == 4
    assert "halving to 8" in caplog.text and "halving to 4" in caplog.text
    assert max(c for c in fake.calls if c <= 5) == 4
    ok = LoadedModel(_OomModel(max_batch=10**6), 2048, 128, 0, 4, ["A", "C", "G", "T"], kind="fake")
    ref, _ = predict_chunk(index, Predictor({**spec, "batch_size": 4}, model=ok), progress=False)
    pd.testing.assert_frame_equal(tidy, ref)
    # A non-OOM error is not swallowed.
    bad = LoadedModel(torch.nn.Identity(), 2048, 128, 0, 4, ["A", "C", "G", "T"], kind="fake")
    with pytest.raises(RuntimeError, match="model output has shape"):
        predict_chunk(index, Predictor({**spec, "tracks": [0]}, model=bad), progress=False)


def test_oom_at_batch_one_is_raised(index):
    spec = {**TINY, "kind": "oracle", "batch_size": 2}
    loaded = LoadedModel(_OomModel(max_batch=0), 2048, 128, 0, 4, ["A", "C", "G", "T"], kind="fake")
    with pytest.raises(torch.OutOfMemoryError):
        predict_chunk(index, Predictor(spec, model=loaded), progress=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU behaviour")
def test_cuda_requested_without_gpu_fails():
    with pytest.raises(RuntimeError, match="device: cuda"):
        resolve_device("cuda")
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        Predictor({**TINY, "device": "cuda"})
    assert resolve_device("auto").type == "cpu"


def test_bf16_close_to_fp32(index):
    a, _ = predict_chunk(index, Predictor(TINY), progress=False)
    b, _ = predict_chunk(index, Predictor({**TINY, "precision": "bf16"}), progress=False)
    np.testing.assert_allclose(a["value"], b["value"], rtol=0.05)


def test_oracle_reproduces_simulator_noiseless_expression(tmp_path):
    """Simulator → VCF → haplotype index → engine (config's oracle block) = simulator's own values."""
    import yaml

    from hapexp.demo.simulate import simulate_demo
    from hapexp.io import read_matrix
    from hapexp.sequences.haplotypes import build_index
    from hapexp.sequences.index import HaplotypeIndex
    from hapexp.variants.normalize import normalize

    simulate_demo(tmp_path, seed=3, n_individuals=20, n_chromosomes=1, chromosome_length=60000, n_genes=6)
    genes = pd.read_csv(tmp_path / "genes.tsv", sep="\t")
    normalize([str(tmp_path / "cohort.vcf.gz")], tmp_path / "reference.fa", tmp_path / "norm.bcf")
    build_index(tmp_path / "norm.bcf", tmp_path / "reference.fa", genes, 2048, tmp_path / "idx.npz")
    idx = HaplotypeIndex.load(tmp_path / "idx.npz")
    with open("config/config.yaml") as fh:
        cfg = yaml.safe_load(fh)["models"]["oracle"]
    p = Predictor({**cfg, "weights": str(tmp_path / "oracle.pt")}, name="oracle")
    tidy, _ = predict_chunk(idx, p, progress=False)
    matrix, reference = aggregate_predictions(tidy, p.spec["haplotype_aggregation"])
    truth = read_matrix(tmp_path / "expression_noiseless.tsv")
    got = matrix.loc[truth.index, truth.columns].to_numpy()
    assert truth.to_numpy().std(axis=1).max() > 0.01  # some genes do vary between people
    np.testing.assert_allclose(got, truth.to_numpy(), rtol=1e-5, atol=1e-5)
    tg = pd.read_csv(tmp_path / "truth_genes.tsv", sep="\t").set_index("gene_id")
    np.testing.assert_allclose(reference.loc[tg.index], tg["ref_readout"], rtol=1e-5, atol=1e-5)


def test_gather_predictions_files(index, tmp_path):
    from hapexp.engine.predict import run_gather_predictions, track_groups_table
    from hapexp.io import read_matrix, write_parquet

    p = Predictor(TINY)
    tidy, _ = predict_chunk(index, p, progress=False)
    a, b = tidy[tidy["gene_id"] == "G0"], tidy[tidy["gene_id"] != "G0"]
    write_parquet(a, tmp_path / "000.parquet")
    write_parquet(b, tmp_path / "001.parquet")
    track_groups_table(p).to_csv(tmp_path / "000.groups.tsv", sep="\t", index=False)
    paths = [tmp_path / "000.parquet", tmp_path / "001.parquet"]
    groups = [tmp_path / "000.groups.tsv"] * 2
    out = [tmp_path / "all.parquet", tmp_path / "m.matrix.tsv", tmp_path / "m.reference.tsv"]
    run_gather_predictions(paths, groups, *out, spec={"haplotype_aggregation": "mean"})
    pd.testing.assert_frame_equal(pd.read_parquet(out[0]), tidy)
    m = read_matrix(out[1])
    want, ref = aggregate_predictions(tidy, "mean")
    assert list(m.index) == ["G0", "G1", "G2"] and list(m.columns) == index.samples
    np.testing.assert_allclose(m.to_numpy(), want.to_numpy(), rtol=1e-9)
    r = pd.read_csv(out[2], sep="\t")
    assert list(r.columns) == ["gene_id", "value"]
    np.testing.assert_allclose(r["value"], ref.to_numpy(), rtol=1e-9)
    with pytest.raises(ValueError, match="more than one chunk"):
        run_gather_predictions([paths[0], paths[0]], groups, *out, spec={"haplotype_aggregation": "mean"})


# -- GPU-path pieces that run on CPU: prefetching, batch size, strict mode ----------------
class _SlowIndex(FakeIndex):
    """Renders slowly and unevenly, so the prefetch thread and the consumer interleave."""

    def __init__(self, fail_at=None, **kw):
        super().__init__(**kw)
        self.fail_at = fail_at
        self.rendered = []

    def gene_haplotypes(self, gene_id, length, rc_minus=True):
        import time

        if gene_id == self.fail_at:
            raise ValueError(f"cannot render {gene_id}")
        time.sleep(0.02 * (int(gene_id[1:]) % 3))
        self.rendered.append(gene_id)
        return super().gene_haplotypes(gene_id, length, rc_minus)


def test_prefetch_gives_identical_outputs_in_order():
    index = _SlowIndex(n_genes=7, n_samples=10)
    sync, _ = predict_chunk(index, Predictor({**TINY, "batch_size": 5, "prefetch": 0}), progress=False)
    ahead, _ = predict_chunk(index, Predictor({**TINY, "batch_size": 5, "prefetch": 3}), progress=False)
    # Same blocks, same batches, same kernels: byte-identical, genes in the index's order.
    pd.testing.assert_frame_equal(sync, ahead)
    assert list(pd.unique(ahead["gene_id"])) == [f"G{g}" for g in range(7)]
    assert index.rendered == [f"G{g}" for g in range(7)] * 2


def test_prefetch_producer_error_reaches_the_caller():
    index = _SlowIndex(n_genes=5, n_samples=6, fail_at="G3")
    with pytest.raises(ValueError, match="cannot render G3"):
        predict_chunk(index, Predictor({**TINY, "prefetch": 2}), progress=False)


def test_prefetch_iterator_order_and_early_stop():
    import threading
    import time

    from hapexp.engine.prefetch import prefetch

    produced = []

    def items():
        for i in range(100):
            time.sleep(0.001 * (i % 4))
            produced.append(i)
            yield i

    assert list(prefetch(items(), depth=3)) == list(range(100))
    produced.clear()
    for i in prefetch(items(), depth=2):
        if i == 5:
            break
    time.sleep(0.05)
    assert len(produced) <= 5 + 1 + 2 + 1  # bounded look-ahead, then the producer stopped
    assert not any(t.name == "hapexp-prefetch" and t.is_alive() for t in threading.enumerate())


def test_cpu_defaults_and_strict_mode(index):
    p = Predictor({**TINY, "batch_size": "auto", "precision": "bf16"})
    assert p.batch_size == 8 and p.compile is False  # CPU: no memory probe, no compilation
    assert Predictor({**TINY, "precision": "auto"}).precision == "fp32"  # auto on CPU
    fp32, _ = predict_chunk(index, Predictor({**TINY, "precision": "fp32"}), progress=False)
    with p.strict():
        assert p.effective_precision == "fp32"
        strict, _ = predict_chunk(index, p, progress=False)
    pd.testing.assert_frame_equal(strict, fp32)
    bf16, _ = predict_chunk(index, p, progress=False)
    assert not np.array_equal(bf16["value"], fp32["value"])


def test_compile_cache_dir(monkeypatch, tmp_path):
    from hapexp.engine.device import compile_cache_dir

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    assert compile_cache_dir({}) == ".snakemake/hapexp/torchinductor"
    assert compile_cache_dir({"compile_cache": str(tmp_path)}) == str(tmp_path)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/shared/cache")
    assert compile_cache_dir({"compile_cache": str(tmp_path)}) == "/shared/cache"


def test_compiled_path_pads_batches_and_matches(index, monkeypatch, tmp_path):
    """compile: true runs through torch.compile with static shapes (the last batch padded)
    and gives the uncompiled numbers; dynamo's eager backend keeps it fast on CPU (inductor
    itself is exercised by bench/gpu_engine.sh). The ISM reuse tail compiles too."""
    from hapexp.engine import ism

    compiled_shapes = []
    orig = torch.compile

    def eager_compile(fn, **kw):
        kw.pop("mode", None)

        def spy(x, *a):
            compiled_shapes.append(tuple(x.shape))
            return fn(x, *a)

        return orig(spy, backend="eager", **kw)

    monkeypatch.setattr(torch, "compile", eager_compile)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "cache"))
    spec = {**TINY, "batch_size": 7, "compile": True}
    compiled, _ = predict_chunk(index, Predictor(spec), progress=False)
    plain, _ = predict_chunk(index, Predictor({**spec, "compile": False}), progress=False)
    np.testing.assert_allclose(compiled["value"], plain["value"], rtol=1e-5, atol=1e-6)
    assert compiled_shapes and {s[0] for s in compiled_shapes} == {7}  # every batch padded to 7
    # ISM with reference reuse: the compiled transformer tail equals the uncompiled one.
    gh = index.gene_haplotypes("G0", 2048)
    readout = ism.make_readout({**spec, "name": "c"})
    with readout.reusing(gh.reference):
        a = readout(gh.sequences, gh.tss_index)
    b = ism.EngineReadout(spec, reuse=False, predictor=Predictor({**spec, "compile": False}))(
        gh.sequences, gh.tss_index
    )
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert readout.predictor._compiled_tail is not None
