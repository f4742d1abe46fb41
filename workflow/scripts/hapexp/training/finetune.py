"""Fine-tuning a registry model on personal genomes (rule `finetune`).

The model is trained on the training people's haplotype windows, rendered on the
fly from the haplotype indexes (`HaplotypeIndex.gene_haplotypes` with the step's
people: no sequence is written to disk), against their prepared expression of the
training genes (hapexp.training.splits; `hapexp.training.data`) — the split-aware
preparation (rule prepare_split_expression: transform, PCs and covariates fitted on the
training people), so no target depends on a validation or test person's expression. The value trained is the
value `predict` reports: the same `Predictor` read-out gathers the same central bins of
the same tracks (antisense pair tracks), then bin aggregation, the optional log, the
mean over tracks and the haplotype aggregation (hapexp.training.readout) — so the
weights written are a model like any other, loaded by kind + `weights`.

One step = one training gene × `people_per_step` training people (both haplotypes of
each), so that the cross-individual loss sees people of the same gene. Losses
(weights in `loss`):

- `pairwise` (default 1): mean over pairs (i, j) of people of the step's gene of
  ((a p_i - a p_j) - (z_i - z_j))², z the expression standardized per gene over the
  training people. It only sees differences between people of one gene, which is
  what the cross-individual verdict measures (Rastogi et al. 2026 train on pairs of
  people), and it needs no per-gene level: a Softplus output (≥ 0) cannot reach
  the negative z of a standardized gene, and the gene's mean is not what we judge.
  (Over all pairs it equals 2n × the within-gene centred MSE.)
- `mse` (default 0): MSE of a p + b against z: the literature's per-gene-standardized
  MSE, made reachable by the calibration.
  a = exp(·) > 0 and b are one scalar pair learned alongside the model, not part of it
  (`predict` does not need them: r is invariant to them); a starts at 1 / the median
  spread of the untrained predictions across people (`Trainer.init_scale`).

What is trained (`trainable`): all weights, the last transformer blocks, LoRA adapters
(peft, merged into the weights written) or the output head; the head is trained in all.
The model says which parameters those are (`LoadedModel.training_parts`; models without
them cannot be fine-tuned); hapexp.training.weights freezes the rest and writes the weights.

Deterministic: the order of genes and people of epoch e comes from
numpy's generator seeded with (seed, e); dropout from torch's generator, saved in
every checkpoint with the model, the optimizer and the position (epoch, step): a
job killed at any point resumes from its last checkpoint and ends with the same
weights, bit for bit on CPU, as a run that was never killed.
BatchNorm layers keep their running statistics (eval mode) during training: a step
holds one gene's haplotypes, whose batch statistics differ from the whole cohort's,
and frozen statistics keep the trained read-out the function `predict` runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hapexp.config.schema import defaults, with_defaults
from hapexp.errors import InputError
from hapexp.stats import pearson
from hapexp.torch_files import write_torch
from hapexp.training.data import GeneSource, epoch_steps, standardize
from hapexp.training.readout import person_values
from hapexp.training.weights import checkpoint_blocks, plain_state_dict, set_trainable, train_mode

log = logging.getLogger(__name__)

TRAINABLE = ("all", "last_blocks", "lora", "head")
# Stream of the seeded order in which several tissues' steps are interleaved (tissue k's
# own steps use stream k: hapexp.training.data.epoch_steps).
INTERLEAVE_STREAM = 2**31


def resolve(cfg: dict | None, name: str = "model") -> dict:
    """The finetune block of a model with every default (the schema's: models.*.finetune)
    filled in, validated."""
    out = with_defaults("models.*.finetune", cfg)
    lora_keys = set(defaults("models.*.finetune")["lora"])

    def bad(problem, fix):
        return InputError("config", problem, fix, where=f"models.{name}.finetune")

    if out["trainable"] not in TRAINABLE:
        raise bad(f"trainable={out['trainable']!r}", f"use one of {TRAINABLE}")
    lora = out["lora"]
    if set(lora) - lora_keys:
        raise bad(f"lora keys {sorted(set(lora) - lora_keys)}", f"use {sorted(lora_keys)}")
    if int(lora["rank"]) < 1 or float(lora["alpha"]) <= 0 or not 0 <= float(lora["dropout"]) < 1:
        raise bad(f"lora={lora}", "rank >= 1, alpha > 0, 0 <= dropout < 1")
    if not lora["targets"] or not all(isinstance(t, str) for t in lora["targets"]):
        raise bad(
            f"lora.targets={lora['targets']!r}",
            "name Linear layers of the transformer blocks, e.g. [to_q, to_v]",
        )
    if out["precision"] not in ("fp32", "bf16"):
        raise bad(f"precision={out['precision']!r}", "use fp32 or bf16")
    unknown = set(out["loss"]) - {"pairwise", "mse"}
    if unknown or all(float(v) == 0 for v in out["loss"].values()) or min(out["loss"].values()) < 0:
        raise bad(f"loss={out['loss']}", "give non-negative weights for pairwise and/or mse, not all 0")
    if int(out["people_per_step"]) < 2:
        raise bad("people_per_step < 2", "the pairwise loss needs at least 2 people per step")
    return out


def pairwise_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean over ordered pairs (i ≠ j) of ((p_i - p_j) - (z_i - z_j))² / 2."""
    d = (p - z)[:, None] - (p - z)[None, :]
    n = p.shape[0]
    return (d**2).sum() / (2 * n * (n - 1))


def config_digest(spec: dict, cfg: dict, people: dict, genes: dict, targets: str | None = None) -> str:
    """What a checkpoint must agree with to be resumed (not the bookkeeping keys); `targets`:
    `targets_digest` of the expression trained on (None: not part of the digest, as before
    the split-aware preparation — a checkpoint trained on other targets is then resumed)."""
    keep = {k: v for k, v in cfg.items() if k not in ("progress", "checkpoint_every", "device")}
    parts = [{k: v for k, v in spec.items() if not k.startswith("_")}, keep, people, genes]
    blob = json.dumps(parts + ([targets] if targets is not None else []), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def targets_digest(expr: pd.DataFrame, people: dict, genes: dict) -> str:
    """sha256 of the expression fine-tuning reads (training genes × training and validation
    people, float64 bytes): a checkpoint trained on other targets (e.g. another expression
    preparation) is not resumed."""
    x = expr.loc[list(genes["train"]), list(people["train"]) + list(people["validation"])]
    return hashlib.sha256(np.ascontiguousarray(x.to_numpy(np.float64)).tobytes()).hexdigest()[:16]


def validation_r(
    predictor, source: GeneSource, expr: pd.DataFrame, genes: list[str], people: list[str], tracks=None
) -> float:
    """Mean over genes of Pearson r between predicted and prepared expression of `people`
    (`tracks`: one tissue's positions among the predictor's tracks; None: all)."""
    rs = []
    with torch.no_grad():
        for g in genes:
            gh = source.render(g, people)
            p = person_values(predictor, gh, source.strand[g], tracks).double().cpu().numpy()
            y = expr.loc[g, people].to_numpy(float)
            if p.std() > 0 and y.std() > 0:
                rs.append(pearson(p, y))
            else:
                rs.append(0.0)  # a constant prediction explains nothing
    return float(np.mean(rs)) if rs else float("nan")


class Trainer:
    """The training loop of one model: checkpoints, exact resume, early stopping."""

    def __init__(self, spec: dict, cfg: dict, model):
        from hapexp.engine.device import resolve_device
        from hapexp.engine.predictor import Predictor

        self.cfg = cfg
        device = resolve_device(cfg["device"])
        spec = {**spec, "device": device.type, "precision": "fp32", "compile": False, "prefetch": 0}
        parts = model.training_parts()
        if parts is None:
            raise InputError(
                "config",
                f"models of kind {spec['kind']} do not say which of their parameters fine-tuning trains",
                "fine-tune a model whose architecture declares its trainable parts (config/README.md, finetune)",
                where=f"models.{spec.get('name')}.finetune",
            )
        if spec.get("readout") == "exons" or spec.get("rc_average"):
            raise InputError(
                "config",
                "fine-tuning reads the TSS bins without RC averaging",
                "set readout: tss and rc_average: false on the fine-tuned model",
                where=f"models.{spec.get('name')}",
            )
        self.predictor = Predictor(spec, model=model)
        self.module = self.predictor.model.module
        if cfg["precision"] == "bf16":
            self.predictor.set_precision("bf16")
        if cfg["gradient_checkpointing"]:
            checkpoint_blocks(parts.blocks())
        torch.manual_seed(int(cfg["seed"]))
        self.n_trained = set_trainable(self.module, parts, cfg["trainable"], cfg["last_blocks"], cfg["lora"])
        # The mse loss's calibration (a = exp(calib[0]) > 0, b = calib[1]): not part of the model.
        self.calib = torch.zeros(2, device=device, requires_grad=True)
        params = [p for p in self.module.parameters() if p.requires_grad] + [self.calib]
        self.opt = torch.optim.AdamW(params, lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"]))

    def loss(self, p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        w = self.cfg["loss"]
        total = p.new_zeros(())
        scale = torch.exp(self.calib[0])
        if float(w["pairwise"]):
            total = total + float(w["pairwise"]) * pairwise_loss(scale * p, z)
        if float(w["mse"]):
            total = total + float(w["mse"]) * ((scale * p + self.calib[1] - z) ** 2).mean()
        return total

    def init_scale(self, source, steps: list, tracks=None) -> float:
        """Start the calibration scale at 1 / (median spread of the predictions across people)
        over the first steps: a random model's differences between people are a few percent
        of its output, z's are 1; without it the model would have to grow its output
        (or the scale to creep up) before any loss term sees the people's differences."""
        sds = []
        self.module.eval()
        with torch.no_grad():
            for k, gid, ppl in steps[:8]:
                gh = source.render(gid, ppl)
                sds.append(float(person_values(self.predictor, gh, source.strand[gid], tracks[k]).std()))
        sd = float(np.median(sds)) if sds else 0.0
        a = 1.0 / sd if np.isfinite(sd) and sd > 0 else 1.0
        with torch.no_grad():
            self.calib[0] = float(np.log(a))
        return a

    def steps(self, train_genes: list[list[str]], peoples: list[dict], epoch: int) -> list:
        """The (tissue k, gene, people) steps of one epoch: one tissue's are epoch_steps'; with
        several, each tissue's (seeded by (seed, epoch, k)) shuffled together (seeded by
        (seed, epoch)) — deterministic, so a resumed job replays them."""
        per, seed = int(self.cfg["people_per_step"]), self.cfg["seed"]
        if len(train_genes) == 1:
            return [(0, g, p) for g, p in epoch_steps(train_genes[0], peoples[0]["train"], per, seed, epoch)]
        steps = [
            (k, g, p)
            for k, (genes, people) in enumerate(zip(train_genes, peoples, strict=True))
            for g, p in epoch_steps(genes, people["train"], per, seed, epoch, stream=k)
        ]
        order = np.random.default_rng([int(seed), int(epoch), INTERLEAVE_STREAM]).permutation(len(steps))
        return [steps[i] for i in order]

    def state(self, pos: dict) -> dict:
        return {
            "model": self.module.state_dict(),
            "optimizer": self.opt.state_dict(),
            "calib": self.calib.detach().clone(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.predictor.device.type == "cuda" else None,
            **pos,
        }

    def fit(self, source, expr, people: dict, genes: dict, checkpoint, digest: str, stop_after=None,
            tissues: dict | None = None) -> dict:  # fmt: skip
        """Train; returns the best state dict and the history. `stop_after` (tests): return
        after that many steps of this call, as if the job had been killed there. `tissues`
        (training on several tissues of a cohort, one track selection each): tissue →
        (expression, people) — each tissue's steps train the mean of its tracks
        (`self.predictor.track_groups`) against its own expression, on its own training
        people; `expr` and `people` are then unused."""
        cfg = self.cfg
        if tissues is None:
            tissues = {None: (expr, people)}
        tracks = [None if t is None else self.predictor.track_groups[t] for t in tissues]
        zs, train_genes, peoples = [], [], []
        for t, (e, p) in tissues.items():
            zs.append(standardize(e, p["train"]))
            train_genes.append([g for g in genes["train"] if g in zs[-1].index])
            peoples.append(p)
            if not train_genes[-1]:
                where = "" if t is None else f" of tissue {t}"
                raise InputError("splits", f"no training gene{where} has expression and varies", "check the gene split")
        pos = {"epoch": 0, "step": 0, "best_r": -np.inf, "best_model": None, "bad_epochs": 0, "history": []}
        ck = Path(checkpoint)
        resumed = False
        if ck.exists():
            st = torch.load(ck, map_location=self.predictor.device, weights_only=False)
            if st.get("digest") != digest:
                log.warning("checkpoint %s is from another config or split: starting over", ck)
            else:
                self.module.load_state_dict(st["model"])
                self.opt.load_state_dict(st["optimizer"])
                with torch.no_grad():
                    self.calib.copy_(st["calib"])
                torch.set_rng_state(st["torch_rng"])
                if st.get("cuda_rng") is not None and self.predictor.device.type == "cuda":
                    torch.cuda.set_rng_state_all(st["cuda_rng"])  # dropout on the GPU
                pos = {k: st[k] for k in pos}
                resumed = True
                log.info("resuming from %s: epoch %d, step %d", ck, pos["epoch"], pos["step"])
        if not resumed:
            first = self.steps(train_genes, peoples, 0)
            log.info("calibration scale starts at %.4g", self.init_scale(source, first, tracks))
        if not all(p["validation"] for p in peoples):
            log.warning(
                "no validation people (splits.validation_fraction 0): early stopping watches the training people"
            )
        bar = None
        done_here = 0
        while pos["epoch"] < int(cfg["epochs"]) and pos["bad_epochs"] < int(cfg["patience"]):
            steps = self.steps(train_genes, peoples, pos["epoch"])
            if cfg["progress"] and bar is None:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(steps) * int(cfg["epochs"]), initial=pos["epoch"] * len(steps) + pos["step"],
                           desc="finetune", unit="step", file=sys.stderr, mininterval=1 if sys.stderr.isatty() else 30)  # fmt: skip
            t0, n_ex = time.perf_counter(), 0
            while pos["step"] < len(steps):
                k, gid, ppl = steps[pos["step"]]
                train_mode(self.module, bool(cfg["dropout"]))
                self.opt.zero_grad(set_to_none=True)
                p = person_values(self.predictor, source.render(gid, ppl), source.strand[gid], tracks[k])
                target = torch.as_tensor(zs[k].loc[gid, ppl].to_numpy(np.float32), device=p.device)
                loss = self.loss(p.float(), target)
                loss.backward()
                self.opt.step()
                pos["step"] += 1
                n_ex += 2 * len(ppl)
                done_here += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(
                        loss=f"{loss.item():.4f}",
                        ex_per_s=f"{n_ex / (time.perf_counter() - t0):.1f}",
                        refresh=False,
                    )
                if pos["step"] % int(cfg["checkpoint_every"]) == 0 and pos["step"] < len(steps):
                    write_torch({**self.state(pos), "digest": digest}, ck)
                if stop_after is not None and done_here >= stop_after:
                    return {"stopped": True, **pos}
            self.module.eval()
            r = float(np.mean([  # over tissues (one: as it is)
                validation_r(self.predictor, source, e, g, p["validation"] or p["train"], tr)
                for (e, _), g, p, tr in zip(tissues.values(), train_genes, peoples, tracks, strict=True)
            ]))  # fmt: skip
            pos["history"].append({"epoch": pos["epoch"], "validation_r": r, "loss": float(loss.item())})
            log.info("epoch %d: last loss %.4f, validation mean r %.4f", pos["epoch"], loss.item(), r)
            if r > pos["best_r"]:
                pos["best_r"], pos["bad_epochs"] = r, 0
                pos["best_model"] = plain_state_dict(self.module)
            else:
                pos["bad_epochs"] += 1
            pos["epoch"] += 1
            pos["step"] = 0
            write_torch({**self.state(pos), "digest": digest}, ck)
        if bar is not None:
            bar.close()
        self.module.eval()
        return {"stopped": False, **pos}


def start_model(spec: dict, init_spec: dict | None):
    """The registry model that starts the training: `finetune.init`'s, or without one this
    block's own seeded random initialisation (kinds that have one: `Kind.self_initialised`)."""
    from hapexp.models.registry import load_model
    from hapexp.models.spec import KINDS

    if init_spec is None:
        if not KINDS[spec["kind"]].self_initialised:
            raise InputError(
                "config",
                f"a fine-tuned {spec['kind']} model needs the model it starts from",
                "set finetune.init to a registry model of the same kind, e.g. one with the published weights",
                where=f"models.{spec.get('name')}.finetune.init",
            )
        return load_model({**spec, "weights": None}, "cpu")
    for key in ("kind", "hparams", "window"):
        if init_spec.get(key) != spec.get(key):
            raise InputError(
                "config",
                f"finetune.init model {init_spec.get('name')!r} has {key} {init_spec.get(key)!r}, "
                f"the fine-tuned model {spec.get(key)!r}",
                "start from a model of the same architecture and window",
                where=f"models.{spec.get('name')}.finetune.init",
            )
    return load_model(init_spec, "cpu")


def run_finetune_tissues(indexes, prepared, individuals, genes, weights, history, spec: dict, cfg: dict,
                         init_spec: dict | None, checkpoint, tissues: list[str], threads: int | None = None):  # fmt: skip
    """Rule `finetune_tissues`: `run_finetune` on every tissue of a cohort (`prepared`: one
    split-aware expression per name in `tissues`; each tissue trains its own tracks)."""
    return run_finetune(indexes, prepared, individuals, genes, weights, history, spec, cfg, init_spec,
                        checkpoint, threads=threads, tissues=tissues)  # fmt: skip


def run_finetune(
    indexes, prepared, individuals, genes, weights, history, spec: dict, cfg: dict, init_spec: dict | None,
    checkpoint, stop_after=None, threads: int | None = None, tissues=None,
):  # fmt: skip
    """Rule `finetune`: train on the haplotype `indexes` of the chunks, the `prepared`
    expression and the splits (`individuals`, `genes`), then write the best `weights` (a
    state dict) and the `history`. `threads`: the job's CPU threads (None: torch's setting
    as it is). `tissues` (rule finetune_tissues): several tissues' names, `prepared` one
    file each; each tissue trains its own tracks (the spec's `track_groups`) on its people."""
    from hapexp.io import read_matrix, write_tsv
    from hapexp.sequences.index import HaplotypeIndex
    from hapexp.training.splits import read_splits

    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))

    cfg = resolve(cfg, spec.get("name", "model"))
    split, gene_split = read_splits(individuals, genes)
    names = [None] if tissues is None else list(tissues)
    paths = [prepared] if tissues is None else list(prepared)
    per_tissue = {}
    for t, path in zip(names, paths, strict=True):
        e = read_matrix(path)
        # one tissue of several: the cohort's split, restricted to the people this tissue has
        per_tissue[t] = (e, {k: [s for s in v if s in e.columns] for k, v in split.items()})
    expr, people = per_tissue[names[0]]
    source = GeneSource([HaplotypeIndex.load(p) for p in indexes], spec["window"], spec["rc_minus"])
    everyone = dict.fromkeys(s for _, p in per_tissue.values() for s in p["train"] + p["validation"])
    missing = [s for s in everyone if s not in source.samples]
    if missing:
        raise InputError(individuals, f"{len(missing)} people are not in the haplotype indexes (e.g. {missing[0]!r})",
                         "rerun rule splits for this cohort")  # fmt: skip
    in_expr = set().union(*(e.index for e, _ in per_tissue.values()))
    gene_split = {k: [g for g in v if g in source.index_of and g in in_expr] for k, v in gene_split.items()}
    trainer = Trainer(spec, cfg, start_model(spec, init_spec))
    log.info("fine-tuning %s: %d trained parameters (%s), %d training genes, %d/%d training/validation people",
             spec.get("name"), trainer.n_trained, cfg["trainable"], len(gene_split["train"]), len(people["train"]),
             len(people["validation"]))  # fmt: skip
    if tissues is None:
        digest = config_digest(spec, cfg, people, gene_split, targets_digest(expr, people, gene_split))
        out = trainer.fit(source, expr, people, gene_split, checkpoint, digest, stop_after=stop_after)
    else:
        targets = ";".join(
            f"{t}:{targets_digest(e, p, {'train': [g for g in gene_split['train'] if g in e.index]})}"
            for t, (e, p) in per_tissue.items()
        )
        digest = config_digest(spec, cfg, {t: p for t, (_, p) in per_tissue.items()}, gene_split, targets)
        out = trainer.fit(source, None, None, gene_split, checkpoint, digest, stop_after=stop_after,
                          tissues=per_tissue)  # fmt: skip
    if out["stopped"]:
        return out
    best = out["best_model"] if out["best_model"] is not None else plain_state_dict(trainer.module)
    write_torch(best, weights)
    write_tsv(pd.DataFrame(out["history"], columns=["epoch", "validation_r", "loss"]), history)
    log.info("best validation r %.4f; weights in %s", out["best_r"], weights)
    return out
