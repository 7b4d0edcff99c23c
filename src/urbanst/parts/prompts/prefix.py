"""Prefix prompt tokens per attribute (PromptST): what prompt tuning trains while the backbone is frozen.

An attribute's prompts join the keys and values of every layer (:class:`urbanst.nn.attention.Block`'s
``prefix``) and leave again, so each layer reads its own: attribute-temporal tokens and one node-specific
token per unit before each unit's time sequence at each temporal layer, attribute-spatial tokens before the
sequence of units at each spatial layer. Each attribute also has its own forecast head.
"""

from __future__ import annotations

import torch
from torch import nn


class AttributePrompts(nn.Module):
    """Prompts and head of one attribute.

    * ``temporal [Lt, pt, d]``: attribute-temporal prompt tokens, prepended to every unit's time sequence at
      temporal layer ``l``;
    * ``node [N, d]``: node-specific prompt tokens, one per unit, prepended (after the attribute-temporal ones)
      to that unit's time sequence at every temporal layer;
    * ``spatial [Ls, ps, d]``: attribute-spatial prompt tokens, prepended to the sequence of units at spatial
      layer ``l``;
    * ``head``: the attribute's own forecast head (flattened token states -> horizon).
    """

    def __init__(self, num_units: int, d_model: int, temporal_layers: int, temporal_prompts: int,
                 spatial_layers: int, spatial_prompts: int, node_prompts: bool, head_in: int, horizon: int,
                 init_std: float):
        super().__init__()
        self.init_std = init_std
        self.temporal = nn.Parameter(torch.empty(temporal_layers, temporal_prompts, d_model))
        self.spatial = nn.Parameter(torch.empty(spatial_layers, spatial_prompts, d_model))
        self.node = nn.Parameter(torch.empty(num_units if node_prompts else 0, d_model))
        self.head = nn.Linear(head_in, horizon)
        self.reset()

    @torch.no_grad()
    def reset(self) -> None:
        """Fresh prompts (small normal draws) and a fresh head."""
        for prompt in (self.temporal, self.spatial, self.node):
            nn.init.normal_(prompt, std=self.init_std)
        self.head.reset_parameters()

    def temporal_prefix(self, layer: int) -> torch.Tensor:
        """``[N, pt + (1 if node prompts), d]``: the tokens prepended to each unit's time sequence."""
        num_units = self.node.shape[0]
        parts = []
        if self.temporal.shape[1]:
            parts.append(self.temporal[layer][None].expand(max(num_units, 1), -1, -1))
        if num_units:
            parts.append(self.node[:, None])
        if not parts:
            return self.temporal.new_zeros(max(num_units, 1), 0, self.temporal.shape[-1])
        return torch.cat(parts, 1)


def stacked_prefixes(prompts: list[AttributePrompts]) -> dict:
    """The prefixes of a group of attributes at each layer, as :class:`urbanst.nn.attention.SpaceTimeTransformer`
    reads them: ``temporal_prefix(layer)`` ``[G, N or 1, p, d]``, ``spatial_prefix(layer)`` ``[G, p, d]`` (None
    without spatial prompts)."""

    def temporal(layer: int) -> torch.Tensor:
        return torch.stack([p.temporal_prefix(layer) for p in prompts])

    def spatial(layer: int) -> torch.Tensor | None:
        return torch.stack([p.spatial[layer] for p in prompts]) if prompts[0].spatial.shape[1] else None

    return {"temporal_prefix": temporal, "spatial_prefix": spatial}
