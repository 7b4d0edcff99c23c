"""PromptST (Zhang et al., CIKM 2023): a shared ST transformer over all attributes, then prompt tuning per attribute.

Not a language model. Every (unit, attribute) series is one token sequence through ONE backbone
(:mod:`urbanst.parts.encoders.patches_series`; patches of steps are ours: one token per step costs 2.5x more
CPU for 12 steps). Temporal layers attend along each series; spatial layers attend across the N units, by
default at the forecast token of each series only (``spatial_on="forecast"``: O(N²) per series instead of
O(S·N²); the next temporal layer spreads what it gathered), or at every token (``"all"``);
``spatial_anchors=M`` makes them O(N·M). Layers alternate T, S, T, S (:class:`urbanst.nn.attention.Block`). A
linear head maps a series' flattened final tokens to the horizon.

Presets: ``paper`` follows the released code and the paper where the ``cpu`` default (the config's defaults)
departs for CPU budgets: one token per step (``patch_len=1``), spatial layers at every token
(``spatial_on="all"``), and no periodic values in the forecast token (``use_periodic=False``: the paper reads
the history only). Both keep the released sizes (2 temporal + 2 spatial layers, width 32).

Stages (``config.stage``; :meth:`PromptST.stages` runs both; :meth:`trainable_summary` counts the parameters):

* ``"shared"``: the backbone and the shared head train over all attributes at once; prompts are off and frozen.
* ``"prompt"`` (:meth:`start_prompt_tuning`): for the tuning attribute(s) the prompts
  (:mod:`urbanst.parts.prompts.prefix`) are switched on and re-initialised and, with a fresh head of their
  own, are the ONLY parameters that train. The loss covers only the tuning attributes; other attributes keep
  the shared path (or their own earlier-tuned, now frozen, prompts and head). ``default_lr`` becomes 5e-3
  (2e-3 in "shared"). ``urbanst fit --init DIR`` (:meth:`start_finetune`) starts this stage for every attribute.

At nyc_bike's shape (69 units, 2 attributes, 12 -> 12, lags 1d and 1w, width 32) the model holds 50,724
parameters: 41,420 train in stage "shared"; 4,652 (9.2 %: 2,720 prompt values, 1,932 head) in stage "prompt"
for one attribute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from einops import rearrange
from torch import nn

from urbanst.contract import ModelOutput
from urbanst.errors import UrbanstError, require
from urbanst.models.base import Stage, STModel
from urbanst.models.config import SpecConfig
from urbanst.nn.attention import SpaceTimeTransformer
from urbanst.parts.encoders.patches_series import SeriesPatchTokens
from urbanst.parts.prompts.prefix import AttributePrompts, stacked_prefixes

STAGES = ("shared", "prompt")
SHARED_LR = 2e-3
PROMPT_LR = 5e-3  # prompt tokens and a fresh linear head take a larger step than the backbone
SHARED_SHARE = 0.5  # of the time budget, when a model trains both stages (see PromptST.stages)


@dataclass
class PromptSTConfig(SpecConfig):
    preset: Literal["cpu", "paper"] = "cpu"
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
    spatial_on: Literal["forecast", "all"] = "forecast"  # spatial layers mix units at each series' forecast token, or at all
    spatial_anchors: int = 0  # 0: full attention over the units; M > 0: through M learned anchors, O(N·M)
    # prompts, per attribute
    temporal_prompts: int = 4  # attribute-temporal prompt tokens prepended at each temporal layer
    spatial_prompts: int = 4  # attribute-spatial prompt tokens prepended at each spatial layer
    node_prompts: bool = True  # one node-specific prompt token per unit, prepended at each temporal layer
    prompt_init_std: float = 0.02
    prompt_head_init: Literal["fresh", "shared"] = "fresh"  # an attribute's head when prompt tuning starts: fresh (paper), or the shared one
    # stage: "shared" trains the backbone with prompts off; "prompt" trains only prompts and heads
    stage: Literal[STAGES] = "shared"
    prompt_attributes: list[str] = field(default_factory=list)  # attributes whose prompts are on
    tuning_attributes: list[str] = field(default_factory=list)  # those whose prompts and head train now

    def __post_init__(self) -> None:
        super().__post_init__()
        self.attributes = self.attributes or [f"a{i}" for i in range(self.num_channels)]
        names, on, tuning = self.attributes, set(self.prompt_attributes), set(self.tuning_attributes)
        require(len(names) == self.num_channels, f"promptst: {len(names)} attribute names for {self.num_channels} channels")
        require(len(set(names)) == len(names), f"promptst: attribute names must differ, got {names}")
        require(self.d_model % self.num_heads == 0, f"promptst: d_model {self.d_model} is not a multiple of num_heads")
        require(min(self.temporal_layers, self.spatial_layers) >= 0 and self.temporal_layers + self.spatial_layers > 0,
                "promptst: needs at least one temporal or spatial layer")
        require(self.patch_len >= 1, f"promptst: patch_len must be >= 1, got {self.patch_len}")
        require(min(self.spatial_anchors, self.temporal_prompts, self.spatial_prompts) >= 0,
                "promptst: spatial_anchors, temporal_prompts and spatial_prompts must be >= 0")
        require(on | tuning <= set(names), f"promptst: prompt_attributes or tuning_attributes name unknown attributes "
                f"{sorted((on | tuning) - set(names))}; attributes are {names}")
        require(self.stage == "prompt" or not on | tuning,
                "promptst: stage 'shared' runs with prompts off; leave prompt_attributes empty")
        require(tuning <= on, "promptst: every tuning attribute must have its prompts on (prompt_attributes)")


class PromptST(STModel):
    """PromptST: a shared ST transformer over all attributes, then per-attribute prompt tokens tuned alone."""

    name = "promptst"
    config_class = PromptSTConfig
    default_lr = SHARED_LR  # per instance: PROMPT_LR in stage "prompt" (the trainer's default when no lr is given)
    presets = {"cpu": {}, "paper": dict(patch_len=1, spatial_on="all", use_periodic=False)}

    def __init__(self, config: PromptSTConfig):
        super().__init__(config)
        c, d = config, config.d_model
        self.tokens = SeriesPatchTokens(d, c.history, c.horizon, c.num_units, c.num_channels, c.patch_len,
                                        len(c.lags) if c.use_periodic else 0, c.steps_per_day if c.use_time else None)
        self.backbone = SpaceTimeTransformer(c.temporal_layers, c.spatial_layers, d, c.num_heads, c.ffn_ratio,
                                             last_only=c.spatial_on == "forecast", anchors=c.spatial_anchors,
                                             dropout=c.dropout, mlp_dropout=c.dropout, eps=1e-5, fused_qkv=False)
        self.norm = nn.LayerNorm(d)
        width = self.tokens.seq_len * d
        self.head = nn.Linear(width, c.horizon)  # shared across attributes
        self.prompts = nn.ModuleDict({  # keys by index: attribute names may hold dots
            f"a{i}": AttributePrompts(c.num_units, d, c.temporal_layers, c.temporal_prompts, c.spatial_layers,
                                      c.spatial_prompts, c.node_prompts, width, c.horizon, c.prompt_init_std)
            for i in range(c.num_channels)
        })
        self._apply_stage()

    # -- stages -------------------------------------------------------------------------
    def _index(self, attribute: str) -> int:
        if attribute not in self.config.attributes:
            raise UrbanstError(f"promptst: unknown attribute {attribute!r}; attributes are {self.config.attributes}")
        return self.config.attributes.index(attribute)

    def parameter_groups(self) -> dict[str, list[str]]:
        """The parts, ``shared`` (all but the prompts) and ``prompts.aK`` (attribute K's prompts and head)."""
        groups = super().parameter_groups()
        groups["shared"] = [m for name, members in groups.items() if name != "prompts" for m in members]
        groups.update({f"prompts.{key}": [f"prompts.{key}."] for key in self.prompts})
        return groups

    def _apply_stage(self) -> None:
        c = self.config
        self.default_lr = SHARED_LR if c.stage == "shared" else PROMPT_LR
        self.train_only(["shared"] if c.stage == "shared" else [f"prompts.a{self._index(a)}" for a in c.tuning_attributes])

    def start_prompt_tuning(self, attribute: str | None = None) -> None:
        """Switch to stage ``"prompt"`` for ``attribute`` (None: every attribute): its prompts are switched on and
        re-initialised, its head too (or, with ``prompt_head_init="shared"``, starts as a copy of the shared head),
        and they alone train. Attributes tuned before keep their (now frozen) prompts on."""
        c = self.config
        names = list(c.attributes) if attribute is None else [c.attributes[self._index(attribute)]]
        for name in names:
            prompts = self.prompts[f"a{self._index(name)}"]
            prompts.reset()
            if c.prompt_head_init == "shared":
                prompts.head.load_state_dict(self.head.state_dict())
        c.prompt_attributes = [a for a in c.attributes if a in set(c.prompt_attributes) | set(names)]
        c.tuning_attributes = [a for a in c.attributes if a in names]
        c.stage = "prompt"
        self._apply_stage()

    def start_finetune(self, spec) -> None:
        """``urbanst fit --init DIR``: a shared-stage model starts prompt tuning for every attribute; a model saved
        in stage "prompt" goes on tuning the attributes it was tuning."""
        if self.config.stage == "shared":
            self.start_prompt_tuning(None)

    def stages(self) -> list[Stage]:
        """The shared stage, then prompt tuning of every attribute (:meth:`start_prompt_tuning`); a model already
        in stage "prompt" (saved so, or moved there by ``fit --init``) goes on with that stage only. Half of the
        budget each: on nyc_bike (preset cpu, 120 s, one thread of a busy shared machine) a shared stage of 30 /
        50 / 70 / 90 % gave test MAE 12.58 / 10.16 / 13.27 / 21.07; the fresh heads and prompts of the second
        stage need about as long as the backbone."""
        if self.config.stage == "prompt":
            return [Stage("prompt")]
        return [Stage("shared", share=SHARED_SHARE),
                Stage("prompt", share=1 - SHARED_SHARE, start=lambda: self.start_prompt_tuning(None))]

    def trainable_summary(self) -> dict[str, int]:
        """Parameter counts: total, trainable now, and the parts (backbone, shared head, prompts per attribute)."""
        count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
        out = {"total": self.num_parameters(), "trainable": self.num_parameters(trainable_only=True),
               "shared_head": count(self.head), "prompts_and_heads": count(self.prompts)}
        out["backbone"] = out["total"] - out["shared_head"] - out["prompts_and_heads"]
        for i, name in enumerate(self.config.attributes):
            p = self.prompts[f"a{i}"]
            out[f"prompt_tokens[{name}]"] = p.temporal.numel() + p.spatial.numel() + p.node.numel()
            out[f"prompt_head[{name}]"] = count(p.head)
        return out

    # -- forward ------------------------------------------------------------------------
    def _encode(self, tokens: torch.Tensor, attrs: list[int], prompted: bool) -> torch.Tensor:
        """Run the backbone over the series of attributes ``attrs`` (``tokens [B, G, N, S, d]``) -> ``[B, G, N, P]``."""
        prompts = [self.prompts[f"a{a}"] for a in attrs]
        tokens = self.backbone(tokens, **(stacked_prefixes(prompts) if prompted else {}))
        flat = rearrange(self.norm(tokens), "b g n s d -> b g n (s d)")
        if not prompted:
            return self.head(flat)
        return torch.stack([p.head(flat[:, i]) for i, p in enumerate(prompts)], 1)

    def predict(self, batch: dict, attributes: list[int] | None = None) -> torch.Tensor:
        """Scaled forecasts ``[B, P, N, len(attributes)]`` for the channels ``attributes`` (default: all)."""
        c = self.config
        attrs = list(range(c.num_channels)) if attributes is None else list(attributes)
        tokens = self.tokens(batch)
        on = {self._index(a) for a in c.prompt_attributes} if c.stage == "prompt" else set()
        outputs, order = [], []
        for prompted in (False, True):
            group = [a for a in attrs if (a in on) == prompted]
            if group:
                outputs.append(self._encode(tokens[:, group], group, prompted))
                order += group
        out = torch.cat(outputs, 1)
        if order != attrs:
            out = out[:, [order.index(a) for a in attrs]]
        return rearrange(out, "b c n p -> b p n c")

    def forward(self, batch: dict) -> ModelOutput:
        """Every attribute's forecast; while prompt tuning trains, only the tuning attributes' (the loss covers
        those alone)."""
        c = self.config
        if self.training and c.stage == "prompt" and c.tuning_attributes:
            attrs = [self._index(a) for a in c.tuning_attributes]
            return ModelOutput(self.predict(batch, attrs), channels=attrs)
        return ModelOutput(self.predict(batch))
