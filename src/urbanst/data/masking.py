"""Masks that hide observed entries: a fixed seeded share for scoring, random patterns for training.

``seeded_share`` picks the same entries for the same (mask, share, seed) on every machine
(numpy's PCG64), so an imputation protocol built on it is reproducible. ``training_hide``
draws a fresh pattern per window from torch's global generator (the trainer seeds it per
epoch), in one of three shapes:

* point: every visible entry is hidden with a rate drawn per window;
* block (sensor failure): each unit-channel series fails, with a rate drawn per window,
  for one contiguous run of 1 .. L steps; plus isolated points at ``noise``;
* historical (when ``pattern`` is given, half of the windows): the entries missing in another
  window of the same training data (CSDI's "hist" strategy), so the training gaps look like
  the data's real ones.

Only entries that are visible can be hidden; nothing else changes.
"""

from __future__ import annotations

import numpy as np
import torch

from urbanst.errors import UrbanstError


def seeded_share(candidates: np.ndarray, share: float, seed: int) -> np.ndarray:
    """A bool mask of ``round(share * candidates.sum())`` entries chosen among the True ``candidates``."""
    if not 0 < share < 1:
        raise UrbanstError(f"hidden share must be in (0, 1), got {share}")
    flat = np.flatnonzero(candidates)
    chosen = np.random.default_rng(seed).choice(flat, size=int(round(share * len(flat))), replace=False)
    out = np.zeros(candidates.size, dtype=bool)
    out[chosen] = True
    return out.reshape(candidates.shape)


def training_hide(visible: torch.Tensor, pattern: torch.Tensor | None = None, rate: tuple[float, float] = (0.05, 0.5),
                  block_share: float = 0.5, noise: float = 0.05) -> torch.Tensor:
    """Entries of ``visible [B, L, N, C]`` to hide for one training batch (a subset of ``visible``);
    ``pattern`` (same shape, True = missing elsewhere) adds the historical shape."""
    B, L, N, C = visible.shape
    per_window = torch.empty(B, 1, 1, 1).uniform_(*rate)
    point = torch.rand(B, L, N, C) < per_window
    fails = torch.rand(B, 1, N, C) < per_window
    length = torch.randint(1, L + 1, (B, 1, N, C))
    start = (torch.rand(B, 1, N, C) * (L - length + 1)).floor().long()
    step = torch.arange(L).view(1, L, 1, 1)
    block = (fails & (step >= start) & (step < start + length)) | (torch.rand(B, L, N, C) < noise)
    use_block = (torch.rand(B) < block_share).view(B, 1, 1, 1)
    hidden = torch.where(use_block, block, point).to(visible.device)
    if pattern is not None:
        use_pattern = (torch.rand(B) < 0.5).view(B, 1, 1, 1).to(visible.device)
        hidden = torch.where(use_pattern, pattern, hidden)
    return hidden & visible
