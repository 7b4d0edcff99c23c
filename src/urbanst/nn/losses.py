"""Losses over the entries a mask marks as scored; nothing else contributes."""

from __future__ import annotations

import torch


def masked_mae(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(pred.dtype)
    return (torch.where(mask.bool(), (pred - target).abs(), 0.0)).sum() / mask.sum().clamp(min=1.0)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(pred.dtype)
    return (torch.where(mask.bool(), (pred - target) ** 2, 0.0)).sum() / mask.sum().clamp(min=1.0)


def masked_bce_with_logits(logits: torch.Tensor, label: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of event logits against 0/1 (or bool) labels over the scored entries."""
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, label.to(logits.dtype), reduction="none")
    return torch.where(mask, loss, 0.0).sum() / mask.sum().clamp(min=1)


REGRESSION_LOSSES = {"mae": masked_mae, "mse": masked_mse}
