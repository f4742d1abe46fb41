"""Fine-tuning (hapexp.training.finetune): the trained read-out is predict's, the losses, exact resume."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from hapexp.engine.predict import aggregate_predictions, predict_chunk
from hapexp.engine.predictor import Predictor
from hapexp.errors import InputError
from hapexp.models.spec import model_spec
from hapexp.training.data import GeneSource, epoch_steps
from hapexp.training.finetune import Trainer, pairwise_loss, resolve, run_finetune, start_model
from hapexp.training.readout import person_values

TINY = {"kind": "enformer_tiny", "seed": 0, "window": 2048, "tracks": [0, 3], "bins": 2, "log": True,
        "batch_size": 16, "device": "cpu", "precision": "fp32"}  # fmt: skip


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """A small simulated cohort: haplotype index, noiseless expression, splits on disk."""
    from hapexp.io import read_matrix
    from hapexp.training.splits import split_genes, split_individuals
    from tests.simulated_cohort import simulated_index

    d = tmp_path_factory.mktemp("ft")
    index = simulated_index(d, 5, n_individuals=20, n_chromosomes=2, chromosome_length=60000, n_genes=6)
    genes = pd.read_csv(d / "genes.tsv", sep="\t")
    expr = read_matrix(d / "expression.tsv")
    split_individuals(list(expr.columns), {"seed": 1}).to_csv(d / "ind.tsv", sep="\t", index=False)
    split_genes(genes, {"seed": 1}).to_csv(d / "genes_split.tsv", sep="\t", index=False)
    return d, index, expr, genes


def test_training_readout_is_predicts(cohort, torch_one_thread):
    """person_values (the differentiable read-out) = predict's matrix, both strands, log on."""
    _, idx, _, genes = cohort
    spec = model_spec(TINY, "tiny")
    p = Predictor(spec)
    tidy, _ = predict_chunk(idx, p, progress=False)
    matrix, _ = aggregate_predictions(tidy, spec["haplotype_aggregation"])
    src = GeneSource([idx], 2048, True)
    samples = list(map(str, idx.samples))
    assert set(genes["strand"]) == {"+", "-"}
    with torch.no_grad():
        for gid in genes["gene_id"]:
            got = person_values(p, src.render(gid, samples), src.strand[gid]).double().numpy()
            np.testing.assert_allclose(got, matrix.loc[gid, samples].to_numpy(), rtol=1e-5, atol=1e-6)
    # a subset of people, in another order, reads the same values
    sub = samples[::-3]
    with torch.no_grad():
        got = person_values(p, src.render(gid, sub), src.strand[gid]).double().numpy()
    np.testing.assert_allclose(got, matrix.loc[gid, sub].to_numpy(), rtol=1e-5, atol=1e-6)


def test_pairwise_loss_against_a_double_loop():
    rng = np.random.default_rng(0)
    p, z = rng.normal(size=7), rng.normal(size=7)
    want = np.mean([((p[i] - p[j]) - (z[i] - z[j])) ** 2 / 2 for i, j in itertools.permutations(range(7), 2)])
    got = pairwise_loss(torch.tensor(p), torch.tensor(z)).item()
    assert got == pytest.approx(want, rel=1e-12)
    # invariant to a per-gene offset: only differences between people count
    assert pairwise_loss(torch.tensor(p + 5.0), torch.tensor(z)).item() == pytest.approx(want, rel=1e-12)


def test_epoch_steps_cover_every_person_once_per_gene():
    people = [f"S{i}" for i in range(23)]
    steps = epoch_steps(["A", "B", "C"], people, 5, seed=3, epoch=1)
    for g in "ABC":
        seen = [s for gg, ppl in steps if gg == g for s in ppl]
        assert sorted(seen) == sorted(people)
        assert all(len(ppl) >= 5 for gg, ppl in steps if gg == g)
    assert steps == epoch_steps(["A", "B", "C"], people, 5, seed=3, epoch=1)
    assert steps != epoch_steps(["A", "B", "C"], people, 5, seed=3, epoch=2)


