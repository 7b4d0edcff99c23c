"""PromptST's configuration: the shared ST transformer, its prompts, and which stage it is in."""

from __future__ import annotations

from dataclasses import dataclass, field

from urbanst.errors import UrbanstError

STAGES = ("shared", "prompt")
SHARED_LR = 2e-3
PROMPT_LR = 5e-3  # prompt tokens and a fresh linear head take a larger step than the backbone


@dataclass
class PromptSTConfig:
    num_units: int
    num_channels: int
    history: int
    horizon: int
    steps_per_day: int | None = None
    lags: list[str] = field(default_factory=list)  # periodic lags in batch order ("1d", "1w")
    attributes: list[str] = field(default_factory=list)  # one name per channel; default a0, a1, ...
    # the shared ST transformer (released code: 2 temporal + 2 spatial layers, width 32)
    d_model: int = 32
    num_heads: int = 4
    temporal_layers: int = 2
    spatial_layers: int = 2
    ffn_ratio: int = 2
    dropout: float = 0.0  # plenty of series per window for a ~40 k-parameter model; dropout costs CPU time
    patch_len: int = 3  # history steps per token (history is left-padded, as unobserved, to a multiple)
    use_time: bool = True  # time-of-day and day-of-week embeddings
    use_periodic: bool = True  # the forecast token carries the values one day / week before each target step
    spatial_on: str = "forecast"  # spatial layers mix units at the "forecast" token of each series, or at "all" tokens
    spatial_anchors: int = 0  # 0: full attention over the units; M > 0: through M learned anchors, O(N·M)
    # prompts, per attribute
    temporal_prompts: int = 4  # attribute-temporal prompt tokens prepended at each temporal layer
    spatial_prompts: int = 4  # attribute-spatial prompt tokens prepended at each spatial layer
    node_prompts: bool = True  # one node-specific prompt token per unit, prepended at each temporal layer
    prompt_init_std: float = 0.02
    prompt_head_init: str = "fresh"  # an attribute's head at the start of prompt tuning: "fresh" (paper) or a copy of the "shared" head
    # stage: "shared" trains the backbone with prompts off; "prompt" trains only prompts and heads
    stage: str = "shared"
    prompt_attributes: list[str] = field(default_factory=list)  # attributes whose prompts are on
    tuning_attributes: list[str] = field(default_factory=list)  # those whose prompts and head train now

    def __post_init__(self) -> None:
        if not self.attributes:
            self.attributes = [f"a{i}" for i in range(self.num_channels)]
        self.attributes = list(self.attributes)
        if len(self.attributes) != self.num_channels:
            raise UrbanstError(f"promptst: {len(self.attributes)} attribute names for {self.num_channels} channels")
        if len(set(self.attributes)) != len(self.attributes):
            raise UrbanstError(f"promptst: attribute names must differ, got {self.attributes}")
        if self.stage not in STAGES:
            raise UrbanstError(f"promptst: unknown stage {self.stage!r}; use one of {STAGES}")
        if self.d_model % self.num_heads:
            raise UrbanstError(f"promptst: d_model {self.d_model} is not a multiple of num_heads {self.num_heads}")
        if min(self.temporal_layers, self.spatial_layers) < 0 or self.temporal_layers + self.spatial_layers == 0:
            raise UrbanstError("promptst: needs at least one temporal or spatial layer")
        if self.spatial_on not in ("forecast", "all"):
            raise UrbanstError(f"promptst: spatial_on must be 'forecast' or 'all', got {self.spatial_on!r}")
        if self.prompt_head_init not in ("fresh", "shared"):
            raise UrbanstError(f"promptst: prompt_head_init must be 'fresh' or 'shared', got {self.prompt_head_init!r}")
        if self.patch_len < 1:
            raise UrbanstError(f"promptst: patch_len must be >= 1, got {self.patch_len}")
        if self.spatial_anchors < 0 or self.temporal_prompts < 0 or self.spatial_prompts < 0:
            raise UrbanstError("promptst: spatial_anchors, temporal_prompts and spatial_prompts must be >= 0")
        for key in ("prompt_attributes", "tuning_attributes"):
            unknown = sorted(set(getattr(self, key)) - set(self.attributes))
            if unknown:
                raise UrbanstError(f"promptst: {key} names unknown attributes {unknown}; attributes are {self.attributes}")
        if self.stage == "shared" and (self.prompt_attributes or self.tuning_attributes):
            raise UrbanstError("promptst: stage 'shared' runs with prompts off; leave prompt_attributes empty")
        if not set(self.tuning_attributes) <= set(self.prompt_attributes):
            raise UrbanstError("promptst: every tuning attribute must have its prompts on (prompt_attributes)")
