"""PromptST's two stages in one call: shared pre-training over every attribute, then prompt tuning."""

from __future__ import annotations

from urbanst.engine.train import TrainConfig, TrainResult, train
from urbanst.errors import UrbanstError


def two_stage(model, train_windows, val_windows, task, shared: TrainConfig, prompt: TrainConfig,
              attribute: str | None = None) -> tuple[TrainResult, TrainResult]:
    """Pre-train ``model`` (stage "shared", all attributes), then prompt-tune it for ``attribute`` (None: all).

    Each stage keeps its best validation checkpoint. A ``lr`` of None means the stage's default
    (:data:`~urbanst.models.promptst.SHARED_LR`, :data:`~urbanst.models.promptst.PROMPT_LR`).
    """
    if model.config.stage != "shared":
        raise UrbanstError("promptst: two_stage starts from a model in stage 'shared'")
    first = train(model, train_windows, val_windows, shared, task)
    model.start_prompt_tuning(attribute)
    second = train(model, train_windows, val_windows, prompt, task)
    return first, second