def test_bad_options_are_named():
    with pytest.raises(InputError, match=r"models\.m\.finetune.*lora=.*rank >= 1"):
        resolve({"trainable": "lora", "lora": {"rank": 0}}, "m")
    with pytest.raises(InputError, match="lora keys"):
        resolve({"trainable": "lora", "lora": {"r": 4}}, "m")
    with pytest.raises(InputError, match=r"models\.m\.finetune.*trainable"):
        resolve({"trainable": "some"}, "m")
    with pytest.raises(InputError, match="loss"):
        resolve({"loss": {"pairwise": 0, "mse": 0}}, "m")
    with pytest.raises(InputError, match="finetune.init"):
        start_model(model_spec({"kind": "enformer", "weights": "random"}, "e"), None)
    # a model that does not declare its trainable parts (LoadedModel.training_parts) is refused
    from hapexp.models.oracle import Oracle
    from hapexp.models.registry import LoadedModel

    oracle = LoadedModel(Oracle(), 2048, 128, 0, 2, ["t0", "t1"], kind="oracle")
    with pytest.raises(InputError, match=r"models\.o\.finetune.*kind oracle.*trainable parts"):
        Trainer(model_spec({"kind": "oracle", "window": 2048, "weights": "o.pt"}, "o"), resolve({}), oracle)


def _run(d, out, stop_after=None, **kw):
    cfg = {"epochs": 2, "people_per_step": 5, "checkpoint_every": 2, "lr": 3e-3, "progress": False,
           "dropout": True, "patience": 5, **kw}  # fmt: skip
    spec = model_spec(TINY, "tiny")
    return run_finetune(indexes=[d / "idx.npz"], prepared=d / "expression.tsv", individuals=d / "ind.tsv",
                        genes=d / "genes_split.tsv", weights=out / "weights.pt", history=out / "history.tsv",
                        spec=spec, cfg=cfg, init_spec=None, checkpoint=out / "checkpoint.pt",
                        stop_after=stop_after)  # fmt: skip


def test_resume_after_a_kill_is_bit_exact(cohort, tmp_path, torch_one_thread):
    """Killed after 3 steps (last checkpoint: step 2), resumed: the same weights as one run."""
    d = cohort[0]
    full = _run(d, tmp_path / "a")
    assert not full["stopped"] and len(full["history"]) == 2
    first = _run(d, tmp_path / "b", stop_after=3)
    assert first["stopped"] and first["step"] == 3 and not (tmp_path / "b/weights.pt").exists()
    _run(d, tmp_path / "b")
    a = torch.load(tmp_path / "a/weights.pt", weights_only=True)
    b = torch.load(tmp_path / "b/weights.pt", weights_only=True)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # byte for byte too: torch.save's zip is not named after the random temporary file
    assert (tmp_path / "a/weights.pt").read_bytes() == (tmp_path / "b/weights.pt").read_bytes()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a/history.tsv", sep="\t"),
                                  pd.read_csv(tmp_path / "b/history.tsv", sep="\t"))  # fmt: skip
    # training changed the weights, and they load as a registry model: predict runs them
    init = start_model(model_spec(TINY, "tiny"), None).module.state_dict()
    assert any(not torch.equal(a[k], init[k]) for k in a if a[k].is_floating_point())
    trained = Predictor({**TINY, "weights": str(tmp_path / "a/weights.pt")}, name="tiny_ft")
    assert all(torch.equal(v, a[k]) for k, v in trained.model.module.state_dict().items())
    with pytest.raises(InputError, match="rule finetune"):
        Predictor({**TINY, "weights": str(tmp_path / "missing.pt")}, name="tiny_ft")


