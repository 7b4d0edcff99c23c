"""PromptST (Zhang et al., CIKM 2023): a shared ST transformer over all attributes, then prompt tuning per attribute.

Not a language model. Every (unit, attribute) series is one sequence of tokens through ONE
backbone; the attribute enters only through a learned attribute embedding (parameter
sharing across attributes, as in the paper). Tokens of a series:

* one per ``patch_len`` history steps: ``[x, input_mask]`` of the patch embedded, plus
  position, time-of-day and day-of-week (of the patch's last step), unit and attribute
  embeddings (patches are ours: one token per step costs 2.5x more CPU for 12 steps);
* one *forecast token*: the target time (first target step) and, with ``use_periodic``,
  the values one day and one week before each target step (``batch["periodic"]`` and
  ``batch["periodic_mask"]``) embedded.

Temporal layers attend along each series; spatial layers attend across the N units, by
default at the forecast token of each series only (``spatial_on="forecast"``: O(N²) per
series instead of O(S·N²); the next temporal layer spreads what it gathered), or at every
token (``"all"``); ``spatial_anchors=M`` makes them O(N·M). Layers alternate T, S, T, S. A
linear head maps a series' flattened final tokens to the horizon.

Stages (``config.stage``; :meth:`trainable_summary` counts the parameters):

* ``"shared"``: the backbone (embeddings, all layers, final norm) and the shared head train,
  over all attributes at once; prompts are off and frozen.
* ``"prompt"`` (:meth:`start_prompt_tuning`): for the tuning attribute(s) the prompts are
  switched on and re-initialised and, with a freshly initialised head of their own, are the
  ONLY parameters that train; the backbone and the shared head are frozen. Prompts:
  attribute-temporal tokens prepended at each temporal layer, one node-specific token per
  unit prepended at each temporal layer, attribute-spatial tokens prepended at each spatial
  layer (prefix style: their outputs are dropped after each layer). The loss covers only
  the tuning attributes; other attributes keep the shared path (or their own earlier-tuned,
  now frozen, prompts and head). The model's ``default_lr`` becomes 5e-3 (2e-3 in "shared").
  ``urbanst fit --init DIR`` (:meth:`start_finetune`) starts this stage for every attribute.

At nyc_bike's shape (69 units, 2 attributes, 12 -> 12, lags 1d and 1w, width 32) the model
holds 50,724 parameters: 41,420 train in stage "shared"; 4,652 (9.2 %: 2,720 prompt
values, 1,932 head) in stage "prompt" for one attribute.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from urbanst.contract import ModelOutput
from urbanst.errors import UrbanstError
from urbanst.models.base import STModel
from urbanst.models.promptst.config import PROMPT_LR, SHARED_LR, PromptSTConfig
from urbanst.nn.attention import Block
from urbanst.models.promptst.prompts import AttributePrompts


class PromptST(STModel):
    """PromptST: a shared ST transformer over all attributes, then per-attribute prompt tokens tuned alone."""

    name = "promptst"
    config_class = PromptSTConfig
    default_lr = SHARED_LR  # per instance: PROMPT_LR in stage "prompt" (the trainer's default when no lr is given)

    def __init__(self, config: PromptSTConfig):
        super().__init__(config)
        c = config
        d = c.d_model
        self.num_lags = len(c.lags) if c.use_periodic else 0
        self.num_patches = -(-c.history // c.patch_len)
        self.pad = self.num_patches * c.patch_len - c.history  # unobserved steps put before the history
        self.seq_len = self.num_patches + 1  # history tokens + the forecast token
        self.value_embed = nn.Linear(2 * c.patch_len, d)  # [scaled values, observed?] of a patch
        self.forecast_embed = nn.Linear(2 * self.num_lags * c.horizon, d) if self.num_lags else None
        self.forecast_token = nn.Parameter(torch.zeros(d))
        self.pos_embed = nn.Parameter(torch.randn(self.seq_len, d) * 0.02)
        self.attr_embed = nn.Parameter(torch.randn(c.num_channels, d) * 0.02)
        self.unit_embed = nn.Parameter(torch.randn(c.num_units, d) * 0.02)
        if c.use_time and c.steps_per_day and c.steps_per_day > 1:
            self.tod_embed = nn.Embedding(c.steps_per_day, d)
        if c.use_time and c.steps_per_day:
            self.dow_embed = nn.Embedding(7, d)
        block = dict(dim=d, heads=c.num_heads, mlp_ratio=c.ffn_ratio, dropout=c.dropout, mlp_dropout=c.dropout, eps=1e-5,
                     fused_qkv=False)
        self.temporal = nn.ModuleList(Block(**block) for _ in range(c.temporal_layers))
        self.spatial = nn.ModuleList(Block(**block, anchors=c.spatial_anchors) for _ in range(c.spatial_layers))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(self.seq_len * d, c.horizon)  # shared across attributes
        self.prompts = nn.ModuleDict({
            self._key(i): AttributePrompts(c.num_units, d, c.temporal_layers, c.temporal_prompts, c.spatial_layers,
                                           c.spatial_prompts, c.node_prompts, self.seq_len * d, c.horizon,
                                           c.prompt_init_std)
            for i in range(c.num_channels)
        })
        order = []  # alternate temporal and spatial layers: T, S, T, S, ...
        for i in range(max(c.temporal_layers, c.spatial_layers)):
            order += [("t", i)] if i < c.temporal_layers else []
            order += [("s", i)] if i < c.spatial_layers else []
        self.order = order
        self._apply_stage()

    # -- stages -------------------------------------------------------------------------
    @staticmethod
    def _key(index: int) -> str:
        return f"a{index}"  # module keys by index: attribute names may hold dots

    def _attribute_index(self, attribute: str) -> int:
        if attribute not in self.config.attributes:
            raise UrbanstError(f"promptst: unknown attribute {attribute!r}; attributes are {self.config.attributes}")
        return self.config.attributes.index(attribute)

    def _apply_stage(self) -> None:
        c = self.config
        self.default_lr = SHARED_LR if c.stage == "shared" else PROMPT_LR
        if c.stage == "shared":
            self.requires_grad_(True)
            self.prompts.requires_grad_(False)
        else:
            self.requires_grad_(False)
            for name in c.tuning_attributes:
                self.prompts[self._key(self._attribute_index(name))].requires_grad_(True)

    def start_prompt_tuning(self, attribute: str | None = None) -> None:
        """Switch to stage ``"prompt"`` for ``attribute`` (None: every attribute).

        Its prompts are switched on and re-initialised, its head is re-initialised (or, with
        ``prompt_head_init="shared"``, starts as a copy of the shared head), and they become
        the only trainable parameters; everything else is frozen. Attributes tuned before
        keep their (now frozen) prompts on.
        """
        c = self.config
        names = list(c.attributes) if attribute is None else [c.attributes[self._attribute_index(attribute)]]
        for name in names:
            prompts = self.prompts[self._key(self._attribute_index(name))]
            prompts.reset()
            if c.prompt_head_init == "shared":
                prompts.head.load_state_dict(self.head.state_dict())
        c.prompt_attributes = [a for a in c.attributes if a in set(c.prompt_attributes) | set(names)]
        c.tuning_attributes = [a for a in c.attributes if a in names]
        c.stage = "prompt"
        self._apply_stage()

    def start_finetune(self, spec) -> None:
        """``urbanst fit --init DIR``: a shared-stage model starts prompt tuning for every attribute;
        a model saved in stage "prompt" goes on tuning the attributes it was tuning."""
        if self.config.stage == "shared":
            self.start_prompt_tuning(None)

    def trainable_summary(self) -> dict[str, int]:
        """Parameter counts: total, trainable now, and the parts (backbone, shared head, prompts per attribute)."""
        count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
        out = {"total": self.num_parameters(), "trainable": self.num_parameters(trainable_only=True),
               "shared_head": count(self.head), "prompts_and_heads": count(self.prompts)}
        out["backbone"] = out["total"] - out["shared_head"] - out["prompts_and_heads"]
        for i, name in enumerate(self.config.attributes):
            p = self.prompts[self._key(i)]
            out[f"prompt_tokens[{name}]"] = p.temporal.numel() + p.spatial.numel() + p.node.numel()
            out[f"prompt_head[{name}]"] = count(p.head)
        return out

    # -- forward ------------------------------------------------------------------------
    def _tokens(self, batch: dict) -> torch.Tensor:
        """``[B, C, N, S, d]``: H history tokens and one forecast token per (unit, attribute) series."""
        c = self.config
        x, mask = batch["x"], batch["input_mask"]
        B, H, N, C = x.shape
        if (H, N, C) != (c.history, c.num_units, c.num_channels):
            raise UrbanstError(f"promptst was built for history {c.history}, {c.num_units} units and {c.num_channels} "
                               f"channels; the batch has {H}, {N} and {C}")
        steps = torch.stack([x, mask.to(x.dtype)], -1)  # [B, H, N, C, 2]
        if self.pad:
            steps = torch.cat([steps.new_zeros(B, self.pad, N, C, 2), steps], 1)
        hist = self.value_embed(rearrange(steps, "b (s l) n c two -> b c n s (l two)", l=c.patch_len))
        future = self.forecast_token.expand(B, C, N, 1, -1)
        if self.forecast_embed is not None:
            periodic = torch.cat([batch["periodic"], batch["periodic_mask"].to(x.dtype)], 1)  # [B, 2K, P, N, C]
            future = future + self.forecast_embed(rearrange(periodic, "b k p n c -> b c n (k p)"))[:, :, :, None]
        tokens = torch.cat([hist, future], 3) + self.pos_embed + self.unit_embed[:, None] + self.attr_embed[:, None, None]
        # time features of each patch's last step and of the first target step
        at = torch.arange(self.seq_len, device=x.device) * c.patch_len + c.patch_len - 1 - self.pad
        at[-1] = H
        if hasattr(self, "tod_embed"):
            slot = torch.round(batch["time_of_day"][:, at] * c.steps_per_day).long() % c.steps_per_day
            tokens = tokens + self.tod_embed(slot)[:, None, None]
        if hasattr(self, "dow_embed"):
            tokens = tokens + self.dow_embed(batch["day_of_week"][:, at].long())[:, None, None]
        return tokens

    def _encode(self, tokens: torch.Tensor, attrs: list[int], prompted: bool) -> torch.Tensor:
        """Run the backbone over the series of attributes ``attrs`` (``tokens [B, G, N, S, d]``) -> ``[B, G, N, P]``."""
        B, G, N, S, d = tokens.shape
        prompts = [self.prompts[self._key(a)] for a in attrs]
        for kind, layer in self.order:
            if kind == "t":
                prefix = None
                if prompted:
                    prefix = torch.stack([p.temporal_prefix(layer) for p in prompts])  # [G, N|1, p, d]
                    prefix = rearrange(prefix.expand(B, G, N, -1, -1), "b g n p d -> (b g n) p d")
                out = self.temporal[layer](rearrange(tokens, "b g n s d -> (b g n) s d"), prefix)
                tokens = rearrange(out, "(b g n) s d -> b g n s d", b=B, g=G)
            else:
                mixed = tokens[:, :, :, -1:] if self.config.spatial_on == "forecast" else tokens
                Sm = mixed.shape[3]
                prefix = None
                if prompted and self.config.spatial_prompts:
                    prefix = torch.stack([p.spatial[layer] for p in prompts])  # [G, p, d]
                    prefix = rearrange(prefix.expand(B, Sm, G, -1, -1), "b s g p d -> (b g s) p d")
                out = self.spatial[layer](rearrange(mixed, "b g n s d -> (b g s) n d"), prefix)
                out = rearrange(out, "(b g s) n d -> b g n s d", b=B, g=G)
                tokens = out if Sm == S else torch.cat([tokens[:, :, :, :-1], out], 3)
        flat = rearrange(self.norm(tokens), "b g n s d -> b g n (s d)")
        if not prompted:
            return self.head(flat)
        return torch.stack([p.head(flat[:, i]) for i, p in enumerate(prompts)], 1)

    def predict(self, batch: dict, attributes: list[int] | None = None) -> torch.Tensor:
        """Scaled forecasts ``[B, P, N, len(attributes)]`` for the channels ``attributes`` (default: all)."""
        c = self.config
        attrs = list(range(c.num_channels)) if attributes is None else list(attributes)
        tokens = self._tokens(batch)
        on = {self._attribute_index(a) for a in c.prompt_attributes} if c.stage == "prompt" else set()
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
            attrs = [self._attribute_index(a) for a in c.tuning_attributes]
            return ModelOutput(self.predict(batch, attrs), channels=attrs)
        return ModelOutput(self.predict(batch))
