"""Pre-norm transformer blocks that take prompt tokens as a prefix and drop them again on the way out."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class Attention(nn.Module):
    """Multi-head attention of ``queries [L, Q, d]`` over ``keys [L, K, d]`` (fused kernel, no [Q, K] matrix kept)."""

    def __init__(self, d_model: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        q = rearrange(self.q(queries), "l q (h e) -> l h q e", h=self.num_heads)
        k, v = rearrange(self.kv(keys), "l k (two h e) -> two l h k e", two=2, h=self.num_heads)
        return self.out(rearrange(F.scaled_dot_product_attention(q, k, v), "l h q e -> l q (h e)"))


class PromptBlock(nn.Module):
    """One transformer layer over sequences ``x [L, S, d]``, with optional prompt prefix ``[L, p, d]``.

    The prompts join the sequence as ordinary tokens (they attend and are attended to), and
    their outputs are dropped, so the next layer gets its own fresh prompts (prefix tuning).
    With ``anchors = M > 0`` attention goes through M learned anchor tokens (first the anchors
    read the sequence, then the sequence reads the anchors): O(S·M) instead of O(S²), for
    sequences over many spatial units.
    """

    def __init__(self, d_model: int, num_heads: int, ffn_ratio: int, dropout: float, anchors: int = 0):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = Attention(d_model, num_heads)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, ffn_ratio * d_model), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_ratio * d_model, d_model)
        )
        self.drop = nn.Dropout(dropout)
        if anchors:
            self.anchors = nn.Parameter(torch.randn(anchors, d_model) * 0.02)
            self.anchor_attn = Attention(d_model, num_heads)
            self.anchor_norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, prefix: torch.Tensor | None = None) -> torch.Tensor:
        p = 0 if prefix is None else prefix.shape[1]
        if p:
            x = torch.cat([prefix, x], 1)
        h = self.norm1(x)
        if hasattr(self, "anchors"):
            summary = self.anchor_attn(self.anchors.expand(h.shape[0], -1, -1), h)
            x = x + self.drop(self.attn(h, self.anchor_norm(summary)))
        else:
            x = x + self.drop(self.attn(h, h))
        x = x + self.drop(self.ffn(self.norm2(x)))
        return x[:, p:]
