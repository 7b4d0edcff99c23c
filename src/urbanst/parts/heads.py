"""Heads: hidden states to forecasts, reconstructions or event logits.

A head may be *anchored*: it predicts a correction to a forecast copied from the past (seasonal naive's,
persistence; see :mod:`urbanst.nn.anchors`), ``forecast = anchor + scale x correction``, and its output
layer starts at zero, so training starts from the anchor instead of from the mean. ``scale`` below 1
slows the correction down: Adam moves every weight by about the learning rate per step whatever the
gradient's size, so a wide head's correction moves by ~lr x sum|h| per step unscaled.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn


def start_at_zero(layer: nn.Linear) -> nn.Linear:
    """``layer`` with its weight and bias set to zero (an output that starts as nothing)."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class LinearHead(nn.Linear):
    """Each unit's state ``[B, N, D]`` -> ``[B, steps, N, C]`` by one linear layer (ST-LLM's 1x1 convolution):
    a forecast, or with ``steps = history`` a reconstruction of the inputs. ``anchored``: the layer starts at
    zero and ``forward`` adds ``scale x`` its output to the anchor it is given."""

    def __init__(self, width: int, steps: int, channels: int, anchored: bool = False, scale: float = 1.0):
        super().__init__(width, steps * channels)
        self.steps, self.anchored, self.scale = steps, anchored, scale
        if anchored:
            start_at_zero(self)

    def forward(self, hidden: torch.Tensor, anchor: torch.Tensor | None = None) -> torch.Tensor:
        out = rearrange(super().forward(hidden), "b n (p c) -> b p n c", p=self.steps)
        return out if anchor is None else anchor + self.scale * out


class TwoBranchHead(nn.Module):
    """UrbanGPT's head ``Y = W3 [ReLU(W1 H), ReLU(W2 Γ)]``: H the LM states at a unit's ST tokens ``[B, U, k x D]``,
    Γ the state at its prediction token ``[B, U, D]``; ``outputs`` numbers per step and channel ``[B, P, U, C,
    outputs]``. ``anchored``: W3 starts at zero and the anchor ``[B, P, U, C]`` is added to output 0."""

    def __init__(self, st_width: int, width: int, hidden: int, steps: int, channels: int, outputs: int = 1,
                 anchored: bool = False):
        super().__init__()
        self.steps, self.outputs, self.anchored = steps, outputs, anchored
        self.w1 = nn.Linear(st_width, hidden)
        self.w2 = nn.Linear(width, hidden)
        self.w3 = nn.Linear(2 * hidden, steps * channels * outputs)
        if anchored:
            start_at_zero(self.w3)

    def forward(self, h: torch.Tensor, g: torch.Tensor, anchor: torch.Tensor | None = None) -> torch.Tensor:
        out = self.w3(torch.cat([torch.relu(self.w1(h)), torch.relu(self.w2(g))], -1))
        out = rearrange(out, "b u (p c k) -> b p u c k", p=self.steps, k=self.outputs)
        if anchor is None:
            return out
        return torch.cat([out[..., :1] + anchor[..., None], out[..., 1:]], -1)