def test_trainable_parts_checkpointing_and_bf16(cohort, torch_one_thread):
    """head: only the output head moves; gradient checkpointing: the same gradients; bf16 runs."""
    _, idx, expr, _ = cohort
    spec = model_spec(TINY, "tiny")
    src = GeneSource([idx], 2048, True)
    samples = list(map(str, idx.samples))
    gid = expr.index[0]
    z = torch.tensor(np.linspace(-1, 1, len(samples)), dtype=torch.float32)

    def grads(cfg):
        tr = Trainer(spec, resolve({**cfg, "progress": False}), start_model(spec, None))
        tr.module.eval()
        loss = tr.loss(person_values(tr.predictor, src.render(gid, samples), src.strand[gid]).float(), z)
        loss.backward()
        return tr, {n: p.grad for n, p in tr.module.named_parameters() if p.grad is not None}

    tr, head = grads({"trainable": "head"})
    assert head and all(n.startswith("_heads.") for n in head)
    assert tr.n_trained == sum(p.numel() for p in tr.module._heads.parameters())
    _, last = grads({"trainable": "last_blocks"})
    assert {n.split(".")[0] for n in last} == {"_heads", "final_pointwise", "transformer"}
    for part in ("all", "last_blocks"):
        _, plain = grads({"trainable": part})
        _, ckpt = grads({"trainable": part, "gradient_checkpointing": True})
        assert plain.keys() == ckpt.keys()
        for n in plain:
            torch.testing.assert_close(ckpt[n], plain[n], rtol=1e-5, atol=1e-7)
    tr, bf = grads({"precision": "bf16"})
    assert tr.predictor.effective_precision == "bf16"
    assert all(torch.isfinite(g).all() for g in bf.values())


