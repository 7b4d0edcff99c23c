"""Every (unit, attribute) series of a window as its own token sequence (PromptST's encoder).

Tokens ``[B, C, N, S, d]`` of a series: one per ``patch_len`` history steps (``[values, observed]`` of the
patch embedded; the history is left-padded, as unobserved, to whole patches), and one *forecast token*: a
learned vector plus, with ``lags``, the values one day / week before each target step and their flags
embedded. Every token adds its position, the time of day and weekday of its patch's last step (the forecast
token: of the first target step), its unit's and its attribute's embedding; the attribute enters only
there, so one backbone serves every attribute.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from urbanst.errors import UrbanstError
from urbanst.nn.embeddings import TimeEmbedding, UnitEmbedding


class SeriesPatchTokens(nn.Module):
    def __init__(self, dim: int, history: int, horizon: int, num_units: int, num_channels: int, patch_len: int,
                 lags: int, steps_per_day: int | None):
        super().__init__()
        self.history, self.patch_len = history, patch_len
        self.num_patches = -(-history // patch_len)
        self.pad = self.num_patches * patch_len - history  # unobserved steps put before the history
        self.seq_len = self.num_patches + 1  # history tokens + the forecast token
        self.value_embed = nn.Linear(2 * patch_len, dim)  # [scaled values, observed?] of a patch
        self.forecast_embed = nn.Linear(2 * lags * horizon, dim) if lags else None
        self.forecast_token = nn.Parameter(torch.zeros(dim))
        self.pos_embed = nn.Parameter(torch.randn(self.seq_len, dim) * 0.02)
        self.attr_embed = nn.Parameter(torch.randn(num_channels, dim) * 0.02)
        self.unit_embed = UnitEmbedding(num_units, dim, "normal")
        self.time = TimeEmbedding(steps_per_day, dim, weekday=bool(steps_per_day))

    def forward(self, batch: dict) -> torch.Tensor:
        """``[B, C, N, S, d]``: the history tokens and the forecast token of every (unit, attribute) series."""
        x, mask = batch["x"], batch["input_mask"]
        B, H, N, C = x.shape
        expected = (self.history, self.unit_embed.weight.shape[0], self.attr_embed.shape[0])
        if (H, N, C) != expected:
            raise UrbanstError(f"the model was built for history {expected[0]}, {expected[1]} units and {expected[2]} "
                               f"channels; the batch has {H}, {N} and {C}")
        steps = torch.stack([x, mask.to(x.dtype)], -1)  # [B, H, N, C, 2]
        if self.pad:
            steps = torch.cat([steps.new_zeros(B, self.pad, N, C, 2), steps], 1)
        history = self.value_embed(rearrange(steps, "b (s l) n c two -> b c n s (l two)", l=self.patch_len))
        future = self.forecast_token.expand(B, C, N, 1, -1)
        if self.forecast_embed is not None:
            periodic = torch.cat([batch["periodic"], batch["periodic_mask"].to(x.dtype)], 1)  # [B, 2K, P, N, C]
            future = future + self.forecast_embed(rearrange(periodic, "b k p n c -> b c n (k p)"))[:, :, :, None]
        tokens = torch.cat([history, future], 3) + self.pos_embed
        tokens = tokens + self.unit_embed.weight[:, None] + self.attr_embed[:, None, None]
        at = torch.arange(self.seq_len, device=x.device) * self.patch_len + self.patch_len - 1 - self.pad
        at[-1] = H
        for part in self.time.parts(batch["time_of_day"][:, at], batch["day_of_week"][:, at]):
            tokens = tokens + part[:, None, None]
        return tokens
