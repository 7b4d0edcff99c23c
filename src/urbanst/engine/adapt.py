"""Test-time adaptation (TTA): K steps of masked reconstruction on the unlabeled inputs of the windows
about to be scored, before predicting them (UrbanMind's protocol for zero-shot transfer).

Any model that ``reconstructs`` hidden *input* values can adapt (unist, urbanmind): its loss is the
masked reconstruction of the inputs (``model.reconstruct(batch, span="inputs")``). The batches it sees are stripped of every target first (``y``,
``target_mask``, ``y_event`` and the observed future weather), so no label of the split can reach
it; the optimiser (AdamW, gradient norm clipped at 5) moves the parameters that train. The model
runs in eval mode (no dropout) and the window order comes from ``seed``, so an adaptation repeats.

:func:`adapted` adapts for the duration of a ``with`` block and then puts the trained weights back,
so a model saved after scoring (``urbanst fit``) is the trained one, not the adapted one.

Stride-1 windows overlap: the inputs of a later test window are values that earlier windows are
scored on. No batch holds a target, but adapting on the whole split before scoring it is
transductive in that sense (as UrbanMind's protocol); the record says which windows were read.
"""

from __future__ import annotations

import contextlib
import itertools

import torch

from urbanst.contract import inputs_only
from urbanst.errors import UrbanstError
from urbanst.evaluation.scoring import loader
from urbanst.models.registry import model_class, model_names
from urbanst.progress import bar
from urbanst.tasks.objective import reconstruction_loss

TTA_LR_SHARE = 0.1  # default adaptation learning rate: this share of the model's training rate


def check_adaptable(model_or_class) -> None:
    if not model_or_class.reconstructs:
        able = [name for name in model_names() if model_class(name).reconstructs]
        raise UrbanstError(f"model {model_or_class.name!r} has no reconstruction loss, so it cannot adapt at test "
                           f"time (--tta-steps); models that can: {', '.join(able)}")


def unlabeled(batch: dict) -> dict:
    """What a model may read while it adapts: the batch without its targets and without the weather observed
    after the forecast origin."""
    return {k: v for k, v in inputs_only(batch).items() if not k.startswith("exo_future")}


def adapt(model, windows, steps: int, batch_size: int = 64, lr: float | None = None, seed: int = 0,
          split: str = "test") -> dict:
    """Run ``steps`` optimiser steps of masked reconstruction on the inputs of ``windows`` (cycling
    through them in a seeded order); returns what the result record says about it."""
    check_adaptable(model)
    if steps < 1:
        raise UrbanstError(f"test-time adaptation needs at least one step, got {steps}")
    lr = lr or TTA_LR_SHARE * model.default_lr
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    was_training = model.training
    model.eval()
    losses = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        batches = itertools.cycle(loader(windows, batch_size, shuffle=True, seed=seed))
        for batch in bar(itertools.islice(batches, steps), desc=f"adapt {model.name}", total=steps):
            loss = reconstruction_loss(model.reconstruct(unlabeled(batch), span="inputs"))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()
            losses.append(float(loss.detach()))
    model.train(was_training)
    return {"steps": steps, "split": split, "windows": len(windows), "batch_size": batch_size, "lr": lr,
            "read": "inputs only: targets removed before the model saw the batches",
            "reconstruction_loss": [round(losses[0], 4), round(losses[-1], 4)]}


@contextlib.contextmanager
def adapted(model, windows, steps: int, batch_size: int = 64, lr: float | None = None, seed: int = 0,
            split: str = "test"):
    """Within the block the model is adapted (``adapt``) and the block gets the record; after it the trained
    weights are back. ``steps == 0`` adapts nothing and gives an empty record."""
    if not steps:
        yield {}
        return
    trained = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    try:
        yield adapt(model, windows, steps, batch_size, lr, seed, split)
    finally:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in trained:
                    p.copy_(trained[name])