def test_workflow_wires_a_finetuned_model_and_rejects_bad_blocks(tmp_path):
    """Dry run: predict of a model with a finetune block waits for rule finetune's weights,
    which need the splits; a finetune.init that is not another model is a config error."""
    import yaml

    from tests.conftest import demo_config
    from tests.workflow_utils import run_snakemake

    cfg = demo_config(small=True)
    cfg["models"]["tiny_ft"] = {**cfg["models"]["enformer_tiny"], "finetune": {"epochs": 1}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    target = "results/demo/predict/tiny_ft/000.parquet"
    out = run_snakemake(tmp_path, "--configfile", "config.yaml", "-n", "--quiet", "rules", "--", target)
    out = out.stdout + out.stderr
    rules = {line.split()[0] for line in out.splitlines() if line.strip() and line.split()[-1].isdigit()}
    assert {"finetune", "splits", "predict", "haplotypes"} <= rules
    cfg["models"]["tiny_ft"]["finetune"]["init"] = "tiny_ft"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    bad = run_snakemake(tmp_path, "--configfile", "config.yaml", "-n", "--", target, check=False)
    assert (
        bad.returncode != 0
        and "models.tiny_ft.finetune.init 'tiny_ft' is not another model" in bad.stdout + bad.stderr
    )


def test_lora_adapters_are_low_rank_merged_and_resume_exactly(cohort, tmp_path, torch_one_thread):
    """trainable: lora (peft): the adapted model starts as the model it adapts; after training
    the weights written (adapters merged) change the targeted projections by a matrix of rank
    ≤ lora.rank, the heads freely, nothing else; predict loading them reproduces the adapted
    model's read-out; a kill + resume gives the same weights bit for bit."""
    pytest.importorskip("peft")
    d, idx, _, _ = cohort
    spec = model_spec(TINY, "tiny")
    lora = {"rank": 2, "alpha": 4, "targets": ["to_q", "to_v"]}
    init = start_model(spec, None).module.state_dict()
    tr = Trainer(
        spec, resolve({"trainable": "lora", "lora": lora, "progress": False}), start_model(spec, None)
    )
    from hapexp.training.weights import plain_state_dict

    start = plain_state_dict(tr.module)
    assert start.keys() == init.keys() and all(torch.equal(start[k], init[k]) for k in init)
    assert tr.n_trained == sum(
        p.numel() for n, p in tr.module.named_parameters() if ".lora_" in n or "_heads" in n
    )

    full = _run(d, tmp_path / "a", trainable="lora", lora=lora)
    assert not full["stopped"]
    _run(d, tmp_path / "b", stop_after=3, trainable="lora", lora=lora)
    _run(d, tmp_path / "b", trainable="lora", lora=lora)
    a = torch.load(tmp_path / "a/weights.pt", weights_only=True)
    b = torch.load(tmp_path / "b/weights.pt", weights_only=True)
    assert a.keys() == init.keys() and all(torch.equal(a[k], b[k]) for k in a)
    moved = {k for k in a if not torch.equal(a[k], init[k])}
    targeted = {k for k in init if k.endswith((".to_q.weight", ".to_v.weight"))}
    assert moved - targeted <= {k for k in init if k.startswith("_heads.")}
    assert moved & targeted, "the adapters did not move"
    for k in moved & targeted:
        s = torch.linalg.svdvals((a[k] - init[k]).double())
        assert (s > 1e-6 * s[0]).sum() <= lora["rank"], k

    # the merged weights run in predict as the adapted model runs (forward through peft's layers)
    ck = torch.load(tmp_path / "a/checkpoint.pt", weights_only=False)
    adapted = Trainer(
        spec, resolve({"trainable": "lora", "lora": lora, "progress": False}), start_model(spec, None)
    )
    adapted.module.load_state_dict(ck["model"])
    adapted.module.eval()
    torch.save(plain_state_dict(adapted.module), tmp_path / "m.pt")
    merged = Predictor({**TINY, "weights": str(tmp_path / "m.pt")}, name="m")
    src = GeneSource([idx], 2048, True)
    samples = list(map(str, idx.samples))
    with torch.no_grad():
        for gid in list(src.strand)[:3]:
            hap = src.render(gid, samples)
            x = person_values(adapted.predictor, hap, src.strand[gid])
            y = person_values(merged, hap, src.strand[gid])
            torch.testing.assert_close(y, x, rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="match no Linear"):
        Trainer(spec, resolve({"trainable": "lora", "lora": {"targets": ["nope"]}}), start_model(spec, None))


def test_a_checkpoint_resumes_only_on_the_same_training_targets(cohort, tmp_path, caplog, torch_one_thread):
    """The checkpoint's digest covers the expression fine-tuning trains and stops early on
    (training genes × training and validation people): a change of the test people's expression
    resumes, a change of one training target (e.g. another preparation) starts over."""
    import logging
    import shutil

    from hapexp.training.splits import read_splits

    d = cohort[0]
    people, genes = read_splits(d / "ind.tsv", d / "genes_split.tsv")
    expr = pd.read_csv(d / "expression.tsv", sep="\t", index_col=0)
    work = tmp_path / "cohort"
    work.mkdir()
    for name in ("idx.npz", "ind.tsv", "genes_split.tsv"):
        shutil.copy(d / name, work / name)
    expr.to_csv(work / "expression.tsv", sep="\t")
    _run(work, tmp_path / "a", stop_after=2)  # checkpoint_every 2: a checkpoint at step 2
    assert (tmp_path / "a/checkpoint.pt").exists()

    def resumes_with(changed: pd.DataFrame) -> bool:
        changed.to_csv(work / "expression.tsv", sep="\t")
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="hapexp.training.finetune"):
            _run(work, tmp_path / "a", stop_after=1)
        assert ("resuming from" in caplog.text) != ("starting over" in caplog.text), caplog.text
        return "resuming from" in caplog.text

    test_changed = expr.copy()
    test_changed[people["test"]] *= 3.0
    assert resumes_with(test_changed)
    train_changed = expr.copy()
    gene = [g for g in genes["train"] if g in expr.index][0]
    train_changed.loc[gene, people["train"][0]] += 1.0
    assert not resumes_with(train_changed)
