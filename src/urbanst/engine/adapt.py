"""Test-time adaptation (TTA): steps of masked reconstruction on unlabeled inputs before predicting (UrbanMind's
protocol for zero-shot transfer), in one of two modes.

* ``causal`` (the default): the split's windows are scored in time order, in blocks of forecast origins (one day
  by default). Before each block the model adapts on windows whose inputs all lie before that block's first
  forecast origin (the week before it), so nothing the block scores, and nothing after it, has reached the
  model. The adaptation carries over from block to block, as it would for a deployed model.
* ``transductive``: the model adapts on the inputs of every window of the split, then scores them all. Windows
  overlap (stride 1), so the inputs of a later window are values an earlier one is scored on: a table row
  made so says "transductive".

Any model that ``reconstructs`` hidden *input* values can adapt (unist, urbanmind): its loss is the masked
reconstruction of the inputs (``model.reconstruct(batch, span="inputs")``; an anchored UniST rebuilds them as it
forecasts, seasonal naive plus a correction), and every weight but a pretrained language model's frozen ones
adapts, whatever the model's last training stage froze (after UniST's prompt tuning only prompts and head train,
and reconstruction reads no prompt). Every batch is stripped of its
targets (``y``, ``target_mask``, ``y_event``) and of the weather observed after the forecast origin first; the
optimiser (AdamW, gradient norm clipped at 5) moves the parameters that train, the model in eval mode (no
dropout), the window order from ``seed``, so an adaptation repeats. The trained weights are put back after
scoring, so a model saved after scoring (``urbanst fit``) is the trained one, not the adapted one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from urbanst.contract import inputs_only
from urbanst.data.windows import ForecastWindows
from urbanst.errors import UrbanstError
from urbanst.evaluation.scoring import Evaluation, feed, finish, loader
from urbanst.models.registry import model_class, model_names
from urbanst.progress import bar
from urbanst.tasks.objective import reconstruction_loss

TTA_MODES = ("causal", "transductive")
TTA_LR_SHARE = 0.1  # default adaptation learning rate: this share of the model's training rate
CONTEXT_DAYS = 7  # causal: a block adapts on the windows of the week before it


@dataclass
class Adaptation:
    """How a model adapts before a split is scored (``steps`` 0: it does not)."""

    steps: int = 0  # optimiser steps: per block (causal) or in all (transductive)
    mode: str = "causal"
    lr: float | None = None  # None: a tenth of the model's learning rate
    batch_size: int = 64
    seed: int = 0
    block: int | None = None  # causal: forecast origins per block (None: one day of steps, else 24)

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise UrbanstError(f"--tta-steps must be >= 0, got {self.steps}")
        if self.mode not in TTA_MODES:
            raise UrbanstError(f"unknown --tta-mode {self.mode!r}; use one of {', '.join(TTA_MODES)}")


def check_adaptable(model_or_class) -> None:
    if not model_or_class.reconstructs:
        able = [name for name in model_names() if model_class(name).reconstructs]
        raise UrbanstError(f"model {model_or_class.name!r} has no reconstruction loss, so it cannot adapt at test "
                           f"time (--tta-steps); models that can: {', '.join(able)}")


def unlabeled(batch: dict) -> dict:
    """What a model may read while it adapts: the batch without its targets and without the weather observed
    after the forecast origin."""
    return {k: v for k, v in inputs_only(batch).items() if not k.startswith("exo_future")}


def evaluate_adapted(model, task, windows, how: Adaptation, split: str = "test",
                     progress: bool = True) -> tuple[Evaluation, dict]:
    """``task.evaluate`` of ``model`` on ``windows`` after adapting as ``how`` says; the model's trained weights
    are back afterwards. Returns the evaluation and what the record says of the adaptation (empty: none)."""
    if not how.steps:
        return task.evaluate(model, windows, how.batch_size, progress), {}
    check_adaptable(model)
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    kept = frozen_pretrained(model)
    for name, p in model.named_parameters():  # what reconstruction reads adapts, whatever the last stage froze
        p.requires_grad_(name not in kept)
    trained = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    lr = how.lr or TTA_LR_SHARE * model.default_lr
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    try:
        if how.mode == "transductive":
            losses = adapt(model, optimizer, windows, how.steps, how, progress)
            evaluation = task.evaluate(model, windows, how.batch_size, progress)
            read = {"windows": len(windows), "read": f"the inputs of all {len(windows)} {split} windows before "
                    "scoring any (transductive: a window's inputs are values other windows are scored on)"}
        else:
            evaluation, losses, read = _causal(model, task, windows, optimizer, how, split, progress)
    finally:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in trained:
                    p.copy_(trained[name])
                p.requires_grad_(flags[name])
    record = {"mode": how.mode, "steps": how.steps, "split": split, "batch_size": how.batch_size, "lr": lr, **read,
              "reconstruction_loss": [round(losses[0], 4), round(losses[-1], 4)]}
    return evaluation, record


def frozen_pretrained(model) -> set[str]:
    """The frozen weights of a pretrained language model inside ``model``: they stay frozen while it adapts."""
    from urbanst.backbones import Backbone

    return {f"{prefix}.{name}" for prefix, module in model.named_modules() if isinstance(module, Backbone)
            for name, p in module.named_parameters() if not p.requires_grad}


def _causal(model, task, windows, optimizer, how: Adaptation, split: str, progress: bool):
    if not isinstance(windows, ForecastWindows):
        raise UrbanstError("causal test-time adaptation scores forecast windows in time order; for imputation use "
                           "--tta-mode transductive")
    per_day = windows.series.data.steps_per("day")
    block = how.block or per_day or 24
    origins = windows.origins
    blocks = torch.div(origins - origins[0], block, rounding_mode="floor")
    scorer, seconds, losses, read = task.scorer(windows), 0.0, [], 0
    for b in torch.unique(blocks).tolist():
        start = int(origins[blocks == b][0])
        context = torch.arange(max(windows.history, start - CONTEXT_DAYS * (per_day or block)), start + 1)
        pool = windows.at(context)
        losses += adapt(model, optimizer, pool, how.steps, how, progress=False)
        read += len(pool)
        seconds += feed(model, windows.at(origins[blocks == b]), scorer, how.batch_size, progress=False)
    text = (f"causal: {len(torch.unique(blocks))} blocks of {block} forecast origins in time order, each after "
            f"{how.steps} steps on the windows of the {CONTEXT_DAYS} days before its first origin (inputs only, "
            "nothing the block scores)")
    return finish(scorer, seconds), losses, {"windows": read, "blocks": len(torch.unique(blocks)), "block": block,
                                             "read": text}


def adapt(model, optimizer, windows, steps: int, how: Adaptation, progress: bool = True) -> list[float]:
    """``steps`` optimiser steps of masked reconstruction on the inputs of ``windows`` (cycling through them in a
    seeded order); returns the losses."""
    was_training = model.training
    model.eval()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    losses = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(how.seed)
        batches = itertools.cycle(loader(windows, how.batch_size, shuffle=True, seed=how.seed))
        for batch in bar(itertools.islice(batches, steps), desc=f"adapt {model.name}", total=steps, enabled=progress):
            loss = reconstruction_loss(model.reconstruct(unlabeled(batch), span="inputs"))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()
            losses.append(float(loss.detach()))
    model.train(was_training)
    return losses
