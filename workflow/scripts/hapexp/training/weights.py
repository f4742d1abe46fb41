"""The weights fine-tuning trains and writes.

Which parameters train comes from the model (`LoadedModel.training_parts`,
hapexp.models.registry.TrainingParts): its output head, attention blocks and the
modules LoRA adapts; this module freezes the rest, adds the adapters (peft),
checkpoints the blocks and writes the plain state dict (adapters merged) that
`predict` loads like any other.
"""

from __future__ import annotations

import re

import torch

from hapexp.errors import InputError


def set_trainable(module, parts, how: str, last_blocks: int = 1, lora: dict | None = None) -> int:
    """Freeze all but the parameters `how` trains (all | last_blocks | lora | head) of `module`,
    whose `parts` (TrainingParts) say which those are; returns how many are trained.
    `lora` (the finetune block's): adapters are added in place (`add_lora`) and trained
    with the head."""
    if how == "lora":
        add_lora(module, parts, lora)
    for p in module.parameters():
        p.requires_grad_(how == "all")
    if how != "all":
        for part in parts.trained(how, last_blocks):
            for p in part.parameters():
                p.requires_grad_(True)
        if how == "lora":
            for name, p in module.named_parameters():
                if ".lora_" in name:
                    p.requires_grad_(True)
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def add_lora(module, parts, lora: dict) -> None:
    """LoRA adapters (Hu et al. 2021) from peft, the field's implementation, on the named
    Linear layers of the attention blocks (`parts.lora_targets`): W x + (alpha / rank) B A x
    with B = 0 at the start, so the adapted model starts as the model it adapts. A starts
    from torch's generator (seeded by the trainer): deterministic."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError as e:
        raise InputError("config", f"trainable: lora needs the package peft ({e})",
                         "install requirements.txt (pip) or use envs/torch.yaml (conda)") from e  # fmt: skip
    targets = parts.lora_targets(lora["targets"])
    names = [n for n, m in module.named_modules() if isinstance(m, torch.nn.Linear)]
    if not any(re.fullmatch(t, n) for t in targets for n in names):
        raise InputError("config", f"lora.targets {lora['targets']} match no Linear layer of the transformer",
                         f"use names of Linear layers, e.g. {sorted({n.rsplit('.', 1)[-1] for n in names})}")  # fmt: skip
    config = LoraConfig(
        r=int(lora["rank"]),
        lora_alpha=float(lora["alpha"]),
        lora_dropout=float(lora["dropout"]),
        target_modules="|".join(f"(?:{t})" for t in targets),
        bias="none",
    )
    inject_adapter_in_model(config, module)


def plain_state_dict(module) -> dict:
    """The module's weights under the model's own keys: LoRA adapters merged into the
    layers they adapt (W + ΔW), so `predict` loads them like any state dict."""
    sd = {k: v.detach().clone() for k, v in module.state_dict().items()}
    if not any(".lora_" in k for k in sd):
        return sd
    from peft.tuners.lora import LoraLayer

    # every name of a layer: a model may register one block under two names (an alias)
    layers = [(n, m) for n, m in module.named_modules(remove_duplicate=False) if isinstance(m, LoraLayer)]
    delta = {id(m): m.get_delta_weight(m.active_adapters[0]).detach() for _, m in layers}
    deltas = {f"{name}.base_layer.weight": delta[id(m)] for name, m in layers}
    out = {}
    for k, v in sd.items():
        if ".lora_" in k:
            continue
        out[k.replace(".base_layer.", ".")] = v + deltas[k].to(v.dtype) if k in deltas else v
    return out


def checkpoint_blocks(blocks) -> None:
    """Recompute each attention block (`TrainingParts.blocks()`) in the backward pass
    (activations of long windows are not kept). Non-reentrant checkpointing: reentrant
    checkpointing gives no gradients to blocks whose input needs none (trainable:
    last_blocks). An instance-level forward: the module tree and the state dict are unchanged."""
    from torch.utils.checkpoint import checkpoint

    for block in blocks:
        if getattr(block, "_hapexp_checkpointed", False):
            continue
        inner = block.forward
        block.forward = lambda *a, _f=inner: checkpoint(_f, *a, use_reentrant=False)
        block._hapexp_checkpointed = True


def train_mode(module, dropout: bool) -> None:
    """Dropout on (when asked), BatchNorm statistics frozen (hapexp.training.finetune explains why)."""
    module.eval()
    if dropout:
        for m in module.modules():
            if isinstance(m, torch.nn.Dropout):
                m.train()
