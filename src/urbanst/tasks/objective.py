"""From a model's output to a loss: the task picks the targets, the output names the paper's masked loss.

Every loss is in scaled units and covers only the entries a mask marks as scored."""

from __future__ import annotations

import torch

from urbanst.contract import ModelOutput, to_scaled
from urbanst.errors import UrbanstError
from urbanst.nn.losses import REGRESSION_LOSSES, masked_bce_with_logits


def regression_loss_fn(name: str):
    if name not in REGRESSION_LOSSES:
        raise UrbanstError(f"unknown loss {name!r}; use one of {', '.join(REGRESSION_LOSSES)}")
    return REGRESSION_LOSSES[name]


def predicted_part(output: ModelOutput, values: torch.Tensor) -> torch.Tensor:
    """``values [B, T, N, C]`` at the units and channels the output covers."""
    if output.units is not None:
        units = output.units[:, None, :, None].expand(-1, values.shape[1], -1, values.shape[3])
        values = values.gather(2, units)
    if output.channels is not None:
        values = values[..., output.channels]
    return values


def _with_extras(loss: torch.Tensor, output: ModelOutput, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``loss`` plus each auxiliary estimate's weighted regression loss and the output's extra term."""
    compare = regression_loss_fn(output.loss)
    for estimate, weight in output.auxiliary:
        loss = loss + weight * compare(estimate, target, mask)
    return loss if output.extra_loss is None else loss + output.extra_loss()


def regression_loss(output: ModelOutput, batch: dict) -> torch.Tensor:
    """Forecasting and imputation: the prediction against the scaled scored targets."""
    target = predicted_part(output, to_scaled(batch, batch["y"]))
    mask = predicted_part(output, batch["target_mask"])
    target = torch.where(mask, target, torch.zeros((), dtype=target.dtype))
    return _with_extras(regression_loss_fn(output.loss)(output.prediction, target, mask), output, target, mask)


def event_loss(output: ModelOutput, batch: dict) -> torch.Tensor:
    """Classification: binary cross-entropy of the event logits; auxiliary estimates regress the scaled counts."""
    mask = predicted_part(output, batch["target_mask"])
    loss = masked_bce_with_logits(output.prediction, predicted_part(output, batch["y_event"]), mask)
    target = predicted_part(output, to_scaled(batch, batch["y"]))
    return _with_extras(loss, output, target, mask)


def reconstruction_loss(output: ModelOutput) -> torch.Tensor:
    """Masked reconstruction: the rebuilt values against what was hidden and observed."""
    if output.target is None or output.scored is None:
        raise UrbanstError("a reconstruction needs its target and scored entries (ModelOutput.target, .scored)")
    return _with_extras(regression_loss_fn(output.loss)(output.prediction, output.target, output.scored),
                        output, output.target, output.scored)
