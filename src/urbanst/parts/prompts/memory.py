"""Knowledge-guided spatio-temporal prompts (UniST): four priors queried against memory pools.

Each prior turns the data into one query vector per token and retrieves a prompt from a memory pool of
``memory_slots`` learned key/value slots: ``q = tanh(W x)``, ``prompt = softmax(q K^T) V``. Spatial priors
share one pool, temporal priors another (as in the released code). With ``residual`` the prompt is the
read-out plus its query, so the exact values of the same slot a day and a week earlier reach the decoder.

* spatial closeness: each unit's history and its neighbours'. Grids: Conv2d over the history frames taken as
  channels (``history x attribute slots``) with kernels 1, 3 and 5, averaged. Regions: the same with graph
  hops 0, 1 and 2 of the row-normalised adjacency (one Linear per hop), averaged.
* spatial hierarchy: coarser levels of the city. Grids: the history frames average-pooled by 2 and by 4,
  embedded (1x1 conv), brought back to cell resolution and averaged. Regions: diffusion over 4 and 8 hops
  (coarser neighbourhoods), one Linear each, averaged.
* temporal closeness: a 1-layer transformer over each spatial patch's history one step at a time (each step's
  values embedded, plus the encoder's output for its token, its time features and position:
  :meth:`~urbanst.parts.encoders.patches.PatchTokens.steps`), mean over the steps. The released code runs it
  over each patch's sequence of 2-step tokens (the decoder's input); with coarser tokens (12 steps per region
  token: one token of history) that sequence has nothing to attend over, so ours reads steps.
* temporal period: a 1-layer transformer over each future token's values at the same slot on previous days /
  weeks (embedded by the backbone's own patch embedding, plus a learned embedding of the lag's rank so 1 day
  and 1 week ago differ; the released code's period transformer has no such position), mean over the lags.

Spatial prompts are computed per cell, averaged over each token's patch, and repeated over the future time
patches; the sum of the four prompts is meant for the decoder tokens of the future positions only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from urbanst.nn.attention import Block, linear
from urbanst.parts.encoders.patches import Layout
from urbanst.parts.encoders.patches_geometry import RegionGraph

PRIORS = ("spatial_closeness", "spatial_hierarchy", "temporal_closeness", "temporal_period")
MAX_LAGS = 8


class MemoryPool(nn.Module):
    def __init__(self, slots: int, dim: int):
        super().__init__()
        self.query = nn.Linear(dim, dim)
        self.keys = nn.Parameter(torch.empty(slots, dim))
        self.values = nn.Parameter(torch.empty(slots, dim))
        self.reset_memory()
        nn.init.xavier_uniform_(self.query.weight)
        nn.init.zeros_(self.query.bias)

    def reset_memory(self) -> None:
        nn.init.trunc_normal_(self.keys, std=0.02)
        nn.init.trunc_normal_(self.values, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = torch.tanh(linear(x, self.query))
        return linear(torch.softmax(linear(q, self.keys), dim=-1), self.values.t())


class MemoryPrompts(nn.Module):
    """Prompts for the future tokens from the priors named in ``parts`` (see the module docstring), for a model
    that reads ``history`` steps of ``slots`` attribute slots."""

    def __init__(self, dim: int, history: int, slots: int, memory_slots: int, parts: list[str], heads: int = 4,
                 residual: bool = False):
        super().__init__()
        self.parts = list(parts)
        self.residual = residual
        self.history = history
        self.slots = slots
        inputs = history * slots
        self.spatial_memory = MemoryPool(memory_slots, dim)
        self.temporal_memory = MemoryPool(memory_slots, dim)
        if "spatial_closeness" in parts:
            self.close_conv = nn.ModuleList(nn.Conv2d(inputs, dim, k, padding=k // 2) for k in (1, 3, 5))
            self.close_hop = nn.ModuleList(nn.Linear(inputs, dim) for _ in range(3))  # hops 0, 1, 2
        if "spatial_hierarchy" in parts:
            self.level_conv = nn.ModuleList(nn.Conv2d(inputs, dim, 1) for _ in (2, 4))  # pooled by 2 and 4
            self.level_hop = nn.ModuleList(nn.Linear(inputs, dim) for _ in (4, 8))  # 4 and 8 hops
        if "temporal_closeness" in parts:
            self.closeness = Block(dim, heads, mlp_ratio=1.0)
        if "temporal_period" in parts:
            self.period = Block(dim, heads, mlp_ratio=1.0)
            # which lag a token comes from (1st, 2nd ... in DataSpec.lags order: e.g. 1d, 1w)
            self.lag_embed = nn.Parameter(torch.zeros(MAX_LAGS, dim))
            nn.init.trunc_normal_(self.lag_embed, std=0.02)

    @property
    def reads_period(self) -> bool:
        return "temporal_period" in self.parts

    @property
    def reads_steps(self) -> bool:
        return "temporal_closeness" in self.parts

    def reset_memory(self) -> None:
        """Fresh keys and values in both pools (truncated normal)."""
        self.spatial_memory.reset_memory()
        self.temporal_memory.reset_memory()

    # -- inputs -----------------------------------------------------------------------
    def _frames(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H, N, C]`` history -> ``[B, N, history * slots]`` (the last ``history`` steps, attribute slots padded)."""
        B, H, N, C = x.shape
        if H > self.history:
            x = x[:, H - self.history :]
        x = F.pad(x, (0, self.slots - C, 0, 0, max(self.history - H, 0), 0))
        return x.permute(0, 2, 1, 3).reshape(B, N, -1)

    def _retrieve(self, pool: MemoryPool, query: torch.Tensor) -> torch.Tensor:
        out = pool(query)
        return out + query if self.residual else out

    # -- priors -----------------------------------------------------------------------
    def _spatial_grid(self, frames: torch.Tensor, layout: Layout) -> dict[str, torch.Tensor]:
        B, N, F_ = frames.shape
        img = frames.transpose(1, 2).reshape(B, F_, layout.Hg, layout.Wg)
        maps = {}
        if "spatial_closeness" in self.parts:
            # the mean of the 1x1, 3x3 and 5x5 convolutions is one 5x5 convolution with the mean kernel
            weight = sum(F.pad(conv.weight, [(5 - conv.kernel_size[0]) // 2] * 4) for conv in self.close_conv) / 3
            bias = sum(conv.bias for conv in self.close_conv) / 3
            maps["spatial_closeness"] = F.conv2d(img, weight, bias, padding=2)
        if "spatial_hierarchy" in self.parts:
            levels = []
            for factor, conv in zip((2, 4), self.level_conv):
                coarse = F.avg_pool2d(img, factor, ceil_mode=True, count_include_pad=False)
                levels.append(F.interpolate(conv(coarse), scale_factor=factor, mode="nearest")[..., : layout.Hg, : layout.Wg])
            maps["spatial_hierarchy"] = sum(levels) / len(levels)
        pad = (0, layout.Wp * layout.pw - layout.Wg, 0, layout.Hp * layout.ph - layout.Hg)
        cells = None
        if any(pad):  # patches at the padded edge average over their real cells only
            ones = torch.ones(1, 1, layout.Hg, layout.Wg, device=img.device, dtype=img.dtype)
            cells = F.avg_pool2d(F.pad(ones, pad), (layout.ph, layout.pw))
        out = {}
        for name, m in maps.items():  # [B, D, Hg, Wg] -> mean over each patch -> [B, S, D]
            pooled = F.avg_pool2d(F.pad(m, pad), (layout.ph, layout.pw))
            if cells is not None:
                pooled = pooled / cells
            out[name] = pooled.flatten(2).transpose(1, 2)
        return out

    def _spatial_region(self, frames: torch.Tensor, op: torch.Tensor) -> dict[str, torch.Tensor]:
        B, N, F_ = frames.shape
        h = frames.transpose(0, 1).reshape(N, B * F_)  # units first, so one matmul propagates every sample
        hops = {0: h}
        needed = (2 if "spatial_closeness" in self.parts else 0, 8 if "spatial_hierarchy" in self.parts else 0)
        for k in range(1, max(needed) + 1):
            h = torch.sparse.mm(op, h) if op.is_sparse else op @ h
            hops[k] = h

        def hop(k: int) -> torch.Tensor:
            return hops[k].reshape(N, B, F_).transpose(0, 1)

        out = {}
        if "spatial_closeness" in self.parts:
            out["spatial_closeness"] = sum(linear(hop(k), lin) for k, lin in zip((0, 1, 2), self.close_hop)) / 3
        if "spatial_hierarchy" in self.parts:
            out["spatial_hierarchy"] = sum(linear(hop(k), lin) for k, lin in zip((4, 8), self.level_hop)) / 2
        return out

    def forward(self, batch: dict, layout: Layout, recent: torch.Tensor | None, period_tokens: torch.Tensor | None,
                graph: RegionGraph | None = None) -> torch.Tensor | None:
        """Prompts ``[B, Tf * S, D]`` for the future tokens (None if no prior applies).

        batch         the history ``x`` and ``input_mask``
        recent        [B, H, S, D] the history step by step (temporal closeness)
        period_tokens [B, K, Tf * S, D] embedded values at the same slot on earlier days (temporal period)
        graph         the units' graph, for region data
        """
        x = batch["x"]
        B = x.shape[0]
        frames = self._frames(torch.where(batch["input_mask"], x, torch.zeros((), dtype=x.dtype)))
        if layout.grid:
            spatial = self._spatial_grid(frames, layout)
        else:
            spatial = self._spatial_region(frames, graph.operator(self.spatial_memory.keys.device))
        per_cell = [self._retrieve(self.spatial_memory, v) for v in spatial.values()]  # each [B, S, D]
        if "temporal_closeness" in self.parts and recent is not None:
            _, H, S, D = recent.shape
            seq = self.closeness(recent.transpose(1, 2).reshape(B * S, H, D)).mean(1)
            per_cell.append(self._retrieve(self.temporal_memory, seq.reshape(B, S, -1)))
        prompt = None
        if per_cell:
            prompt = sum(per_cell)[:, None].expand(B, layout.Tf, layout.S, -1).reshape(B, layout.Tf * layout.S, -1)
        if "temporal_period" in self.parts and period_tokens is not None and period_tokens.shape[1] > 0:
            _, K, Lf, D = period_tokens.shape
            if K > MAX_LAGS:
                raise ValueError(f"the period prompt takes at most {MAX_LAGS} lags, got {K}")
            period_tokens = period_tokens + self.lag_embed[:K, None]
            seq = self.period(period_tokens.transpose(1, 2).reshape(B * Lf, K, D)).mean(1)
            p = self._retrieve(self.temporal_memory, seq.reshape(B, Lf, D))
            prompt = p if prompt is None else prompt + p
        return prompt
