"""Semantic prompts that describe a model's data sources in words, read through the backbone (urbanmind).

Two kinds of text describe the data:

* an instruction naming the city, the dataset, its sources, the step and the task, e.g.
  ``New York (Manhattan), nyc_bike: inflow, outflow, 24 steps a day. Forecast the next 12 steps.``,
  whose token embeddings go before the ST tokens in the backbone's sequence;
* one short text per source (channel), its attribute name (``inflow``), whose mean token embedding
  is the source's semantic embedding: a source of another dataset with the same name is recognised.

Only token ids are kept (as buffers that are not saved), and they are embedded by the backbone's own
token embeddings at each call, so the embeddings are always the backbone's current ones.
``set_context`` rewrites the texts for another dataset (zero-shot) without changing any weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from urbanst.prompts.text import text_table, token_ids


@dataclass(frozen=True)
class SourceContext:
    """What the prompts describe; built from a model config or a DataSpec (same field names)."""

    dataset: str
    city: str
    sources: tuple[str, ...]
    steps_per_day: int | None
    horizon: int

    @classmethod
    def of(cls, described) -> SourceContext:
        channels = described.num_channels
        names = list(described.attributes)[:channels]
        names += [f"channel {i}" for i in range(len(names), channels)]
        return cls(described.dataset, described.city, tuple(names), described.steps_per_day, described.horizon)

    def instruction(self) -> str:
        where = ", ".join(part for part in (self.city, self.dataset) if part)
        step = f", {self.steps_per_day} steps a day" if self.steps_per_day else ""
        return f"{where}: {', '.join(self.sources)}{step}. Forecast the next {self.horizon} steps."


class SourcePrompt(nn.Module):
    """Token ids of the instruction and of each source's name; ``embed(backbone)`` gives their embeddings."""

    def __init__(self, backbone, context: SourceContext):
        super().__init__()
        self.set_context(backbone, context)

    def set_context(self, backbone, context: SourceContext) -> None:
        self.context = context
        device = backbone.token_embeddings.weight.device
        instruction = torch.tensor(token_ids(backbone, context.instruction()) or [0], device=device)
        names, mask = text_table(backbone, list(context.sources), lambda ids: ids)
        self.register_buffer("instruction_ids", instruction, persistent=False)
        self.register_buffer("source_ids", names.to(device), persistent=False)
        self.register_buffer("source_mask", mask.to(device), persistent=False)

    def embed(self, backbone) -> tuple[torch.Tensor, torch.Tensor]:
        """``(instruction [L, D], sources [C, D])``: the instruction's token embeddings and each source's mean one."""
        names = backbone.embed_tokens(self.source_ids)
        weights = self.source_mask.to(names.dtype)[..., None]
        sources = (names * weights).sum(1) / weights.sum(1).clamp(min=1)
        return backbone.embed_tokens(self.instruction_ids), sources

    def text(self) -> str:
        return self.context.instruction()
