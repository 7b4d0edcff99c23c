"""Training losses over the entries a mask marks as scored; nothing else contributes."""

from __future__ import annotations

import torch


def masked_mae(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(pred.dtype)
    return (torch.where(mask.bool(), (pred - target).abs(), 0.0)).sum() / mask.sum().clamp(min=1.0)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(pred.dtype)
    return (torch.where(mask.bool(), (pred - target) ** 2, 0.0)).sum() / mask.sum().clamp(min=1.0)
