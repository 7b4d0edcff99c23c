"""Self-describing result records: every number says how it was made."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class ResultRecord:
    model: str
    family: str  # "baseline" or "deep"
    dataset: str
    task: str
    history: int
    horizon: int
    split: str
    scale: str
    shots: str
    seed: int
    urbanst_version: str
    metrics: dict  # overall: mae, rmse, mape, wape, count ...
    per_step: dict
    per_channel: dict  # lists in the order of ``channels``
    metric_policy: str
    train_seconds: float
    inference_seconds: float
    parameters: int
    trainable_parameters: int
    train_windows: int
    test_windows: int
    sources: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)  # the dataset's attribute names
    notes: str = ""
    tta_steps: int = 0  # test-time adaptation steps before scoring (0: none)
    tta_mode: str = "causal"  # how it would adapt: causal (blocks in time order) or transductive
    tta_windows: dict = field(default_factory=dict)  # what it read: split, windows, batch size, lr (empty: none)
    preset: str | None = None  # "cpu" or "paper" (None: a model without presets, e.g. a baseline)
    backbone: dict = field(default_factory=dict)  # the language model: backbone, backbone_layers, backbone_policy
    correction_of: str | None = None  # the baseline whose forecast the model corrects, if it does
    stages: list = field(default_factory=list)  # name, seconds, epochs, best validation score of each stage

    def to_dict(self) -> dict:
        return asdict(self)
