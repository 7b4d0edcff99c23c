"""PromptST's two stages in one call: shared pre-training over every attribute, then prompt tuning."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from urbanst.errors import UrbanstError

if TYPE_CHECKING:
    from urbanst.engine.train import TrainConfig, TrainResult

PROMPT_LR = 5e-3  # prompt tokens and a fresh linear head take a larger step than the backbone


def two_stage(model, train_windows, val_windows, shared: TrainConfig, prompt: TrainConfig,
              attribute: str | None = None) -> tuple[TrainResult, TrainResult]:
    """Pre-train ``model`` (stage "shared", all attributes), then prompt-tune it for ``attribute`` (None: all).

    Each stage keeps its best validation checkpoint. ``prompt.lr`` None means :data:`PROMPT_LR`.
    """
    from urbanst.engine.train import train  # lazily: importing the zoo should not import Lightning

    if model.config.stage != "shared":
        raise UrbanstError("promptst: two_stage starts from a model in stage 'shared'")
    first = train(model, train_windows, val_windows, shared)
    model.start_prompt_tuning(attribute)
    second = train(model, train_windows, val_windows, prompt if prompt.lr else replace(prompt, lr=PROMPT_LR))
    return first, second
