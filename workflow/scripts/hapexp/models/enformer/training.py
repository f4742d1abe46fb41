"""What fine-tuning trains in an enformer-pytorch Enformer (hapexp.models.registry.TrainingParts).

The attention blocks are `transformer`'s; the output heads `_heads` (one per organism)
are trained whatever `trainable` says; `last_blocks` adds the last blocks and
`final_pointwise` (the layers between them and the heads). Enformer also registers the
same blocks under `_trunk`: the merged weights of LoRA are written under every name of
a layer (hapexp.training.weights.plain_state_dict). Its own checkpointing
(`use_checkpointing`, reentrant) gives no gradients to blocks whose input needs none
(trainable: last_blocks), so fine-tuning checkpoints `blocks()` itself, non-reentrant.
"""

from __future__ import annotations

from torch import nn


class EnformerTraining:
    def __init__(self, module: nn.Module):
        self.module = module

    def blocks(self) -> list[nn.Module]:
        return list(self.module.transformer)

    def trained(self, how: str, last_blocks: int) -> list[nn.Module]:
        parts = [self.module._heads]
        if how == "last_blocks":
            parts += [self.module.final_pointwise, *self.blocks()[-int(last_blocks) :]]
        return parts

    def lora_targets(self, names: list[str]) -> list[str]:
        return [rf"transformer\..*\.{t}" for t in names]
